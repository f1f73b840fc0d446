"""The thread database's connection: one SQLite connection, one thread, group commit.

Each operation (a checkpoint read or write, a catalog query) runs whole in that thread: the
event loop hands it over once and gets the result once. With aiosqlite every statement went
back to the event loop under LangGraph's lock for the connection, and under load each return
waited for the loop's next turn: the lock was held 90% of the time and every agent turn queued
on it (bench/load.py, docs/benchmarks.md).

Operations that queue up while the thread is busy run as one transaction with one commit, each
inside a savepoint of its own, so one that fails is rolled back alone. A caller hears of its
operation only after the commit, so what it was told is stored is on disk (in the WAL), as with
a commit per operation.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = object()


class Database:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="sqlite", daemon=True)
        self._thread.start()
        #: Commits made and operations run (operations / batches: how much they shared).
        self.batches = 0
        self.operations = 0

    @classmethod
    async def open(cls, path: str) -> Database:
        return cls(await asyncio.to_thread(connect, path))

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in the database's thread, in a transaction; never commits itself."""
        return await self._submit(functools.partial(fn, *args, **kwargs), True)

    async def run_alone(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """For what cannot run in a transaction (VACUUM, executescript): after the batch before it commits."""
        return await self._submit(functools.partial(fn, *args, **kwargs), False)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._queue.put((_STOP, loop, done, False))
        await done
        await asyncio.to_thread(self._thread.join)

    async def _submit(self, call: Callable[[], T], transaction: bool) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((call, loop, future, transaction))
        return await future

    # ------------------------------------------------------------ in the thread

    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            outcomes = [self._execute(call, transaction) for call, _, _, transaction in batch if call is not _STOP]
            try:
                if self.conn.in_transaction:
                    self.conn.commit()
            except Exception as exc:  # noqa: BLE001 - a failed commit stored none of them
                self.conn.rollback()
                outcomes = [(None, exc) for _ in outcomes]
            self.batches += 1
            self.operations += len(outcomes)
            stopping = any(item[0] is _STOP for item in batch)
            if stopping:
                self.conn.close()
            results = iter(outcomes)
            by_loop: dict[Any, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
            for call, loop, future, _ in batch:
                result, error = (None, None) if call is _STOP else next(results)
                by_loop.setdefault(loop, []).append((future, result, error))
            for loop, deliveries in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_deliver, deliveries)
                except RuntimeError:  # that event loop has closed: nobody waits any more
                    pass
            if stopping:
                return

    def _execute(self, call: Callable[[], Any], transaction: bool) -> tuple[Any, BaseException | None]:
        conn = self.conn
        if not transaction:
            if conn.in_transaction:
                conn.commit()
            try:
                return call(), None
            except BaseException as exc:  # noqa: BLE001 - it goes to the caller
                return None, exc
        if not conn.in_transaction:
            conn.execute("BEGIN")
        conn.execute("SAVEPOINT operation")
        try:
            result = call()
        except BaseException as exc:  # noqa: BLE001 - it goes to the caller; the others stay
            if conn.in_transaction:
                conn.execute("ROLLBACK TO operation")
                conn.execute("RELEASE operation")
            return None, exc
        if conn.in_transaction:
            conn.execute("RELEASE operation")
        return result, None


def _deliver(deliveries: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in deliveries:
        if future.done():  # its caller was cancelled meanwhile
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)  # used by the database's thread only
    # WAL lets a reader (another process listing threads) work while a run writes.
    conn.execute("PRAGMA journal_mode=WAL")
    # Every graph step commits a checkpoint (durability="sync"). In WAL mode NORMAL syncs at
    # WAL checkpoints instead of at every commit: a killed process loses nothing (commits are
    # in the WAL file), a power cut at most the last commits, and the database never corrupts.
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn
