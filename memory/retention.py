"""Thread retention: export as JSON, and pruning so the database does not grow without bound.

Pruning deletes threads older than `memory.max_thread_age_days` or beyond the newest
`memory.max_threads`, then compacts every remaining thread to its latest checkpoint
(LangGraph keeps one per step otherwise), and can VACUUM the file to give the space back.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from memory.threads import ThreadCatalog, ThreadInfo

EXPORT_FORMAT = "mmagent.thread/1"


def message_dict(msg: AnyMessage) -> dict[str, Any]:
    """A stored message in OpenAI-like roles, with what the UI needs to show tool use."""
    if isinstance(msg, HumanMessage):
        out: dict[str, Any] = {"role": "user", "content": msg.text}
    elif isinstance(msg, AIMessage):
        out = {"role": "assistant", "content": msg.text}
        if msg.tool_calls:
            out["tool_calls"] = [{"id": c["id"], "name": c["name"], "arguments": c["args"]} for c in msg.tool_calls]
    elif isinstance(msg, ToolMessage):
        out = {"role": "tool", "content": msg.text, "tool_call_id": msg.tool_call_id, "name": msg.name or "", "status": msg.status}
    else:
        out = {"role": msg.type, "content": msg.text}
    if msg.id:
        out["id"] = msg.id
    return out


def export_payload(thread_id: str, info: ThreadInfo | None, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "thread": info.public() if info else {"id": thread_id},
        "messages": [message_dict(m) for m in values.get("messages", [])],
        "summary": values.get("summary", ""),
    }


async def prune(catalog: ThreadCatalog, checkpointer: Any, settings: Any, *, vacuum: bool = True, now: float | None = None) -> dict[str, Any]:
    """Apply the retention limits (`settings` is the `memory` settings section)."""
    expired = await catalog.expired(settings.max_thread_age_days, settings.max_threads, now)
    for thread_id in expired:
        await checkpointer.adelete_thread(thread_id)
        await catalog.remove(thread_id)
    removed = 0 if settings.keep_checkpoint_history else await catalog.compact()
    if vacuum and catalog.has_checkpoints:
        await catalog.vacuum()
    return {"deleted": len(expired), "deleted_ids": expired, "checkpoints_removed": removed}
