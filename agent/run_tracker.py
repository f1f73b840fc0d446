"""Which threads have a run going on in this process, and which are known to be settled.

A thread's checkpoint with steps left means a run is going on or was killed mid-way; only the
second is "interrupted". Asking LangGraph means loading and unpacking the whole checkpoint
(`aget_state`), which every new turn and every `GET /v1/threads/{id}` did: under load about a
tenth of the server's GIL time (bench/load.py). A thread whose last run in this process ended
with no steps left, and that no run has touched since, is settled: nothing to load to know it.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Settled threads remembered (most recent first out of the door); older ones are asked again.
SETTLED_LIMIT = 10_000


class RunTracker:
    def __init__(self) -> None:
        # Threads with a run going on in this process: their checkpoint has steps left too, but
        # they are not interrupted, and resuming them would run the graph twice on one thread.
        self._live: Counter[str] = Counter()
        self._settled: OrderedDict[str, None] = OrderedDict()

    @contextmanager
    def running(self, thread_id: str) -> Iterator[None]:
        self._settled.pop(thread_id, None)
        self._live[thread_id] += 1
        try:
            yield
        finally:
            self._live[thread_id] -= 1
            if self._live[thread_id] <= 0:
                del self._live[thread_id]  # a long-lived server sees many threads

    def live(self, thread_id: str) -> bool:
        return self._live[thread_id] > 0

    def settled(self, thread_id: str) -> bool:
        return thread_id in self._settled

    def settle(self, thread_id: str) -> None:
        """The thread's checkpoint was just seen with no steps left (unless a run started since)."""
        if self.live(thread_id):
            return
        self._settled[thread_id] = None
        self._settled.move_to_end(thread_id)
        while len(self._settled) > SETTLED_LIMIT:
            self._settled.popitem(last=False)


async def saved_messages(checkpointer: Any, thread_id: str) -> list[Any]:
    """The messages of a thread with no steps left: with no pending writes, the latest
    checkpoint's messages are the state's, without building LangGraph's state snapshot."""
    saved = await checkpointer.aget_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
    return saved.checkpoint["channel_values"].get("messages", []) if saved else []
