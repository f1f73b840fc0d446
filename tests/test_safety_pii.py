"""Private data masking: the masker itself, and what reaches long-term memories, reflection notes,
`mmagent memory export` and the logs (traces use the same `mask_pii`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from apps.cli import cli
from memory.pii import CARD, EMAIL, ID_NUMBER, PHONE, luhn_ok, mask_pii
from tests.conftest import call, calls, say, write_script
from tests.processes import ROOT

PRIVATE = "Mail me at li.wei+work@example.com.cn or call 138 1234 5678; ID 11010519900307123X; card 4111-1111-1111-1111."
MASKED = f"Mail me at {EMAIL} or call {PHONE}; ID {ID_NUMBER}; card {CARD}."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PRIVATE, MASKED),
        ("我的手机是13812345678,身份证号110105199003071234。", f"我的手机是{PHONE},身份证号{ID_NUMBER}。"),
        ("+86 139-1234-5678", PHONE),
        ("Office: +44 20 7946 0958, US (415) 555-2671 or 415-555-2671", f"Office: {PHONE}, US {PHONE} or {PHONE}"),
        ("座机 010-62345678", f"座机 {PHONE}"),
        ("SSN 123-45-6789", f"SSN {ID_NUMBER}"),
        ("Amex 3782 822463 10005, Visa 4012888888881881", f"Amex {CARD}, Visa {CARD}"),
    ],
)
def test_private_data_is_masked(text, expected):
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "What is 17% of 2,340?",
        "Released on 2024-05-01; 1,234,567 downloads; version 3.11.4 at 192.168.1.1.",
        "Order 4111111111111112 failed the Luhn check, so it is no card.",
        "Timestamp 1733212345678 ms, range 1-100, ISBN 978-3-16-148410-0.",
        "18 digits that are no date: 123456789012345678",
        "计算 2340 的 17%,时间是 2024年5月1日。",
    ],
)
def test_ordinary_numbers_survive(text):
    assert mask_pii(text) == text


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_memories_and_notes_are_stored_masked_and_export_shows_it(data_dir, tmp_path):
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Remember the contact details with remember"),
        calls(call("remember", {"text": f"The user's contacts: {PRIVATE}"})),
        say("Noted."),
    )
    assert invoke("ask", "Remember my contacts: " + PRIVATE, "--llm", f"scripted:{script}", "--thread", "t1").exit_code == 0
    reflection = write_script(tmp_path / "r.jsonl", say("Reflection: do not repeat the card 4111 1111 1111 1111 or a@b.org back."))
    out = invoke("feedback", "t1", "--bad", "--comment", "you leaked 13912345678", "--llm", f"scripted:{reflection}")
    assert out.exit_code == 0, out.output

    exported = json.loads(invoke("memory", "export").output)
    assert exported["user"] == "local"
    assert [m["text"] for m in exported["memories"]] == [f"The user's contacts: {MASKED}"]
    [note] = exported["notes"]
    assert note["text"] == f"do not repeat the card {CARD} or {EMAIL} back."
    assert note["task"] == "Remember my contacts: " + MASKED
    assert note["outcome"] == f"the user marked the answer as bad: you leaked {PHONE}"
    stored = json.dumps(exported, ensure_ascii=False)
    for secret in ("li.wei", "1234 5678", "11010519900307123X", "4111", "a@b.org", "13912345678"):
        assert secret not in stored

    out = tmp_path / "export.json"
    assert invoke("memory", "export", "--user", "bob", "-o", str(out)).exit_code == 0
    assert json.loads(out.read_text()) == {"user": "bob", "memories": [], "notes": []}


def test_masking_can_be_turned_off(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MMAGENT_SAFETY__MASK_PII", "false")
    script = write_script(tmp_path / "s.jsonl", say("1. remember"), calls(call("remember", {"text": PRIVATE})), say("Noted."))
    assert invoke("ask", "Remember this: " + PRIVATE, "--llm", f"scripted:{script}").exit_code == 0
    assert [m["text"] for m in json.loads(invoke("memory", "export").output)["memories"]] == [PRIVATE]


LOGGING = """
import logging, sys
from apps.cli import _configure_logging
_configure_logging()
logging.getLogger("agent.nodes").warning("user wrote %s", sys.argv[1])
try:
    raise ValueError("bad card 4111 1111 1111 1111")
except ValueError:
    logging.getLogger("apps.api.errors").exception("failed for li@example.org")
"""


@pytest.mark.parametrize("masked", [True, False])
def test_log_lines_are_masked(tmp_path, masked):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MMAGENT_DATA_DIR": str(tmp_path), "MMAGENT_SAFETY__MASK_PII": str(masked).lower()}
    done = subprocess.run([sys.executable, "-c", LOGGING, PRIVATE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    if masked:
        assert f"user wrote {MASKED}" in done.stderr
        assert f"failed for {EMAIL}" in done.stderr and f"bad card {CARD}" in done.stderr
        assert "4111" not in done.stderr and "li@example.org" not in done.stderr
    else:
        assert f"user wrote {PRIVATE}" in done.stderr and "4111 1111 1111 1111" in done.stderr


def test_digits_inside_a_word_are_not_masked():
    # Hex ids and hashes hold long digit runs that pass Luhn or look like a mobile number.
    for token in ("tok14573160458aa2e5351c90471dea6f6a", "tok975b8590820660062832358a825265c9", "sha1:bb618fadbbb433e5a275099036308922"):
        assert mask_pii(f"my secret is {token}") == f"my secret is {token}"
