"""Small helpers shared by the streaming endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sse_starlette import EventSourceResponse

# OpenAI's own streams separate events with "\n\n"; keep-alive comments every 15 s keep
# proxies from closing a stream while the agent works (SSE clients ignore comments).
PING_SECONDS = 15


def sse_response(events: AsyncIterator[Any], headers: dict[str, str] | None = None) -> EventSourceResponse:
    return EventSourceResponse(events, sep="\n", ping=PING_SECONDS, headers={"Cache-Control": "no-cache", **(headers or {})})


async def tokens_then_result(
    start: Callable[[Callable[[str], None]], Awaitable[Any]],
) -> AsyncIterator[tuple[str, Any]]:
    """Run `start(on_token)`; yield ("token", text)... then ("result", value) or ("error", exc).

    Backends may call on_token from a worker thread (local models generate in one), so tokens
    cross into the event loop with call_soon_threadsafe.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def on_token(text: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("token", text))

    async def run() -> None:
        try:
            result = await start(on_token)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which reports it
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
        else:
            loop.call_soon_threadsafe(queue.put_nowait, ("result", result))

    task = asyncio.create_task(run())
    try:
        while True:
            kind, value = await queue.get()
            yield kind, value
            if kind != "token":
                return
    finally:
        if not task.done():  # the client went away: stop the model call
            task.cancel()
