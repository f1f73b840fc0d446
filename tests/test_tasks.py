"""`mmagent run`: results appended as tasks finish, resume, malformed lines, trials, Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps.tasks import Task, percentile, read_tasks, summary
from tests.conftest import call, calls, say, write_script

CALC_SCRIPT = (
    say("1. Multiply with the calculator\n2. Answer"),
    calls(call("calculator", {"expression": "6*7"})),
    say("6 times 7 is 42."),
)


def mmagent(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "apps.cli", *args], capture_output=True, text=True, timeout=180, cwd=cwd)


def write_tasks(path: Path, *lines: dict | str) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def results(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def test_run_checks_answers_then_resume_skips_finished(data_dir, tmp_path):
    script = write_script(tmp_path / "s.jsonl", *CALC_SCRIPT)
    tasks = write_tasks(
        tmp_path / "tasks.jsonl",
        {"id": "right", "input": "What is 6*7?", "expected": 42},
        {"id": "wrong", "input": "What is 6*7?", "expected": "41", "check": "exact"},
        "{not json",
        {"id": 7, "input": "What is 6*7?", "metadata": {"source": "unit"}},
        {"id": "right", "input": "a duplicate id"},
        {"id": "typo", "inputs": "What is 6*7?"},
    )
    out = tmp_path / "out" / "results.jsonl"
    proc = mmagent("run", str(tasks), "-o", str(out), "--llm", f"scripted:{script}", "--concurrency", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = results(out)
    assert set(got) == {"right", "wrong", "7"}
    right = got["right"]
    assert right["answer"] == "6 times 7 is 42." and right["passed"] is True
    assert right["n_steps"] == 1 and right["steps"][0]["tool"] == "calculator" and right["artifacts"] == []
    assert right["seconds"] > 0 and right["started_at"] <= right["finished_at"]
    assert got["wrong"]["passed"] is False and got["7"]["passed"] is None and got["7"]["metadata"] == {"source": "unit"}
    # Malformed lines are named with their line numbers, and the run went on.
    assert f"{tasks}:3: not valid JSON" in proc.stderr
    assert f"{tasks}:5: duplicate id 'right'" in proc.stderr
    assert f"{tasks}:6: input: Field required" in proc.stderr
    assert "passed            1/2 (50.0%)" in proc.stdout and "malformed lines   3" in proc.stdout
    assert "latency p95" in proc.stdout and "mean steps        1.00" in proc.stdout

    # Without --resume an existing results file is not touched.
    again = mmagent("run", str(tasks), "-o", str(out), "--llm", f"scripted:{script}", cwd=tmp_path)
    assert again.returncode == 1 and again.stderr.strip().splitlines()[-1].startswith("error: ") and "--resume" in again.stderr
    # --resume runs only the ids not yet in the file (a torn last line is tolerated).
    with out.open("a", encoding="utf-8") as f:
        f.write('{"id": "torn", "answ')
    with tasks.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "new", "input": "What is 6*7?", "expected": 42}) + "\n")
    resumed = mmagent("run", str(tasks), "-o", str(out), "--llm", f"scripted:{script}", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "tasks run         1" in resumed.stdout and "skipped (resume)  3" in resumed.stdout
    lines = out.read_text().splitlines()
    assert json.loads(lines[-1])["id"] == "new" and json.loads(lines[-1])["passed"] is True
    assert lines[-2] == '{"id": "torn", "answ'


def test_trials_retry_with_reflexion(data_dir, tmp_path):
    # Trials share one scripted session: attempt 1, its reflection, attempt 2.
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Answer from memory"), say("It is 41."),
        say("I guessed instead of computing; use the calculator."),
        say("1. Compute with the calculator"), say("It is 42."),
    )
    tasks = write_tasks(tmp_path / "tasks.jsonl", {"id": "t", "input": "What is 6*7?", "expected": 42})
    out = tmp_path / "results.jsonl"
    proc = mmagent("run", str(tasks), "-o", str(out), "--llm", f"scripted:{script}", "--trials", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = results(out)["t"]
    assert record["passed"] is True and record["trials"] == 2 and record["answer"] == "It is 42."
    assert record["reflections"] == ["I guessed instead of computing; use the calculator."]


def test_command_errors_are_one_line(data_dir, tmp_path):
    for args in (
        ("run", "missing.jsonl", "-o", "r.jsonl"),
        ("run", str(write_tasks(tmp_path / "bad.jsonl", "nope", "[1]")), "-o", "r.jsonl"),
        ("run", str(write_tasks(tmp_path / "ok.jsonl", {"id": "a", "input": "x"})), "-o", "r.jsonl", "--llm", "nonsense:x"),
    ):
        proc = mmagent(*args, cwd=tmp_path)
        assert proc.returncode != 0
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr


def test_task_model_and_summary_helpers(tmp_path):
    assert Task.model_validate({"id": 3, "input": "x"}).id == "3"
    image = tmp_path / "cat.png"
    image.write_bytes(b"png")
    parsed = read_tasks(write_tasks(tmp_path / "t.jsonl", {"id": "a", "input": "x", "images": ["cat.png"]}, {"id": "b", "input": "x", "images": ["dog.png"]}))
    assert parsed.tasks[0].images == [str(image.resolve())] and "image not found: dog.png" in parsed.problems[0]
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0 and percentile([1.0, 2.0, 3.0, 4.0], 95) == 4.0
    table = summary([{"passed": True, "n_steps": 2, "seconds": 1.0}, {"passed": None, "n_steps": 0, "seconds": 3.0, "error": "x"}], skipped=0, malformed=0)
    assert "passed            1/1 (100.0%)" in table and "errors            1" in table and "mean steps        1.00" in table


@pytest.mark.slow
def test_ray_runs_tasks_on_a_local_cluster(data_dir, tmp_path):
    ray = pytest.importorskip("ray")
    from click.testing import CliRunner

    from apps.tasks import run_command

    script = write_script(tmp_path / "s.jsonl", *CALC_SCRIPT)
    tasks = write_tasks(tmp_path / "tasks.jsonl", *({"id": f"t{i}", "input": "What is 6*7?", "expected": 42} for i in range(3)))
    out = tmp_path / "results.jsonl"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = CliRunner().invoke(run_command, [str(tasks), "-o", str(out), "--llm", f"scripted:{script}", "--ray", "--concurrency", "2"])
    finally:
        ray.shutdown()
    assert result.exit_code == 0, result.output
    got = results(out)
    assert set(got) == {"t0", "t1", "t2"} and all(r["passed"] for r in got.values())
    assert "passed            3/3 (100.0%)" in result.output
