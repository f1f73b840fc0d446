"""Turning the stored conversation into what a model may be sent.

The invariant peers break ("INVALID_CHAT_HISTORY"): every assistant tool call is followed by
exactly one tool message with its id, and no tool message stands without its call. The
observe node keeps it for new turns; `paired_history` also repairs histories cut by a crash
or a kill between act and observe.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage

INTERRUPTED = "ERROR: this tool call was not executed (the run was interrupted)."


def paired_history(messages: list[AnyMessage]) -> list[AnyMessage]:
    """Messages with every tool call answered and every orphan tool message dropped."""
    out: list[AnyMessage] = []
    pending: dict[str, str] = {}  # tool_call_id -> tool name, for the latest assistant message

    def close_pending() -> None:
        for call_id, name in pending.items():
            out.append(ToolMessage(content=INTERRUPTED, tool_call_id=call_id, name=name, status="error"))
        pending.clear()

    for msg in messages:
        if isinstance(msg, ToolMessage):
            if msg.tool_call_id in pending:
                pending.pop(msg.tool_call_id)
                out.append(msg)
            continue  # an orphan: its call is gone, a model would reject it
        close_pending()
        out.append(msg)
        if isinstance(msg, AIMessage):
            pending.update({c["id"]: c["name"] for c in msg.tool_calls})
    close_pending()
    return out


def recent(messages: list[AnyMessage], max_messages: int) -> list[AnyMessage]:
    """The last messages, cut only at a user message so that call/result pairs stay whole."""
    if len(messages) <= max_messages:
        return messages
    tail = messages[-max_messages:]
    for i, msg in enumerate(tail):
        if isinstance(msg, HumanMessage):
            return tail[i:]
    # One turn longer than the window: keep its user message and the latest complete rounds.
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=0)
    turn = messages[last_user:]
    head, rest = turn[:1], turn[1:]
    while len(rest) > max_messages - 1 and rest:
        rest = rest[1:]
        while rest and isinstance(rest[0], ToolMessage):
            rest = rest[1:]
    return head + rest


def to_openai(system: str, messages: list[AnyMessage], max_messages: int = 40) -> list[dict[str, Any]]:
    """System prompt plus the paired, windowed history, in OpenAI chat format."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for msg in recent(paired_history(messages), max_messages):
        if isinstance(msg, SystemMessage):
            continue  # our own system prompt is rebuilt for every call
        if isinstance(msg, HumanMessage):
            out.append({"role": "user", "content": msg.text})
        elif isinstance(msg, AIMessage):
            item: dict[str, Any] = {"role": "assistant", "content": msg.text or ""}
            if msg.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": json.dumps(c["args"], ensure_ascii=False)},
                    }
                    for c in msg.tool_calls
                ]
            out.append(item)
        elif isinstance(msg, ToolMessage):
            out.append({"role": "tool", "tool_call_id": msg.tool_call_id, "name": msg.name or "", "content": msg.text})
    return out
