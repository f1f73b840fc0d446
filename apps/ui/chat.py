"""One chat turn in the browser: uploads in, agent events out as they happen.

The agent runs in a task that feeds a queue; the approval gate feeds the same queue, so the
page can show an approval request while the run waits for it. Closing the tab or pressing
stop cancels the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from apps.ui.approvals import Approvals
from apps.ui.chat_view import TurnView
from apps.ui.session import user_key

log = logging.getLogger(__name__)

#: Tools that wait for the person's approval when the setting is on.
GATED_TOOLS = frozenset({"generate_image"})


def describe(exc: BaseException) -> str:
    """A readable line for the chat; the traceback goes to the server log only."""
    from agent.llm.base import LLMError
    from apps.errors import disk_full, one_line
    from memory.knowledge.store import StoreUnavailable

    # These carry messages written for people (the store's says whether the server is down or slow).
    if isinstance(exc, (LLMError, ValueError, FileNotFoundError, PermissionError, StoreUnavailable)):
        return one_line(str(exc))
    if disk_full(exc):
        log.error("chat turn failed: disk full (%s)", exc)
        return one_line(f"the server's disk is full: this turn could not be saved ({exc}); try again once space is freed")
    log.exception("chat turn failed", exc_info=exc)
    return one_line(f"internal error ({type(exc).__name__}); the server log has the details")


def file_path(item: Any) -> Path:
    """Gradio hands uploads over as paths or as file-data dicts, depending on the component."""
    if isinstance(item, dict):
        item = item.get("path") or item.get("name")
    return Path(str(item))


def save_uploads(settings, files: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Uploaded images as artifacts; each bad file becomes an error line, the rest go on."""
    saved: list[dict[str, Any]] = []
    errors: list[str] = []
    if not files:
        return saved, errors
    from multimodal.artifacts import StorageFull, save_upload
    from tools.registry import ToolError

    for item in files:
        path = file_path(item)
        try:
            saved.append(save_upload(settings, path.read_bytes(), path.name))
        except StorageFull as exc:
            errors.append(f"{path.name} was not saved: {exc}")
        except (ToolError, OSError, ValueError) as exc:
            errors.append(f"{path.name} is not an image I can use: {exc}")
    return saved, errors


async def run_turn(
    services,
    approvals: Approvals,
    session: dict[str, Any],
    text: str,
    images: list[dict[str, Any]],
    history: list[dict[str, Any]],
    *,
    tools: list[str] | None,
    approval_on: bool,
    on_view: Callable[[TurnView], None] | None = None,
) -> AsyncIterator[TurnView]:
    """Yields the chat view after each event of the turn."""
    view = TurnView(history, text, images)
    yield view
    user, thread = user_key(session), session["thread_id"]
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in services.agent.astream(
                text or "Describe the attached image.",
                thread_id=thread,
                images=[image["ref"] for image in images],
                user_id=user,
                tools=tools,
                needs_approval=GATED_TOOLS if approval_on else (),
                approve=approvals.gate(user, thread, queue.put_nowait),
            ):
                queue.put_nowait(event)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a readable chat message
            queue.put_nowait({"type": "error", "message": describe(exc)})
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(pump())
    try:
        while (event := await queue.get()) is not None:
            view.apply(event)
            yield view
    finally:
        if not task.done():  # the visitor left or pressed stop
            task.cancel()
