"""Wiring one app's agent: `open_agent` builds the backend, tools, router, SQLite checkpointer,
thread catalog and long-term memory, and closes them on exit (`agent.runner` re-exports it)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from agent.config import Settings
from agent.runner import Agent
from tools.registry import ToolRegistry

if TYPE_CHECKING:
    from agent.safety import SafetyGuard
    from memory.long_term import LongTermMemory

log = logging.getLogger(__name__)


def default_tools(settings: Settings, *, knowledge=None) -> ToolRegistry:
    """The built-in tools; `knowledge`: the app's KnowledgeBase, when the app also uses it (the UI)."""
    from tools.calculator import calculator_tool
    from tools.images import image_info_tool, image_tools
    from tools.search import knowledge_tools

    # The image tools share one model manager; nothing is loaded until a tool first runs.
    # The knowledge tools share one knowledge base; it opens Chroma on its first call.
    return ToolRegistry([calculator_tool(), *image_tools(settings), image_info_tool(settings), *knowledge_tools(settings, knowledge)])


@asynccontextmanager
async def open_agent(
    settings: Settings, *, llm: str | None = None, registry: ToolRegistry | None = None, persist: bool = True, warm_up: bool = False,
    prepare: bool = True, child_processes: bool = False,
):
    """An Agent with its backend, tools, router, SQLite checkpointer, thread catalog and
    long-term memory, closed on exit. `persist=False` keeps everything in memory. `warm_up`
    loads the model in the background while the rest starts (for commands that will use it
    at once; a server stays lazy so its first page is not slowed). `child_processes` runs
    the sentence encoder and long-term memory's Chroma in child processes (a server's setting,
    `server.child_processes`: both hold the GIL for milliseconds, multimodal/child_process.py).
    `prepare` runs `Agent.prepare` in a worker thread once the agent is open: the imports
    start-up defers (LangGraph, Chroma, sympy) are done by the time a person has typed a first
    message."""
    from agent.llm.factory import make_backend
    from agent.tool_router import ToolRouter
    from agent.tracing import RunTracer
    from memory.threads import open_threads
    from multimodal.text_embeddings import SentenceEncoder
    from tools.mcp_tools import McpHub

    backend = make_backend(llm or settings.llm, settings)
    warming = asyncio.create_task(asyncio.to_thread(_warm_up, backend)) if warm_up else None
    encoder = SentenceEncoder(child_process=child_processes)  # one per app: the router, memory and moderation share it
    memory = open_memory(settings, encoder, persist, store_process=child_processes) if settings.memory.long_term else None
    registry = with_memory_tools(registry or default_tools(settings), memory)
    router = ToolRouter(registry, encoder)
    mcp = McpHub(settings) if settings.mcp.servers else None  # nothing starts until a turn needs the tools
    tracer = RunTracer(settings) if settings.tracing.enabled else None
    try:
        async with open_threads(settings.threads_db if persist else None) as (saver, catalog):
            agent = Agent(settings, backend, registry, router, saver, threads=catalog, memory=memory, mcp=mcp, tracer=tracer,
                          safety=default_guard(settings, router))
            preparing = asyncio.create_task(asyncio.to_thread(_prepare, agent)) if prepare else None
            try:
                if persist:
                    await agent.prune_threads(vacuum=False)  # retention limits apply from start-up on
                yield agent
            finally:
                if preparing is not None:
                    await preparing  # a thread cannot be cancelled; it finishes what it started
    finally:
        if warming is not None:
            await warming
        if mcp is not None:
            await mcp.aclose()
        if tracer is not None:
            tracer.shutdown()
        if memory is not None:
            await asyncio.to_thread(memory.close)
        await asyncio.to_thread(encoder.close)
        await backend.aclose()


@asynccontextmanager
async def open_tools(settings: Settings, registry: ToolRegistry | None = None):
    """(registry, hub, server -> error) for commands that use the tools without the agent
    (`mmagent tools`, `mmagent mcp`): the built-in tools plus the MCP servers' tools."""
    from tools.mcp_tools import McpHub

    registry = registry or default_tools(settings)
    hub = McpHub(settings)
    try:
        errors = await hub.attach(registry) if hub else {}
        yield registry, hub, errors
    finally:
        await hub.aclose()


def _prepare(agent: Agent) -> None:
    try:
        agent.prepare()
    except Exception as exc:  # noqa: BLE001 - the first turn builds what failed and reports it
        log.warning("preparing the agent in the background failed: %s", exc)


def _warm_up(backend) -> None:
    try:
        backend.warm_up()
    except Exception as exc:  # noqa: BLE001 - the first real call reports the failure to the user
        log.debug("warming up %s failed: %s", getattr(backend, "spec", backend), exc)


def open_memory(settings: Settings, encoder, persist: bool = True, *, store_process: bool = False) -> LongTermMemory:
    from memory.long_term import LongTermMemory
    from memory.pii import mask_pii
    from memory.store import memory_dir, open_collections

    path = memory_dir(settings.data_dir) if persist else None
    redact = mask_pii if settings.safety.mask_pii else None
    # Opened on first use (or by Agent.prepare): importing Chroma takes about a second.
    if path is not None and store_process:
        from memory.store_process import ChromaProcess

        store = ChromaProcess(path)
        return LongTermMemory(store.collections, encoder, redact=redact, close=store.close)
    return LongTermMemory(lambda: open_collections(path), encoder, redact=redact)


def default_guard(settings: Settings, router=None) -> SafetyGuard:
    """The moderation guard of an app: the router's sentence encoder when there is one (one model per app)."""
    from agent.safety import SafetyGuard
    from multimodal.text_embeddings import SentenceEncoder

    encoder = getattr(router, "encoder", None) or SentenceEncoder()
    return SafetyGuard(settings.safety, encoder, cache_dir=settings.models_cache_dir)


def with_memory_tools(registry: ToolRegistry, memory: LongTermMemory | None) -> ToolRegistry:
    """The registry plus remember/recall/forget bound to this app's memory (unless already there)."""
    if memory is None:
        return registry
    from tools.memory_tools import memory_tools

    extra = [t for t in memory_tools(memory) if t.name not in registry]
    return ToolRegistry([*registry, *extra]) if extra else registry
