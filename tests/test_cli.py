"""The `mmagent` console script, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import call, calls, say, write_script


def mmagent(*args: str, env_extra: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "apps.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd,
    )


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    return lines[0]


def test_ask_json_with_scripted_model(data_dir, tmp_path):
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Multiply with the calculator\n2. Answer"),
        calls(call("calculator", {"expression": "6*7"})),
        say("6 times 7 is 42."),
    )
    proc = mmagent("ask", "What is 6 times 7?", "--llm", f"scripted:{script}", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"] == "6 times 7 is 42."
    assert out["plan"] == ["Multiply with the calculator", "Answer"]
    assert out["steps"][0]["tool"] == "calculator" and out["steps"][0]["result"] == "42"
    assert out["artifacts"] == [] and out["thread_id"]
    assert (data_dir / "threads.sqlite").is_file()


def test_ask_continues_a_thread_across_processes(data_dir, tmp_path):
    first = write_script(tmp_path / "a.jsonl", say("1. Greet"), say("Nice to meet you, Ada."))
    proc = mmagent("ask", "My name is Ada.", "--llm", f"scripted:{first}", "--thread", "t-1", "--json")
    assert proc.returncode == 0, proc.stderr
    # A new process reads the thread back from SQLite: the model sees the earlier turn.
    second = write_script(tmp_path / "b.jsonl", say("1. Recall the name"), say("Your name is Ada."))
    proc = mmagent("ask", "What is my name?", "--llm", f"scripted:{second}", "--thread", "t-1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Your name is Ada."
    assert "plan:" in proc.stderr


def test_plain_ask_prints_answer_and_steps(data_dir, tmp_path):
    script = write_script(tmp_path / "s.jsonl", say("1. Add"), calls(call("calculator", {"expression": "1+1"})), say("2"))
    proc = mmagent("ask", "1+1?", "--llm", f"scripted:{script}")
    assert proc.returncode == 0 and proc.stdout.strip() == "2"
    assert "→ calculator" in proc.stderr and "← calculator: 2" in proc.stderr


def test_model_failure_is_one_line_and_nonzero(data_dir, tmp_path):
    script = write_script(tmp_path / "s.jsonl", say("1. Add"))
    proc = mmagent("ask", "1+1?", "--llm", f"scripted:{script}")
    assert proc.returncode == 1
    assert "ran out of replies" in proc.stderr.strip().splitlines()[-1]


def test_tools_list_and_call(data_dir):
    proc = mmagent("tools", "list", "--json")
    schemas = json.loads(proc.stdout)
    calc = next(s for s in schemas if s["function"]["name"] == "calculator")
    assert calc["function"]["parameters"]["required"] == ["expression"]
    assert "calculator:" in mmagent("tools", "list").stdout

    proc = mmagent("tools", "call", "calculator", "--args", '{"expression": "2**100"}', "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"ok": True, "result": str(2**100)}
    proc = mmagent("tools", "call", "calculator", "--args", '{"expression": "1/0"}', "--json")
    body = json.loads(proc.stdout)
    assert proc.returncode == 1 and body["ok"] is False and "division by zero" in body["error"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["tools", "call", "calculator", "--args", "{not json"], "not valid JSON"),
        (["tools", "call", "nope", "--args", "{}"], "unknown tool 'nope'"),
        (["tools", "call", "calculator", "--args", '{"expression": "9**9**9**9"}'], "too large"),
        (["ask", "hi", "--llm", "banana"], "unknown LLM spec 'banana'"),
        (["ask", "hi", "--llm", "scripted:/no/such/file.jsonl"], "scripted model file not found"),
        (["ask", "hi", "--image", "/no/such.png", "--llm", "bundled"], "image not found: /no/such.png"),
        (["ask", "   "], "the question is empty"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["ask"], "Missing argument 'QUESTION'"),
    ],
)
def test_bad_input_is_one_clear_line(data_dir, args, expected):
    line = one_line_error(mmagent(*args))
    assert expected in line


def test_bad_config_is_one_line(data_dir, monkeypatch):
    monkeypatch.setenv("MMAGENT_LIMITS__MAX_STEPS", "-3")
    assert "invalid configuration: limits.max_steps" in one_line_error(mmagent("doctor"))
    monkeypatch.delenv("MMAGENT_LIMITS__MAX_STEPS")
    monkeypatch.setenv("MMAGENT_CONFIG", "/no/such.toml")
    assert "MMAGENT_CONFIG" in one_line_error(mmagent("doctor"))


def test_doctor_explains_the_choice(data_dir, tmp_path, monkeypatch):
    proc = mmagent("doctor", "--json")
    info = json.loads(proc.stdout)
    assert info["llm"]["chosen"] == "bundled" and "no OpenAI server" in info["llm"]["why"]
    assert "cpu" in info["devices"]["available_devices"]
    assert "calculator" in info["tools"]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    info = json.loads(mmagent("doctor", "--json").stdout)
    assert info["llm"]["chosen"].startswith("openai:") and "OPENAI_BASE_URL" in info["llm"]["why"]
    (tmp_path / "mmagent.toml").write_text('llm = "scripted:x.jsonl"\n[limits]\nmax_steps = 5\n')
    info = json.loads(mmagent("doctor", "--json").stdout)
    assert info["llm"]["chosen"] == "scripted:x.jsonl"
