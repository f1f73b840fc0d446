"""`scripted:<file.jsonl>`: deterministic replay for tests, demos and regression checks.

Each line is one OpenAI-format assistant message, e.g.
    {"role": "assistant", "content": "1. Compute with the calculator\\n2. Answer"}
    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
        "function": {"name": "calculator", "arguments": "{\\"expression\\": \\"6*7\\"}"}}]}
Every model call the graph makes consumes the next line (see `agent/nodes.py` for which nodes
call the model). Each conversation (thread) has its own cursor, so concurrent sessions replay
the same script independently. When the script runs out, the call fails with a clear error.

An optional `"delay_s": 2.5` on a line makes that call wait so long before it replies: a slow
model on demand, for latency demos and for tests that need a run to be mid-way at a known step
(e.g. to kill the server there).

An optional `"session": "<id>"` makes a line part of that session's own script instead of the
shared one: a session with lines of its own replays only those, every other session the
untagged lines. One file then holds a different script per task (`mmagent eval` gives each
task its own session, so a scripted oracle can answer every task right).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import deque
from pathlib import Path
from typing import Any

from agent.llm.base import ChatBackend, ChatReply, ChatRequest, LLMError, TokenCallback, reply_from_openai

MAX_DELAY_S = 3600.0  # NaN and inf fail the range check too


def load_script(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise LLMError(f"scripted model file not found: {path}")
    replies = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LLMError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(item, dict) or item.get("role", "assistant") != "assistant":
            raise LLMError(f"{path}:{number}: each line must be an assistant message object")
        if not item.get("content") and not item.get("tool_calls"):
            raise LLMError(f"{path}:{number}: a message needs content or tool_calls")
        delay = item.get("delay_s", 0)
        # bool is an int to Python, but `"delay_s": true` is a typo, not one second.
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_DELAY_S:
            raise LLMError(f"{path}:{number}: delay_s must be a number of seconds from 0 to {MAX_DELAY_S:g}")
        if "session" in item and not (isinstance(item["session"], str) and item["session"]):
            raise LLMError(f"{path}:{number}: session must be a non-empty string")
        replies.append(item)
    return replies


def to_reply(item: dict[str, Any]) -> ChatReply:
    calls = [{"id": c.get("id"), **c.get("function", c)} for c in item.get("tool_calls") or []]
    return reply_from_openai(item.get("content"), calls)


class ScriptedBackend(ChatBackend):
    chooses_tools = True
    constrained = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.spec = f"scripted:{self.path}"
        self._replies: list[dict[str, Any]] = []
        self._sessions: dict[str, list[dict[str, Any]]] = {}
        for item in load_script(self.path):
            if "session" in item:
                self._sessions.setdefault(item["session"], []).append(item)
            else:
                self._replies.append(item)
        self._cursors: dict[str, int] = {}
        self._lock = threading.Lock()
        #: (session, request) of the latest calls, so tests can read the prompts the graph sent.
        self.requests: deque[tuple[str, ChatRequest]] = deque(maxlen=1000)

    async def complete(self, request: ChatRequest, *, on_token: TokenCallback | None = None, session: str = "default") -> ChatReply:
        replies = self._sessions.get(session, self._replies)
        with self._lock:
            index = self._cursors.get(session, 0)
            if index >= len(replies):
                whose = f"session {session!r} of " if session in self._sessions else ""
                raise LLMError(
                    f"the scripted model ran out of replies after {len(replies)} "
                    f"({whose}file {self.path}, call for the {request.purpose} step)"
                )
            self._cursors[session] = index + 1
            self.requests.append((session, request))
        item = replies[index]
        if item.get("delay_s"):
            await asyncio.sleep(item["delay_s"])  # outside the lock: other sessions go on meanwhile
        reply = to_reply(item)
        if on_token and reply.content:
            for piece in re.findall(r"\S+\s*|\s+", reply.content):
                on_token(piece)
                await asyncio.sleep(0)  # let consumers see tokens as a stream
        return reply

    def position(self, session: str = "default") -> int:
        return self._cursors.get(session, 0)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "replies": len(self._replies), "sessions": len(self._sessions)}
