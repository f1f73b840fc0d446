"""Continuing a conversation that the client sends in full with every request.

OpenAI's API is stateless: each request carries the whole conversation. The agent, however,
keeps a thread per conversation (checkpointed messages; the scripted model keeps a cursor per
thread), so the server remembers, for each reply it gave, which thread it came from. The key
is a hash of the conversation up to and including that reply; the next request whose messages
up to its last assistant message hash the same continues that thread. A key is taken once: a
regenerated or edited conversation gets a fresh thread, with the earlier messages folded into
the request as text so the agent still sees them. Keys live in memory (bounded LRU); after a
restart conversations continue by folding.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any


def text_of(content: Any) -> str:
    """OpenAI message content (str, None or parts) as plain text; images are left out."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text").strip()
    return str(content)


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _canonical(message: dict[str, Any]) -> dict[str, Any]:
    """What identifies a message, whatever the client library re-serialises differently
    (None vs "" content, argument JSON spacing, extra null fields)."""
    role = "system" if message.get("role") == "developer" else message.get("role")
    content = message.get("content")
    images = [p.get("image_url") for p in content if isinstance(p, dict) and p.get("type") == "image_url"] if isinstance(content, list) else []
    item: dict[str, Any] = {"role": role, "text": text_of(content).strip()}
    if images:
        item["images"] = hashlib.sha256(json.dumps(images, sort_keys=True, default=str).encode()).hexdigest()
    if message.get("tool_calls"):
        item["calls"] = [
            [c.get("id"), (c.get("function") or {}).get("name"), _arguments((c.get("function") or {}).get("arguments"))]
            for c in message["tool_calls"]
        ]
    if message.get("tool_call_id"):
        item["call_id"] = message["tool_call_id"]
    return item


def conversation_key(user_id: str, messages: list[dict[str, Any]]) -> str:
    payload = json.dumps([user_id, [_canonical(m) for m in messages]], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def last_assistant_index(messages: list[dict[str, Any]]) -> int:
    return max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)


class Conversations:
    """conversation key -> thread id, for the replies this process gave."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._threads: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, user_id: str, messages: list[dict[str, Any]], namespace: str) -> str | None:
        """The thread that produced the last assistant message of `messages`, if this process
        gave it and no other request has continued from it yet."""
        end = last_assistant_index(messages)
        if end < 0:
            return None
        key = namespace + ":" + conversation_key(user_id, messages[: end + 1])
        with self._lock:
            return self._threads.pop(key, None)

    def remember(self, user_id: str, messages: list[dict[str, Any]], namespace: str, thread_id: str) -> None:
        """`messages` end with the reply just given on `thread_id`."""
        key = namespace + ":" + conversation_key(user_id, messages)
        with self._lock:
            self._threads[key] = thread_id
            self._threads.move_to_end(key)
            while len(self._threads) > self.max_entries:
                self._threads.popitem(last=False)


def fold(earlier: list[dict[str, Any]], request: str) -> str:
    """One request text carrying the conversation the agent's thread does not hold."""
    instructions = [text_of(m.get("content")) for m in earlier if m.get("role") in ("system", "developer")]
    lines = []
    for m in earlier:
        role = m.get("role")
        if role in ("user", "assistant"):
            text = text_of(m.get("content")).strip()
            if text:
                lines.append(f"{role}: {text}")
        elif role == "tool":
            lines.append(f"tool result: {text_of(m.get('content')).strip()}")
    parts = []
    if any(s.strip() for s in instructions):
        parts.append("Instructions:\n" + "\n".join(s.strip() for s in instructions if s.strip()))
    if lines:
        parts.append("Earlier conversation:\n" + "\n".join(lines))
    if not parts:
        return request
    return "\n\n".join([*parts, "Current request:\n" + request])
