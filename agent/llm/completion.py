"""A backend as a plain `prompt -> text` call, for helpers outside the graph (query rewriting).

Rewrites are few-shot continuations, so the same prompt suits a base model (completion_prompt)
and a chat model (the prompt as the user message). One line, short, greedy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from agent.llm.base import ChatBackend, ChatRequest


class TimedCompletion:
    """`complete(prompt)` on a backend, counting calls and seconds (reported apart from retrieval)."""

    def __init__(self, backend: ChatBackend, max_tokens: int = 60) -> None:
        self.backend = backend
        self.max_tokens = max_tokens
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, prompt: str) -> str:
        request = ChatRequest(
            messages=[{"role": "user", "content": prompt}], tool_choice="none", temperature=0.0,
            max_tokens=self.max_tokens, purpose="respond", completion_prompt=prompt, stop=["\n"],
        )
        started = time.perf_counter()
        try:
            reply = asyncio.run(self.backend.complete(request, session="rewrite"))
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - started
        return reply.content


def completion(backend: ChatBackend, max_tokens: int = 60) -> Callable[[str], str]:
    return TimedCompletion(backend, max_tokens)
