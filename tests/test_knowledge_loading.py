"""Loaders and chunking: formats, headings, bad files, Chinese and English sentence-aware chunks."""

from __future__ import annotations

import pytest

from memory.knowledge.chunking import chunk_sections
from memory.knowledge.keyword import bigram_tokens
from memory.knowledge.loaders import LoadError, Section, load
from tests.knowledge_helpers import CORPUS, encrypted_pdf, minimal_pdf


def test_markdown_heading_paths(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# Guide\nintro\n## Install\nrun pip\n### Linux\napt\n## Use\nrun it\n```\n# not a heading\n```\n", encoding="utf-8")
    doc = load(path)
    assert doc.title == "Guide"
    assert [(s.heading, s.text.splitlines()[0]) for s in doc.sections] == [
        ("Guide", "intro"), ("Guide > Install", "run pip"), ("Guide > Install > Linux", "apt"), ("Guide > Use", "run it"),
    ]
    assert "# not a heading" in doc.sections[-1].text


def test_html_docx_pdf(tmp_path):
    html = tmp_path / "page.html"
    html.write_text("<html><head><title>T</title><script>var x=1</script></head><body><h1>Top</h1><p>Alpha.</p>"
                    "<h2>Sub</h2><p>Beta text.</p></body></html>", encoding="utf-8")
    doc = load(html)
    assert doc.title == "T"
    assert [(s.heading, s.text) for s in doc.sections] == [("Top", "Alpha."), ("Top > Sub", "Beta text.")]

    import docx

    d = docx.Document()
    d.add_heading("Chapter 1", level=1)
    d.add_paragraph("第一章的内容。")
    d.save(tmp_path / "report.docx")
    doc = load(tmp_path / "report.docx")
    assert doc.sections[0].heading == "Chapter 1" and doc.sections[0].text == "第一章的内容。"

    (tmp_path / "paper.pdf").write_bytes(minimal_pdf("Hello PDF world. Second sentence."))
    doc = load(tmp_path / "paper.pdf")
    assert doc.sections[0].heading == "p. 1" and "Hello PDF world" in doc.sections[0].text


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("empty.txt", b"", "empty"),
        ("blank.md", b"  \n\n ", "empty"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("gbk.txt", "你好，世界".encode("gbk"), "not UTF-8"),
        ("locked.pdf", None, "encrypted"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "PDF"),
        ("fake.docx", b"PK\x03\x04 not a zip", "docx"),
        ("photo.png", b"\x89PNG", "unsupported"),
    ],
)
def test_bad_files_raise_load_error(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(encrypted_pdf() if data is None else data)
    with pytest.raises(LoadError, match=reason):
        load(path)


def test_chinese_chunks_count_characters_and_end_at_sentences():
    sentence = "大模型的训练分为预训练、监督微调和人类反馈强化学习三个阶段。"  # 30 characters, no spaces
    text = sentence * 40  # one 1200-character paragraph
    chunks = chunk_sections([Section("训练", text)], size=200, overlap=40)
    assert len(chunks) >= 6
    assert all(len(c.text) <= 200 for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)  # cut at 。, not mid-sentence
    assert all(c.heading == "训练" for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    # overlap: each chunk starts with text the previous one ended with
    assert all(b.text[:10] in a.text for a, b in zip(chunks, chunks[1:]))


def test_english_chunks_keep_sentences_and_sections_apart():
    para = " ".join(f"Sentence number {i} talks about retrieval." for i in range(30))
    chunks = chunk_sections([Section("A", para), Section("B", "Short one.")], size=150, overlap=30)
    assert all(len(c.text) <= 150 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)
    assert chunks[-1].heading == "B" and chunks[-1].text == "Short one."
    assert not any("Short one" in c.text for c in chunks[:-1])


def test_bigram_tokens_handle_chinese_without_spaces():
    assert bigram_tokens("RLHF 的三个步骤是什么？") == ["rlhf", "三个", "个步", "步骤"]
    assert bigram_tokens("What is LoRA-v2 in 3.14?", frozenset({"is", "in"})) == ["what", "lora-v2", "3.14"]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus ../shared/corpus not present")
def test_corpus_loads_and_chunks_within_size():
    for path in sorted(CORPUS.glob("*.txt")):
        doc = load(path)
        chunks = chunk_sections(doc.sections, 500, 80)
        assert chunks and all(0 < len(c.text) <= 500 for c in chunks)
