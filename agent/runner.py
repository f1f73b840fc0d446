"""Running the graph: one `Agent` per app instance, one thread per conversation.

`open_agent` wires the parts (settings, backend, tools, router, checkpointer); `Agent.astream`
yields the events of one turn; `Agent.arun` returns its result.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel

from agent.config import Settings
from agent.graph import build_graph, recursion_limit
from agent.llm.base import ChatBackend
from agent.state import AgentContext, new_turn
from tools.registry import ToolRegistry


class RunResult(BaseModel):
    thread_id: str
    answer: str
    plan: list[str]
    steps: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]
    error: str | None = None


class Agent:
    def __init__(self, settings: Settings, backend: ChatBackend, registry: ToolRegistry, router=None, checkpointer=None) -> None:
        self.settings = settings
        self.backend = backend
        self.registry = registry
        self.router = router
        self.graph = build_graph(settings.limits, checkpointer)

    def _config(self, thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}, "recursion_limit": recursion_limit(self.settings.limits.max_steps)}

    async def astream(
        self,
        request: str,
        *,
        thread_id: str | None = None,
        images: list[str] | None = None,
        user_id: str = "local",
        tools: Collection[str] | None = None,
        needs_approval: Collection[str] = (),
        approve: Callable[[str, dict[str, Any]], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one turn (plan, tool_call, tool_result, reflection, token, final).

        `tools` limits this run to the named tools (None: all); tools in `needs_approval` wait
        for `approve(name, arguments)` before they run.
        """
        thread_id = thread_id or new_thread_id()
        registry, router = self.registry, self.router
        if tools is not None:
            registry = registry.subset(tools)
            router = router.limited_to(registry.names()) if router is not None else None
        context = AgentContext(
            self.settings, self.backend, registry, router, session=thread_id, user_id=user_id,
            needs_approval=frozenset(needs_approval), approve=approve,
        )
        async for event in self.graph.astream(
            new_turn(request, images), self._config(thread_id), context=context, stream_mode="custom"
        ):
            yield event

    async def arun(
        self, request: str, *, thread_id: str | None = None, images: list[str] | None = None, user_id: str = "local", on_event=None
    ) -> RunResult:
        thread_id = thread_id or new_thread_id()
        final: dict[str, Any] | None = None
        async for event in self.astream(request, thread_id=thread_id, images=images, user_id=user_id):
            if on_event:
                on_event(event)
            if event["type"] == "final":
                final = event
        if final is None:  # respond always emits; this guards against a graph change breaking that
            raise RuntimeError("the run ended without a final answer")
        return RunResult(thread_id=thread_id, **{k: final[k] for k in ("answer", "plan", "steps", "artifacts", "error")})

    async def history(self, thread_id: str) -> list[dict[str, Any]]:
        state = await self.graph.aget_state(self._config(thread_id))
        messages = (state.values or {}).get("messages", []) if state else []
        return [{"role": m.type, "content": m.text} for m in messages]


def new_thread_id() -> str:
    return uuid.uuid4().hex


def default_tools(settings: Settings) -> ToolRegistry:
    from tools.calculator import calculator_tool

    return ToolRegistry([calculator_tool()])


@asynccontextmanager
async def open_agent(settings: Settings, *, llm: str | None = None, registry: ToolRegistry | None = None, persist: bool = True):
    """An Agent with its backend, tools, router and SQLite checkpointer, closed on exit."""
    from agent.llm.factory import make_backend
    from agent.tool_router import ToolRouter
    from memory.threads import open_checkpointer
    from multimodal.text_embeddings import SentenceEncoder

    backend = make_backend(llm or settings.llm, settings)
    registry = registry or default_tools(settings)
    router = ToolRouter(registry, SentenceEncoder())
    try:
        if persist:
            async with open_checkpointer(settings.threads_db) as saver:
                yield Agent(settings, backend, registry, router, saver)
        else:
            from langgraph.checkpoint.memory import InMemorySaver

            yield Agent(settings, backend, registry, router, InMemorySaver())
    finally:
        await backend.aclose()
