"""Conversation threads: LangGraph checkpoints in SQLite under the data folder.

Checkpoints are read back with strict msgpack deserialisation (only plain data and LangChain
message types), so a tampered database cannot make us import and call arbitrary code.

`ThreadCatalog` records who owns each thread (one user can never list, read or continue
another's), its title and last activity, and does the retention work: listing, deleting,
pruning by age/count, and compacting old checkpoint versions.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from pydantic import BaseModel

from memory.sqlite_db import Database


def strict_serializer() -> JsonPlusSerializer:
    # allowed_msgpack_modules=None means: the built-in allowlist of safe types only,
    # the same as LANGGRAPH_STRICT_MSGPACK=true but without depending on the environment.
    return JsonPlusSerializer(allowed_msgpack_modules=None)


class Checkpointer(SqliteSaver):
    """LangGraph's SQLite saver; its async calls each run whole in the database's thread,
    which commits (memory/sqlite_db.py)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db.conn, serde=strict_serializer())
        self.db = db

    @contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        # LangGraph's commits after every statement; the database commits once per batch.
        with self.lock:
            self.setup()
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    async def aget_tuple(self, config):
        return await self.db.run(self.get_tuple, config)

    async def alist(self, config, *, filter=None, before=None, limit=None):  # noqa: A002 - LangGraph's name
        rows = await self.db.run(lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for row in rows:
            yield row

    async def aput(self, config, checkpoint, metadata, new_versions):
        return await self.db.run(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = "") -> None:
        await self.db.run(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await self.db.run(self.delete_thread, thread_id)

    async def aget_delta_channel_history(self, *, config, channels):
        return await self.db.run(self.get_delta_channel_history, config=config, channels=channels)


@asynccontextmanager
async def open_checkpointer(db_path: Path) -> AsyncIterator[Checkpointer]:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db = await Database.open(str(db_path))
    try:
        saver = Checkpointer(db)
        await db.run_alone(saver.setup)  # executescript: not inside a transaction
        yield saver
    finally:
        await db.close()


@asynccontextmanager
async def open_threads(db_path: Path | None) -> AsyncIterator[tuple[Any, ThreadCatalog]]:
    """The checkpointer and the thread catalog: in SQLite at `db_path`, or in memory when None."""
    if db_path is not None:
        async with open_checkpointer(db_path) as saver:
            catalog = ThreadCatalog(saver.db)
            await catalog.setup()
            yield saver, catalog
        return
    from langgraph.checkpoint.memory import InMemorySaver

    db = await Database.open(":memory:")
    try:
        catalog = ThreadCatalog(db, has_checkpoints=False)
        await catalog.setup()
        yield InMemorySaver(serde=strict_serializer()), catalog
    finally:
        await db.close()


# ---------------------------------------------------------------- the thread catalog


class ThreadError(Exception):
    """A thread the caller may not use; the message is safe to show."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ThreadNotFound(ThreadError, KeyError):
    pass


class ThreadAccessDenied(ThreadError, PermissionError):
    pass


class ThreadInfo(BaseModel):
    id: str
    user_id: str
    title: str = ""
    created_at: float
    updated_at: float
    messages: int = 0
    feedback: str | None = None  # "good" / "bad": the latest thumbs on the thread

    def public(self) -> dict[str, Any]:
        """What the UI and the API list: times as ISO 8601 UTC."""
        data = self.model_dump(exclude={"user_id"})
        for key in ("created_at", "updated_at"):
            data[key] = iso(data[key])
        return data


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS mmagent_threads (
    thread_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    messages INTEGER NOT NULL DEFAULT 0,
    feedback TEXT
);
CREATE INDEX IF NOT EXISTS mmagent_threads_by_user ON mmagent_threads (user_id, updated_at);
"""
_COLUMNS = "thread_id, user_id, title, created_at, updated_at, messages, feedback"
_BY_ID = f"SELECT {_COLUMNS} FROM mmagent_threads WHERE thread_id = ?"


class ThreadCatalog:
    """Who owns each thread, its title and activity: the index behind listing, access checks
    and retention. It lives next to LangGraph's checkpoint tables (same database, same thread),
    which it can also compact: LangGraph keeps every step's checkpoint forever otherwise."""

    def __init__(self, db: Database, *, has_checkpoints: bool = True) -> None:
        self.db = db
        self.has_checkpoints = has_checkpoints

    async def setup(self) -> None:
        await self.db.run_alone(self._setup)  # executescript: not inside a transaction

    def _setup(self) -> None:
        conn = self.db.conn
        conn.executescript(_SCHEMA)
        if self.has_checkpoints:
            # Threads written before the catalog existed belong to the single local user.
            now = time.time()
            conn.execute(
                "INSERT OR IGNORE INTO mmagent_threads (thread_id, user_id, created_at, updated_at) "
                "SELECT DISTINCT thread_id, 'local', ?, ? FROM checkpoints",
                (now, now),
            )
        conn.commit()  # run alone: nobody else's transaction to commit

    async def get(self, thread_id: str) -> ThreadInfo | None:
        rows = await self._fetch(_BY_ID, (thread_id,))
        return rows[0] if rows else None

    async def check(self, thread_id: str, user_id: str) -> ThreadInfo:
        """The thread, if it exists and `user_id` owns it."""
        return _owned(await self.get(thread_id), thread_id, user_id)

    async def claim(self, thread_id: str, user_id: str, title: str) -> None:
        """Start using a thread: a new one becomes `user_id`'s; someone else's is refused."""
        await self.db.run(self._claim, thread_id, user_id, title)

    def _claim(self, thread_id: str, user_id: str, title: str) -> None:
        now = time.time()
        conn = self.db.conn
        conn.execute(
            "INSERT OR IGNORE INTO mmagent_threads (thread_id, user_id, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (thread_id, user_id, title[:200], now, now),
        )
        row = conn.execute(_BY_ID, (thread_id,)).fetchone()
        _owned(_info(row) if row else None, thread_id, user_id)

    async def touch(self, thread_id: str, messages: int) -> None:
        await self._write("UPDATE mmagent_threads SET updated_at = ?, messages = ? WHERE thread_id = ?", (time.time(), messages, thread_id))

    async def set_feedback(self, thread_id: str, good: bool) -> None:
        await self._write("UPDATE mmagent_threads SET feedback = ? WHERE thread_id = ?", ("good" if good else "bad", thread_id))

    async def list(self, user_id: str | None = None) -> list[ThreadInfo]:
        """Threads, most recently updated first; all users' when `user_id` is None (admin CLI)."""
        if user_id is None:
            return await self._fetch(f"SELECT {_COLUMNS} FROM mmagent_threads ORDER BY updated_at DESC", ())
        return await self._fetch(
            f"SELECT {_COLUMNS} FROM mmagent_threads WHERE user_id = ? ORDER BY updated_at DESC", (user_id,)
        )

    async def remove(self, thread_id: str) -> None:
        await self._write("DELETE FROM mmagent_threads WHERE thread_id = ?", (thread_id,))

    async def expired(self, max_age_days: float | None, max_threads: int | None, now: float | None = None) -> list[str]:
        """Threads past the retention limits: older than the age limit, or beyond the newest `max_threads`."""
        now = time.time() if now is None else now
        ids: list[str] = []
        if max_age_days is not None:
            rows = await self._fetch(f"SELECT {_COLUMNS} FROM mmagent_threads WHERE updated_at < ?", (now - max_age_days * 86400,))
            ids += [r.id for r in rows]
        if max_threads is not None:
            rows = await self._fetch(f"SELECT {_COLUMNS} FROM mmagent_threads ORDER BY updated_at DESC LIMIT -1 OFFSET ?", (max_threads,))
            ids += [r.id for r in rows]
        return list(dict.fromkeys(ids))

    async def compact(self, thread_id: str | None = None) -> int:
        """Delete every checkpoint but the latest per thread (and their pending writes); returns
        how many checkpoints went. Safe for this graph: its channels are whole values (no
        DeltaChannel), so the latest checkpoint alone restores the state and resumes a run."""
        if not self.has_checkpoints:
            return 0
        return await self.db.run(self._compact, thread_id)

    def _compact(self, thread_id: str | None) -> int:
        where, args = ("c.thread_id = ? AND ", (thread_id,)) if thread_id else ("", ())
        latest = (
            "(SELECT MAX(k.checkpoint_id) FROM checkpoints k "
            "WHERE k.thread_id = c.thread_id AND k.checkpoint_ns = c.checkpoint_ns)"
        )
        conn = self.db.conn
        removed = conn.execute(f"DELETE FROM checkpoints AS c WHERE {where}c.checkpoint_id < {latest}", args).rowcount
        conn.execute(f"DELETE FROM writes AS c WHERE {where}c.checkpoint_id < {latest}", args)
        return removed

    async def vacuum(self) -> None:
        """Give freed pages back to the file system (SQLite keeps them otherwise)."""
        await self.db.run_alone(self._vacuum)

    def _vacuum(self) -> None:
        conn = self.db.conn
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def _fetch(self, sql: str, args: tuple[Any, ...]) -> list[ThreadInfo]:
        rows = await self.db.run(lambda: self.db.conn.execute(sql, args).fetchall())
        return [_info(row) for row in rows]

    async def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        await self.db.run(self.db.conn.execute, sql, args)


def _info(row: tuple[Any, ...]) -> ThreadInfo:
    keys = ("id", "user_id", "title", "created_at", "updated_at", "messages", "feedback")
    return ThreadInfo(**dict(zip(keys, row)))


def _owned(info: ThreadInfo | None, thread_id: str, user_id: str) -> ThreadInfo:
    if info is None:
        raise ThreadNotFound(f"no thread {thread_id!r}")
    if info.user_id != user_id:
        raise ThreadAccessDenied(f"thread {thread_id!r} belongs to another user")
    return info
