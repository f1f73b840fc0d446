"""`mmagent memory ...` and `mmagent feedback`."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from apps.cli import cli
from tests.conftest import say, write_script


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_threads_memories_notes_and_feedback_from_the_cli(data_dir, tmp_path):
    script = write_script(tmp_path / "s.jsonl", say("1. Answer"), say("Sydney."))
    assert invoke("ask", "Capital of Australia?", "--llm", f"scripted:{script}", "--thread", "t1").exit_code == 0
    # Each command is a new app: its scripted model starts from its own file's first line.
    reflection = write_script(tmp_path / "r.jsonl", say("Reflection: Canberra is the capital, not Sydney."))

    listed = json.loads(invoke("memory", "threads", "list", "--json").output)
    assert [(t["id"], t["title"], t["messages"]) for t in listed] == [("t1", "Capital of Australia?", 2)]
    assert json.loads(invoke("memory", "threads", "list", "--user", "bob", "--json").output) == []

    out = invoke("feedback", "t1", "--bad", "--comment", "wrong city", "--llm", f"scripted:{reflection}")
    assert out.exit_code == 0 and "Canberra is the capital" in out.output
    notes = json.loads(invoke("memory", "list", "--notes", "--json").output)
    assert [n["text"] for n in notes] == ["Canberra is the capital, not Sydney."]
    found = json.loads(invoke("memory", "search", "capital city of Australia", "--notes", "--json").output)
    assert found[0]["id"] == notes[0]["id"]
    assert "deleted note" in invoke("memory", "delete", notes[0]["id"]).output
    assert json.loads(invoke("memory", "list", "--notes", "--json").output) == []

    exported = json.loads(invoke("memory", "threads", "export", "t1").output)
    assert [m["content"] for m in exported["messages"]] == ["Capital of Australia?", "Sydney."]
    report = json.loads(invoke("memory", "threads", "prune", "--json").output)
    assert report["deleted"] == 0 and report["bytes_after"] > 0
    assert "deleted thread t1" in invoke("memory", "threads", "delete", "t1").output
    assert json.loads(invoke("memory", "threads", "list", "--json").output) == []


def test_cli_errors_are_one_line(data_dir):
    for args in (["memory", "threads", "export", "nope"], ["memory", "delete", "nope"]):
        proc = subprocess.run([sys.executable, "-m", "apps.cli", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
