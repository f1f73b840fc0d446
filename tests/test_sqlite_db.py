"""The thread database's connection (memory/sqlite_db.py): operations that queue up share one
commit, a failing one is rolled back alone, and what a caller was told is stored is stored."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import pytest

from agent.run_tracker import SETTLED_LIMIT, RunTracker
from memory.sqlite_db import Database


def _insert(db: Database, value: int) -> int:
    db.conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
    return value


def _insert_then_fail(db: Database, value: int) -> None:
    db.conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
    raise ValueError(f"operation {value} failed after its write")


@contextlib.asynccontextmanager
async def _database_with_table(path: str):
    db = await Database.open(path)
    try:
        await db.run_alone(db.conn.executescript, "CREATE TABLE t (v INTEGER)")
        yield db
    finally:
        await db.close()


def _rows(path) -> list[int]:
    with sqlite3.connect(path) as other:  # another connection: sees committed rows only
        return sorted(v for (v,) in other.execute("SELECT v FROM t"))


def test_queued_operations_share_a_commit_and_a_failure_is_rolled_back_alone(tmp_path):
    path = str(tmp_path / "threads.sqlite")

    async def go():
        async with _database_with_table(path) as db:
            calls = [db.run(_insert, db, i) for i in range(20)] + [db.run(_insert_then_fail, db, 99)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            return results, db.batches, db.operations

    results, batches, operations = asyncio.run(go())
    assert results[:20] == list(range(20))
    assert isinstance(results[20], ValueError) and "99" in str(results[20])
    assert _rows(path) == list(range(20))  # 99 was rolled back, the others are committed
    assert batches < operations  # they shared commits


def test_a_result_arrives_after_its_commit(tmp_path):
    path = str(tmp_path / "threads.sqlite")

    async def go():
        async with _database_with_table(path) as db:
            await db.run(_insert, db, 7)
            return _rows(path)  # read by another connection before anything else happens

    assert asyncio.run(go()) == [7]


def test_vacuum_and_scripts_run_outside_a_transaction(tmp_path):
    path = str(tmp_path / "threads.sqlite")

    async def go():
        async with _database_with_table(path) as db:
            await asyncio.gather(db.run(_insert, db, 1), db.run_alone(db.conn.execute, "VACUUM"), db.run(_insert, db, 2))

    asyncio.run(go())
    assert _rows(path) == [1, 2]


def test_a_thread_is_settled_only_when_no_run_is_going_on():
    runs = RunTracker()
    with runs.running("t1"):
        runs.settle("t1")  # a run is still going on: not settled
        assert not runs.settled("t1") and runs.live("t1")
    runs.settle("t1")
    assert runs.settled("t1") and not runs.live("t1")
    with runs.running("t1"):  # a new run unsettles it
        assert not runs.settled("t1")
    for i in range(SETTLED_LIMIT + 5):
        runs.settle(f"x{i}")
    assert not runs.settled("x0") and runs.settled(f"x{SETTLED_LIMIT + 4}")


@pytest.mark.parametrize("settled", [False, True])
def test_history_is_the_same_whether_the_thread_is_known_settled(tmp_path, settled):
    from agent.config import Settings
    from agent.runner import open_agent
    from tests.conftest import say, write_script

    script = write_script(tmp_path / "s.jsonl", say("1. Answer"), say("Hello there."))
    settings = Settings(data_dir=tmp_path / "data", llm=f"scripted:{script}")
    settings.memory.long_term = False

    async def go():
        async with open_agent(settings, prepare=False) as agent:
            await agent.arun("Say hello.", thread_id="th1")
            assert agent._runs.settled("th1")  # the turn ended with no steps left
            if not settled:
                agent._runs._settled.clear()
            return await agent.history("th1")

    history = asyncio.run(go())
    assert [(m["role"], m["content"]) for m in history] == [("user", "Say hello."), ("assistant", "Hello there.")]
