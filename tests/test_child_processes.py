"""The server's child processes (multimodal/child_process.py): the sentence encoder and long-term
memory's Chroma run there, give the same answers as in the server's own process, survive the
child being killed, and never outlive the server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from memory.long_term import LongTermMemory
from memory.store_process import ChromaProcess
from multimodal.child_process import ChildProcess
from multimodal.text_embeddings import SentenceEncoder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_a_call_runs_in_the_child_and_its_errors_come_back_as_themselves():
    child = ChildProcess("the test child", time.sleep, (0,))
    try:
        pid = child.call(os.getpid)
        assert pid == child.pid and pid != os.getpid()
        with pytest.raises(ValueError, match="invalid literal"):
            child.call(int, "not a number")
        assert child.call(os.getpid) == pid  # an error of a call leaves the child as it was
    finally:
        child.close()
    assert child.pid is None


def test_a_killed_child_is_replaced_and_the_call_retried():
    child = ChildProcess("the test child", time.sleep, (0,))
    try:
        first = child.call(os.getpid)
        os.kill(first, signal.SIGKILL)
        time.sleep(0.2)
        second = child.call(os.getpid)
        assert second != first and child.restarts == 1
    finally:
        child.close()


def test_calls_from_several_threads_overlap_in_the_child():
    # The memory store's child must not be a queue: a Chroma read waits on Chroma's threads.
    child = ChildProcess("the test child", time.sleep, (0,))
    try:
        child.call(os.getpid)

        async def four():
            return await asyncio.gather(*(asyncio.to_thread(child.call, time.sleep, 0.5) for _ in range(4)))

        start = time.perf_counter()
        asyncio.run(four())
        assert time.perf_counter() - start < 1.5  # one at a time: 2 s
    finally:
        child.close()


def test_the_child_exits_when_its_parent_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from multimodal.child_process import ChildProcess
        if __name__ == "__main__":
            child = ChildProcess("the test child", time.sleep, (0,))
            print(child.call(os.getpid), flush=True)
            time.sleep(60)
    """)
    path = tmp_path / "parent.py"
    path.write_text(script)
    parent = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert _alive(pid)
        parent.kill()  # kill -9: no clean-up runs in the parent
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), "the child outlived its parent"
    finally:
        parent.kill()


@pytest.mark.slow
def test_the_encoder_in_a_child_gives_the_same_vectors():
    texts = ["Remember that my name is Ada.", "记住我喜欢水彩风格", "What is 17% of 2340?"]
    here, there = SentenceEncoder(), SentenceEncoder(child_process=True)
    try:
        np.testing.assert_allclose(there.encode(texts), here.encode(texts), atol=1e-6)
        assert there.dim == here.dim
    finally:
        there.close()


def test_memory_in_a_child_process_reads_its_writes_and_keeps_them(tmp_path):
    from tests.knowledge_helpers import HashEmbedder

    encoder = HashEmbedder()
    path = tmp_path / "memory"

    async def remember_and_recall(process: ChromaProcess) -> tuple[list[str], list[str]]:
        mem = LongTermMemory(process.collections, encoder, close=process.close)
        try:
            await mem.remember("alice", "My cat is called Tom.")
            await mem.remember("bob", "I live in Lisbon.")
            mine = [m.text for m in await mem.recall("alice", "cat", k=5)]
            listed = [m.text for m in await mem.list("memory", "bob")]
            return mine, listed
        finally:
            mem.close()

    first = ChromaProcess(path)
    mine, listed = asyncio.run(remember_and_recall(first))
    assert mine == ["My cat is called Tom."] and listed == ["I live in Lisbon."]
    assert first.child.pid is None  # closed with the memory

    async def read_back() -> list[str]:
        second = ChromaProcess(path)
        mem = LongTermMemory(second.collections, encoder, close=second.close)
        try:
            return [m.text for m in await mem.list("memory", "alice")]
        finally:
            mem.close()

    assert asyncio.run(read_back()) == ["My cat is called Tom."]


def test_a_collection_proxy_offers_only_the_calls_memory_makes(tmp_path):
    process = ChromaProcess(tmp_path / "memory")
    try:
        proxies = process.collections()
        assert set(proxies) == {"memory", "note"}
        assert proxies["memory"].count() == 0
        with pytest.raises(AttributeError):
            proxies["memory"].modify  # noqa: B018 - the attribute access is the test
    finally:
        process.close()
