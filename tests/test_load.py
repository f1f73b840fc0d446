"""Issue 8, load: 50 concurrent sessions against `mmagent serve` (bench/load.py) leave no trace in
each other's answers, threads or memories, with no errors; and the leak checks do catch leaks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import echo_model, load

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 150  # a generous bound for a shared 2-core machine; each variant takes 25-40 s


def ledger_of_two() -> tuple[load.Ledger, str, str]:
    ledger = load.Ledger()
    return ledger, ledger.new_token(0), ledger.new_token(1)


def test_a_foreign_token_in_a_response_is_a_leak_and_an_own_one_is_not():
    ledger, mine, theirs = ledger_of_two()
    assert load.scan(ledger, 0, "chat", f"answer with {mine}") == []
    found = load.scan(ledger, 0, "chat", f"answer with {mine} and {theirs}")
    assert found == [{"session": 0, "where": "chat", "tokens": [theirs], "threads": [], "owners": [1]}]


def test_a_token_nobody_sent_counts_as_a_leak_too():
    ledger, _, _ = ledger_of_two()
    stray = "tok" + "0" * 32
    assert load.scan(ledger, 0, "GET /v1/threads/x", json.dumps({"content": stray}))[0]["owners"] == [-1]


def test_another_sessions_thread_in_a_listing_is_a_leak():
    ledger, _, _ = ledger_of_two()
    ledger.thread_owner.update({"mine": 0, "theirs": 1})
    assert load.listing_leaks(ledger, 0, "GET /v1/threads", ["mine"]) == []
    assert load.listing_leaks(ledger, 0, "GET /v1/threads", ["mine", "theirs"])[0]["threads"] == ["theirs"]


def test_a_memory_stored_under_the_wrong_user_is_a_leak():
    ledger, mine, theirs = ledger_of_two()
    users = {0: "ada", 1: "bob"}
    assert load.stored_memory_leaks(ledger, users, [("ada", f"my secret is {mine}"), ("bob", f"my secret is {theirs}")]) == []
    found = load.stored_memory_leaks(ledger, users, [("ada", f"my secret is {theirs}")])
    assert [(f["session"], f["tokens"]) for f in found] == [(0, [theirs])]


def test_the_echo_model_repeats_every_token_of_its_prompt():
    # A memory recalled into the system prompt is where a cross-user leak would hide: the echo
    # model must surface a token from there, not only from the user's message.
    ledger, mine, theirs = ledger_of_two()
    body = {"messages": [{"role": "system", "content": f"What you remember about the user:\n- my secret is {theirs}"},
                         {"role": "user", "content": f"My secret is {mine}."},
                         {"role": "tool", "tool_call_id": "c1", "content": "42"}]}
    reply = echo_model.reply_for(body)
    assert set(load.TOKEN.findall(reply["content"])) == {mine, theirs}
    assert load.scan(ledger, 0, "chat", reply["content"])[0]["tokens"] == [theirs]


def test_the_echo_model_remembers_the_users_own_token():
    mine = "tok" + "a" * 32
    body = {"messages": [{"role": "user", "content": f"My secret is {mine}."}], "tools": [{"type": "function"}]}
    calls = {c["function"]["name"]: json.loads(c["function"]["arguments"]) for c in echo_model.reply_for(body)["tool_calls"]}
    assert calls["remember"] == {"text": load.secret_text(mine)} and set(calls) == {"calculator", "remember", "recall"}


def test_anything_the_server_logs_under_load_is_an_error():
    log = "mmagent serving on http://127.0.0.1:1/ (UI)\nmmagent serving with model x\nthread bookkeeping failed for t: locked\n"
    assert load.log_problems(log) == ["thread bookkeeping failed for t: locked"]


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE_S + 60)
# Two turns on the scripted model (chat conversations continue a thread, memories pile up);
# one on the echo model keeps the pair under a minute or so: its turn already checks every
# prompt, and 50 users' memories are written at once.
@pytest.mark.parametrize(("variant", "turns"), [("scripted", 2), ("echo", 1)])
def test_fifty_concurrent_sessions_no_errors_no_leaks(variant, turns):
    command = [sys.executable, str(ROOT / "bench" / "load.py"), "--json", "--variant", variant,
               "--sessions", "50", "--turns", str(turns), "--deadline-s", str(DEADLINE_S)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE_S + 45, cwd=ROOT)
    report = json.loads(done.stdout)
    [result] = report["variants"]
    assert result["errors"] == [] and result["leaks"] == [], done.stdout[-4000:]
    assert report["ok"] and done.returncode == 0
    assert result["agent_turns"] == 50 * turns
    assert set(result["latency_ms"]) == set(load.REPORTED)  # every surface was hit and timed
    assert all(row["p95_ms"] > 0 for row in result["latency_ms"].values())
