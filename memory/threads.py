"""Conversation threads: LangGraph checkpoints in SQLite under the data folder.

Checkpoints are read back with strict msgpack deserialisation (only plain data and LangChain
message types), so a tampered database cannot make us import and call arbitrary code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver


def strict_serializer() -> JsonPlusSerializer:
    # allowed_msgpack_modules=None means: the built-in allowlist of safe types only,
    # the same as LANGGRAPH_STRICT_MSGPACK=true but without depending on the environment.
    return JsonPlusSerializer(allowed_msgpack_modules=None)


@asynccontextmanager
async def open_checkpointer(db_path: Path) -> AsyncIterator[AsyncSqliteSaver]:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(str(db_path)) as conn:
        # WAL lets a reader (UI listing threads) work while a run writes.
        await conn.execute("PRAGMA journal_mode=WAL")
        saver = AsyncSqliteSaver(conn, serde=strict_serializer())
        await saver.setup()
        yield saver
