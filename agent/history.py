"""Turning the stored conversation into what a model may be sent.

The invariant peers break ("INVALID_CHAT_HISTORY"): every assistant tool call is followed by
exactly one tool message with its id, and no tool message stands without its call. The
observe node keeps it for new turns; `paired_history` also repairs histories cut by a crash
or a kill between act and observe.

`to_openai` with a `Budget` keeps the prompt under a token budget: whole older turns are
dropped first (the plan node folds them into a running summary, shown in the system prompt),
then the oldest rounds of the current turn; a call and its tool messages are kept or dropped
together, and tool results are truncated with a note. Images are references in the text already.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage

from memory.summary import extend_summary
from memory.tokens import MESSAGE_OVERHEAD, TokenCounter, estimate_tokens, truncate_to_tokens

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


@dataclass(frozen=True)
class Budget:
    """How many tokens a whole prompt may take, and how to count them."""

    tokens: int
    tool_result_tokens: int = 1000
    count: TokenCounter = estimate_tokens

    def of_message(self, msg: dict[str, Any]) -> int:
        calls = msg.get("tool_calls")
        return self.count(msg.get("content") or "") + (self.count(json.dumps(calls, ensure_ascii=False)) if calls else 0) + MESSAGE_OVERHEAD


def units(messages: list[AnyMessage]) -> list[list[AnyMessage]]:
    """Paired messages grouped so a unit is kept or dropped whole: a message plus, for an
    assistant message with tool calls, the tool messages that answer it."""
    out: list[list[AnyMessage]] = []
    for msg in messages:
        if isinstance(msg, SystemMessage):
            continue  # our own system prompt is rebuilt for every call
        if isinstance(msg, ToolMessage) and out:
            out[-1].append(msg)
        else:
            out.append([msg])
    return out


def fit(messages: list[AnyMessage], available: int, budget: Budget) -> tuple[list[AnyMessage], list[AnyMessage]]:
    """(dropped earlier turns, kept messages) for a history of at most `available` tokens.

    The latest user message is always kept. Earlier turns are kept whole, newest first, while
    they fit; inside the current turn the oldest tool rounds go first.
    """
    groups = units(paired_history(messages))
    if not groups:
        return [], []
    cost = [sum(budget.of_message(render(m, budget)) for m in g) for g in groups]
    starts = [i for i, g in enumerate(groups) if isinstance(g[0], HumanMessage)] or [0]
    current = starts[-1]
    used, tail = cost[current], []
    for i in range(len(groups) - 1, current, -1):
        if used + cost[i] > available:
            break
        used += cost[i]
        tail.append(i)
    keep = [current, *reversed(tail)]
    first = current
    if len(tail) == len(groups) - 1 - current:  # the whole current turn fits: add earlier turns
        for start, end in reversed(list(zip(starts[:-1], starts[1:]))):
            turn = sum(cost[start:end])
            if used + turn > available:
                break
            used += turn
            first = start
        keep = list(range(first, len(groups)))
    dropped = [m for g in groups[:first] for m in g]
    return dropped, [m for i in keep for m in groups[i]]


def render(msg: AnyMessage, budget: Budget | None = None) -> dict[str, Any]:
    """One message in OpenAI chat format; tool results cut to the budget's limit."""
    if isinstance(msg, HumanMessage):
        return {"role": "user", "content": msg.text}
    if isinstance(msg, AIMessage):
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
        return item
    content = msg.text
    if budget is not None:
        content = truncate_to_tokens(content, budget.tool_result_tokens, budget.count)
    return {"role": "tool", "tool_call_id": msg.tool_call_id, "name": msg.name or "", "content": content}


def to_openai(
    system: str, messages: list[AnyMessage], max_messages: int = 40, *, budget: Budget | None = None, summary: str = ""
) -> list[dict[str, Any]]:
    """System prompt plus the paired history, in OpenAI chat format.

    Without a budget: the last `max_messages` messages. With one: what fits in `budget.tokens`,
    and the running `summary` of earlier turns in the system prompt when turns were dropped.
    """
    if budget is None:
        kept = [m for m in recent(paired_history(messages), max_messages) if not isinstance(m, SystemMessage)]
        return [{"role": "system", "content": system}, *(render(m) for m in kept)]
    head = budget.count(system) + MESSAGE_OVERHEAD
    _, kept = fit(messages, budget.tokens - head, budget)
    if summary.strip():
        # Room for the summary comes first: the turns it stands for are the ones left out.
        extra = budget.count(with_summary(system, summary)) - budget.count(system)
        dropped, with_room = fit(messages, budget.tokens - head - extra, budget)
        if dropped:
            kept = with_room
            used = sum(budget.of_message(render(m, budget)) for m in kept)
            header = budget.count(with_summary(system, "")) - budget.count(system)
            shown = extend_summary(summary, [], budget.tokens - head - used - header, budget.count)
            system = with_summary(system, shown) if shown else system
    out = [{"role": "system", "content": system}, *(render(m, budget) for m in kept)]
    overflow = sum(budget.of_message(m) for m in out) - budget.tokens
    request = next((m for m in out if m["role"] == "user"), None)
    if overflow > 0 and request is not None:  # one request larger than the whole budget: cut it rather than overflow
        request["content"] = truncate_to_tokens(request["content"], max(0, budget.count(request["content"]) - overflow - 16), budget.count)
    return out


def with_summary(system: str, summary: str) -> str:
    return f"{system}\n\n# Earlier in this conversation (summary)\n{summary.strip()}"
