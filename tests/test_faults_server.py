"""Faults: the server (or an ingest) killed with SIGKILL mid-way, then started again.

Real processes, real SQLite and Chroma files: `mmagent serve` is killed while a turn waits for
the (scripted) model after its tool ran, and a new process on the same data folder must still
list the thread, show every message written before the kill, resume the run without running the
tool again, and find the knowledge base and the long-term memory as they were. An ingest killed
between two write batches must leave a store that opens, answers, and is repaired by re-ingesting.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import call, calls, say, write_script
from tests.processes import free_port, stop, wait_until_up
from tests.ui_server import mmagent_command

USER = {"X-MMAGENT-User": "ada"}
DOC = """# Zebrafish husbandry

Adult zebrafish are kept at 28.5 degrees Celsius on a 14 hours light, 10 hours dark cycle.

## Feeding

Larvae get paramecia from day five; adults are fed brine shrimp twice a day.
"""
MEMORY = "My lab keeps zebrafish in tank room B."
STALL_S = 600  # the stalled model call outlives the test; the kill ends it


class Server:
    """A real `mmagent serve` on a free loopback port over `data_dir` (what `make run` starts)."""

    def __init__(self, tmp: Path, data_dir: Path, script: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}.log"
        env = {**os.environ, "MMAGENT_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
        for leaked in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "MMAGENT_API_KEY", "CHROMA_HOST", "CHROMA_PORT"):
            env.pop(leaked, None)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [*mmagent_command(), "serve", "--port", str(self.port), "--llm", f"scripted:{script}"],
            cwd=tmp, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        try:
            wait_until_up(self.proc, self.url + "/v1/health", 120, self.log_path)
        except RuntimeError:
            self.kill()
            raise

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing, as when the machine loses power or the OOM killer strikes."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def stop(self) -> None:
        stop(self.proc, grace_s=20)
        self._log.close()


def iter_sse(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """(event name, data) as each server-sent event arrives."""
    name, data = "message", []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def start_run(url: str, thread: str, text: str, events: queue.Queue) -> threading.Thread:
    """POST /runs in a thread; its events go to `events` until the stream ends or breaks."""

    def read() -> None:
        try:
            with httpx.stream("POST", f"{url}/v1/threads/{thread}/runs", json={"input": text}, headers=USER,
                              timeout=httpx.Timeout(10, read=STALL_S)) as response:
                for event in iter_sse(response):
                    events.put((thread, *event))
        except httpx.HTTPError as exc:  # the kill cuts the stream
            events.put((thread, "cut", str(exc)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def wait_for(check, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def roles(messages: list[dict[str, Any]]) -> list[str]:
    return [m["role"] for m in messages]


def tool(http: httpx.Client, name: str, **arguments: Any) -> dict[str, Any]:
    response = http.post(f"/v1/tools/{name}/invoke", json=arguments, headers=USER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"], body
    return body


@pytest.mark.slow
def test_scripted_delay_stalls_one_call_and_is_checked(tmp_path):
    """The stall the kill test relies on: `delay_s` holds that one reply back, nothing else."""
    import asyncio

    from agent.llm.base import ChatRequest, LLMError
    from agent.llm.scripted import ScriptedBackend, load_script

    for bad in (-1, "2", True, None, 1e9, float("nan")):
        with pytest.raises(LLMError, match=r"bad\.jsonl:1: delay_s must be a number of seconds from 0 to 3600$"):
            load_script(write_script(tmp_path / "bad.jsonl", {**say("x"), "delay_s": bad}))
    backend = ScriptedBackend(write_script(tmp_path / "ok.jsonl", {**say("slow"), "delay_s": 0.5}, say("fast")))
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}])

    async def timed(session: str) -> tuple[str, float]:
        started = time.monotonic()
        reply = await backend.complete(request, session=session)
        return reply.content, time.monotonic() - started

    async def go():
        first = await asyncio.gather(timed("a"), timed("b"))  # two sessions wait side by side, not in turn
        return first, await timed("a")

    (a, b), after = asyncio.run(go())
    assert a[0] == b[0] == "slow" and 0.5 <= a[1] < 0.95 and 0.5 <= b[1] < 0.95  # in turn, b would take 1 s
    assert after[0] == "fast" and after[1] < 0.4


@pytest.mark.slow
def test_server_killed_mid_run_resumes_from_its_checkpoint(tmp_path):
    data = tmp_path / "data"
    doc = tmp_path / "zebrafish.md"
    doc.write_text(DOC, encoding="utf-8")
    env = {**os.environ, "MMAGENT_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"}
    env.pop("CHROMA_HOST", None)
    ingested = subprocess.run([*mmagent_command(), "ingest", str(doc), "--collection", "lab", "--json"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ingested.returncode == 0, ingested.stderr
    chunks = json.loads(ingested.stdout)["files"][0]["chunks"]
    assert chunks >= 2

    # Both threads: plan, one calculator call, then a model call that stalls until the kill.
    before = write_script(
        tmp_path / "before.jsonl",
        say("1. Multiply with the calculator\n2. Answer"),
        calls(call("calculator", {"expression": "6*7"}, "c1")),
        {**say("never sent: the server dies first"), "delay_s": STALL_S},
    )
    server = Server(tmp_path, data, before, "first")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert "tank room B" in json.dumps(tool(http, "remember", text=MEMORY))
            events: queue.Queue = queue.Queue()
            readers = [start_run(server.url, t, "What is 6 times 7?", events) for t in ("k1", "k2")]
            results: dict[str, Any] = {}
            deadline = time.monotonic() + 120
            while len(results) < 2:
                thread, name, value = events.get(timeout=max(0.1, deadline - time.monotonic()))
                assert name not in ("final", "error", "cut"), (thread, name, value, server.log())
                if name == "tool_result":
                    results[thread] = value
            assert all(r["ok"] and r["result"] == "42" for r in results.values())

            def checkpointed(thread: str):
                # The tool result is in the checkpoint (durability="sync") before the next step.
                body = http.get(f"/v1/threads/{thread}", headers=USER).json()
                return body["messages"] if roles(body.get("messages", [])) == ["user", "assistant", "tool"] else None

            written = {t: wait_for(lambda t=t: checkpointed(t), f"the checkpoint of {t}") for t in ("k1", "k2")}
            assert http.get("/v1/threads/k1", headers=USER).json()["interrupted"] is False  # running, not dead
            conflict = http.post("/v1/threads/k1/resume", headers=USER)
            assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "not_interrupted"
    finally:
        server.kill()
    for reader in readers:
        reader.join(30)
    assert not any(r.is_alive() for r in readers)

    after = write_script(
        tmp_path / "after.jsonl",
        say("6 times 7 is 42."),  # k1's resumed act step; k2's plan for its new request
        say("Your question before was 6 times 7, which is 42."),  # k2's answer
    )
    server = Server(tmp_path, data, after, "second")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            listed = {t["id"] for t in http.get("/v1/threads", headers=USER).json()["data"]}
            assert listed >= {"k1", "k2"}
            for thread in ("k1", "k2"):
                body = http.get(f"/v1/threads/{thread}", headers=USER).json()
                assert body["interrupted"] is True
                assert body["messages"] == written[thread]  # every message written before the kill, in order
            k1 = written["k1"]
            assert k1[0]["content"] == "What is 6 times 7?"
            assert k1[1]["tool_calls"][0]["name"] == "calculator" and k1[2]["content"] == "42"
            assert http.post("/v1/threads/k1/resume").status_code == 404  # another user's thread

            with http.stream("POST", "/v1/threads/k1/resume", headers=USER) as response:
                assert response.status_code == 200, response.read()
                resumed = list(iter_sse(response))
            names = [name for name, _ in resumed]
            assert "tool_call" not in names and "plan" not in names  # completed steps are not redone
            assert names[-1] == "final", resumed
            final = resumed[-1][1]
            assert final["answer"] == "6 times 7 is 42." and final["thread_id"] == "k1" and not final["error"]
            assert [(s["tool"], s["ok"], s["result"]) for s in final["steps"]] == [("calculator", True, "42")]  # ran once

            done = http.get("/v1/threads/k1", headers=USER).json()
            assert done["interrupted"] is False
            assert done["messages"][:3] == k1 and roles(done["messages"]) == ["user", "assistant", "tool", "assistant"]
            assert done["messages"][3]["content"] == "6 times 7 is 42."
            assert len({m["id"] for m in done["messages"]}) == 4  # nothing duplicated
            again = http.post("/v1/threads/k1/resume", headers=USER)
            assert again.status_code == 409 and "no interrupted run" in again.json()["error"]["message"]

            # A new request on the other interrupted thread closes the dead run and keeps its messages.
            with http.stream("POST", "/v1/threads/k2/runs", json={"input": "What did I ask before?"}, headers=USER) as response:
                k2_events = list(iter_sse(response))
            assert k2_events[-1][1]["answer"] == "Your question before was 6 times 7, which is 42."
            k2 = http.get("/v1/threads/k2", headers=USER).json()["messages"]
            assert k2[:3] == written["k2"]
            assert roles(k2) == ["user", "assistant", "tool", "assistant", "user", "assistant"]
            assert "interrupted" in k2[3]["content"]
            assert len({m["id"] for m in k2}) == len(k2)

            # The knowledge base and the long-term memory are as they were.
            hits = tool(http, "retrieve", query="At what temperature are adult zebrafish kept?", collection="lab")["result"]
            assert isinstance(hits, list) and hits[0]["source"] == str(doc.resolve()) and "28.5" in hits[0]["text"]
            assert MEMORY in json.dumps(tool(http, "recall", query="Where are the zebrafish kept?"))
    finally:
        server.stop()

    from agent.config import Settings
    from memory.knowledge import KnowledgeBase

    kb = KnowledgeBase(Settings(data_dir=data))
    try:
        assert [(s["source"], s["chunks"]) for s in kb.sources("lab")] == [(str(doc.resolve()), chunks)]
    finally:
        kb.close()


# ---------------------------------------------------------------- an ingest killed mid-write

INGEST = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tests.knowledge_helpers import make_kb

    # Tiny chunks: one file of some 6,100 chunks is written in two batches (at most 5,000 each).
    kb = make_kb(Path(sys.argv[1]), chunk_size=50, chunk_overlap=0)
    print(kb.ingest([sys.argv[2]], "big").summary(), flush=True)
    """
)


def big_document(path: Path) -> Path:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
    lines = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(7)) + f" row{i}." for i in range(5600)]
    lines[777] = "The secret handshake of the kill test is written here."
    path.write_text("\n\n".join(lines), encoding="utf-8")
    return path


def stored_rows(chroma_dir: Path) -> int:
    """Rows Chroma has committed, read from its SQLite file by another process (read-only)."""
    try:
        with sqlite3.connect(f"file:{chroma_dir / 'chroma.sqlite3'}?mode=ro", uri=True, timeout=0.1) as conn:
            return conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    except sqlite3.Error:  # not created yet, or locked by the writer for a moment
        return 0


@pytest.mark.slow
def test_ingest_killed_mid_write_leaves_a_store_that_reingest_repairs(tmp_path):
    from tests.knowledge_helpers import make_kb

    data, doc = tmp_path / "data", big_document(tmp_path / "big.txt")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", INGEST, str(data), str(doc)], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Kill as soon as the first batch is committed: the file is then part-written.
        killed_at = wait_for(lambda: stored_rows(data / "chroma") or (proc.poll() is not None and -1), "the first batch", 120)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=30)[0]
    assert killed_at > 0, f"the ingest ended before its first batch was seen: {output}"
    assert proc.returncode == -signal.SIGKILL

    kb = make_kb(data, chunk_size=50, chunk_overlap=0)
    partial = kb.count()  # the store opens, with the batches committed before the kill
    assert 0 < partial
    assert kb.retrieve("alpha beta gamma", k=3)  # and answers
    report = kb.ingest([doc], "big")
    item = report.files[0]
    assert partial < item.chunks, "the kill landed after the last batch: nothing was cut short"
    assert item.status == "replaced" and "cut short" in (item.reason or ""), item
    assert kb.count() == item.chunks and kb.sources("big")[0]["chunks"] == item.chunks
    assert any("secret handshake" in hit.text for hit in kb.retrieve("secret handshake of the kill test", k=5, collection="big"))
    assert kb.ingest([doc], "big").files[0].status == "unchanged"
