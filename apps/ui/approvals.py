"""Asking the person in the browser before a tool runs (e.g. image generation).

A run that reaches a gated tool awaits a future here; the browser's Approve/Deny buttons
resolve it. Keyed by (user, thread), so one visitor can never answer another's request.
One instance per UI, never module-level.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class Approvals:
    def __init__(self, timeout_s: float = 300.0) -> None:
        self.timeout_s = timeout_s
        self._pending: dict[tuple[str, str], asyncio.Future[bool]] = {}

    def gate(self, user_id: str, thread_id: str, notify: Callable[[dict[str, Any]], None]) -> Callable[[str, dict[str, Any]], Awaitable[bool]]:
        """The approver for one run: tells the browser, then waits for its answer."""

        async def approve(name: str, arguments: dict[str, Any]) -> bool:
            key = (user_id, thread_id)
            future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._pending[key] = future
            notify({"type": "approval", "name": name, "arguments": arguments})
            try:
                # An unanswered request counts as a refusal, so a closed tab never leaves a run hanging.
                return await asyncio.wait_for(future, self.timeout_s)
            except TimeoutError:
                return False
            finally:
                self._pending.pop(key, None)

        return approve

    def pending(self, user_id: str, thread_id: str) -> bool:
        return (user_id, thread_id) in self._pending

    def answer(self, user_id: str, thread_id: str, approved: bool) -> bool:
        future = self._pending.get((user_id, thread_id))
        if future is None or future.done():
            return False
        future.get_loop().call_soon_threadsafe(_set, future, approved)
        return True


def _set(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)
