"""Running the graph: one `Agent` per app instance, one thread per conversation.

`open_agent` (`agent/wiring.py`, also importable from here) wires the parts (settings, backend,
tools, router, checkpointer, thread catalog, long-term memory); `Agent.astream` yields the events of one turn; `Agent.arun` returns its
result. Thread access, retention, feedback and memory listing for the UI and the API are the
`Agent` methods below the run methods (docs/memory.md).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agent.config import Settings
from agent.llm.base import ChatBackend, clean_text
from agent.run_tracker import RunTracker, saved_messages
from memory.threads import ThreadAccessDenied, ThreadCatalog, ThreadError, ThreadNotFound
from tools.registry import ToolRegistry

if TYPE_CHECKING:
    from agent.safety import SafetyGuard
    from agent.state import AgentContext, TurnOptions
    from agent.tracing import RunTracer
    from memory.long_term import LongTermMemory
    from tools.mcp_tools import McpHub

log = logging.getLogger(__name__)

__all__ = ["Agent", "RunResult", "TurnOptions", "ThreadError", "ThreadNotFound", "ThreadAccessDenied", "open_agent", "default_tools"]
INTERRUPTED_TURN = "(This turn was interrupted before it finished.)"


#: Names this module still offers from where they live now (imported on first use).
_MOVED = {
    # agent.state imports LangGraph (~1 s): opening an agent, and `mmagent serve`'s first page,
    # must not wait for it.
    "TurnOptions": "agent.state",
    # The wiring imports this module.
    "open_agent": "agent.wiring", "default_tools": "agent.wiring", "open_memory": "agent.wiring",
    "with_memory_tools": "agent.wiring", "open_tools": "agent.wiring", "default_guard": "agent.wiring",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RunResult(BaseModel):
    thread_id: str
    answer: str
    plan: list[str]
    steps: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]
    error: str | None = None
    usage: dict[str, int] | None = None  # the turn's model tokens (prompt, completion, total)
    citations: list[dict[str, Any]] = []  # the passages the answer cites (agent/grounding.py)


class Agent:
    def __init__(
        self, settings: Settings, backend: ChatBackend, registry: ToolRegistry, router=None, checkpointer=None,
        *, threads: ThreadCatalog | None = None, memory: LongTermMemory | None = None,
        mcp: McpHub | None = None, tracer: RunTracer | None = None, safety: SafetyGuard | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.registry = registry
        self.router = router
        self._graph: Any = None
        self._graph_lock = threading.Lock()
        self.checkpointer = checkpointer
        # Without a catalog (an Agent built by hand, e.g. in tests) threads are not owned and
        # cannot be listed; without memory there is no recall, no notes and no memory tools.
        self.threads = threads
        self.memory = memory
        # MCP servers (their tools join `registry` when first needed), the tracer and the guard
        # (agent/safety.py; an Agent built by hand without one, in tests, moderates nothing).
        self.mcp, self.tracer, self.safety = mcp, tracer, safety
        self._runs = RunTracker()  # agent/run_tracker.py: live runs, settled threads

    @property
    def graph(self) -> Any:
        """The compiled graph, built on first use: LangGraph takes about a second to import, which
        `prepare` (started by `open_agent`) spends in the background after start-up instead."""
        if self._graph is None:
            with self._graph_lock:
                if self._graph is None:
                    from agent.graph import build_graph

                    self._graph = build_graph(self.settings.limits, self.checkpointer)
        return self._graph

    def prepare(self) -> None:
        """Build what the first turn needs and start-up defers (the graph, the memory store, the
        tools' own warm-ups), so the first reply does not wait for it. Blocking: run in a thread."""
        self.graph
        if self.memory is not None:
            self.memory.prepare()
        for tool in self.registry:
            if tool.warm_up is not None:
                tool.warm_up()

    async def ready_tools(self) -> dict[str, str | None]:
        """Start the MCP servers whose tools are not in the registry yet (the first turn, or a
        server that failed before); server -> error. The servers start here, not at app start."""
        return await self.mcp.attach(self.registry) if self.mcp else {}

    def _trace(self, thread_id: str, user_id: str, request: str, kind: str = "turn"):
        return nullcontext(None) if self.tracer is None else self.tracer.run(thread_id=thread_id, user_id=user_id, request=request, kind=kind)

    def _config(self, thread_id: str) -> dict[str, Any]:
        from agent.graph import recursion_limit

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
        options: TurnOptions | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one turn (plan, tool_call, tool_result, reflection, token, final).

        `tools` limits this run to the named tools (None: all); tools in `needs_approval` wait
        for `approve(name, arguments)` before they run. Raises `ThreadAccessDenied` for another
        user's thread. A run killed mid-way on this thread is closed first (see `aresume`).
        """
        from agent.state import AgentContext, TurnOptions, new_turn
        from agent.tracing import RunUsage

        options = options or TurnOptions()
        thread_id = thread_id or new_thread_id()
        # A lone surrogate (a broken "\ud83d" escape in a JSON body, a non-UTF-8 argv) cannot be
        # stored or sent back as UTF-8: mark it here rather than fail deep in the catalog.
        request = clean_text(request)
        if self.threads is not None:
            await self.threads.claim(thread_id, user_id, request)
        await self._close_interrupted(thread_id)
        await self.ready_tools()
        registry, router = self.registry, self.router
        if tools is not None:
            registry = registry.subset(tools)
            router = router.limited_to(registry.names()) if router is not None else None
        # Tools of `ask_first` MCP servers always wait for the person (refused with no one to ask).
        gated = frozenset(needs_approval) | (self.mcp.ask_first(registry) if self.mcp else frozenset())
        turn = new_turn(request, images, list(options.lessons), options.task_type)
        final: dict[str, Any] | None = None
        usage = RunUsage()
        with self._trace(thread_id, user_id, request) as trace_parent:
            context = AgentContext(
                self.settings, self.backend, registry, router, session=options.session or thread_id, user_id=user_id,
                needs_approval=gated, approve=approve, memory=self._memory_on(), thread_id=thread_id,
                tracer=self.tracer, trace_parent=trace_parent, usage=usage, safety=self.safety,
            )
            completed = False
            try:
                with self._runs.running(thread_id):
                    async for event in self._stream(turn, thread_id, context):
                        if event["type"] == "final":
                            event = final = {**event, "usage": usage.as_openai()}
                        yield event
                completed = True  # the graph reached END (it has no interrupts): no steps left
            finally:
                await self._after_turn(thread_id, completed)
        if final is not None and options.self_evaluate:
            await self._self_evaluate(request, final, context)

    async def _stream(self, graph_input: dict[str, Any] | None, thread_id: str, context: AgentContext) -> AsyncIterator[dict[str, Any]]:
        # durability="sync": each step's checkpoint is on disk before the next step starts, so
        # a run killed mid-way resumes from its last completed step.
        async for event in self.graph.astream(
            graph_input, self._config(thread_id), context=context, stream_mode="custom", durability="sync"
        ):
            yield event

    async def arun(
        self, request: str, *, thread_id: str | None = None, images: list[str] | None = None, user_id: str = "local", on_event=None,
        options: TurnOptions | None = None,
    ) -> RunResult:
        thread_id = thread_id or new_thread_id()
        events = self.astream(request, thread_id=thread_id, images=images, user_id=user_id, options=options)
        return await _collect(events, thread_id, on_event)

    # ------------------------------------------------------------ interrupted runs

    async def interrupted(self, thread_id: str) -> bool:
        """True when the thread's last run was killed mid-way (its checkpoint has steps left and
        no run of this process is working on it)."""
        if self._runs.settled(thread_id):
            return False
        state = await self.graph.aget_state(self._config(thread_id))
        # Looked at after the await: a run that started meanwhile (e.g. a second resume) counts.
        return bool(state and state.next) and not self._runs.live(thread_id)

    async def aresume(self, thread_id: str, *, user_id: str = "local", on_event=None) -> RunResult:
        """Finish a run that was killed mid-way, from its last checkpoint (completed steps are
        not redone; a tool call that was running when the process died runs again)."""
        await self._check(thread_id, user_id)
        if not await self.interrupted(thread_id):
            raise ThreadError(f"thread {thread_id!r} has no interrupted run to resume")
        from agent.state import AgentContext
        from agent.tracing import RunUsage

        await self.ready_tools()
        usage = RunUsage()

        async def events() -> AsyncIterator[dict[str, Any]]:
            with self._trace(thread_id, user_id, "", kind="resume") as trace_parent:
                context = AgentContext(
                    self.settings, self.backend, self.registry, self.router, session=thread_id, user_id=user_id,
                    memory=self._memory_on(), thread_id=thread_id, tracer=self.tracer, trace_parent=trace_parent, usage=usage,
                    needs_approval=self.mcp.ask_first(self.registry) if self.mcp else frozenset(), safety=self.safety,
                )
                try:
                    with self._runs.running(thread_id):
                        async for event in self._stream(None, thread_id, context):
                            if event["type"] == "final":
                                event = {**event, "usage": usage.as_openai()}
                            yield event
                finally:
                    await self._after_turn(thread_id)

        return await _collect(events(), thread_id, on_event)

    async def _close_interrupted(self, thread_id: str) -> None:
        """A new request on a thread whose last run died mid-way: end that run as interrupted
        (tool calls it left open are answered by `paired_history`) instead of resuming it."""
        if await self.interrupted(thread_id):
            from langchain_core.messages import AIMessage

            update = {"messages": [AIMessage(content=INTERRUPTED_TURN)], "answer": INTERRUPTED_TURN}
            await self.graph.aupdate_state(self._config(thread_id), update, as_node="respond")

    # ------------------------------------------------------------ after a turn

    async def _after_turn(self, thread_id: str, completed: bool = False) -> None:
        try:
            if completed and self.checkpointer is not None:
                messages, steps_left = await saved_messages(self.checkpointer, thread_id), False
            else:
                state = await self.graph.aget_state(self._config(thread_id))
                messages, steps_left = (state.values or {}).get("messages", []), bool(state.next)
            if self.threads is not None:
                await self.threads.touch(thread_id, len(messages))
                if not self.settings.memory.keep_checkpoint_history and not steps_left:
                    await self.threads.compact(thread_id)
            if not steps_left:
                self._runs.settle(thread_id)
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not turn an answered turn into an error
            log.warning("thread bookkeeping failed for %s: %s", thread_id, exc)

    async def _self_evaluate(self, request: str, final: dict[str, Any], context: AgentContext) -> None:
        """Chat's evaluator: the turn's own failure signals, or the model's judgement when
        `memory.self_evaluate = "always"`; a failure becomes a reflection note."""
        from agent.reflexion import failure_signal, self_evaluate, write_reflection

        settings = self.settings.memory
        if context.memory is None or not settings.reflection or settings.self_evaluate == "off":
            return
        try:
            reason = failure_signal(final)
            reflection = ""
            if reason is None and settings.self_evaluate == "always" and not final.get("error"):
                ok, reflection = await self_evaluate(
                    self.backend, task=request, answer=final["answer"], steps=final["steps"], session=context.session
                )
                reason = None if ok else "self-evaluation: the answer did not do what was asked"
            if reason is None:
                return
            if not reflection:
                reflection = await write_reflection(
                    self.backend, task=request, answer=final["answer"], outcome=reason, steps=final["steps"], session=context.session
                )
            await context.memory.add_note(context.user_id, task=request, reflection=reflection, outcome=reason, answer=final["answer"])
        except Exception as exc:  # noqa: BLE001 - a missing reflection must not fail an answered turn
            log.warning("no reflection note for this turn: %s", exc)

    # ------------------------------------------------------------ threads (UI, API, CLI)

    async def _check(self, thread_id: str, user_id: str) -> None:
        if self.threads is not None:
            await self.threads.check(thread_id, user_id)
        elif not (await self.graph.aget_state(self._config(thread_id))).values:
            raise ThreadNotFound(f"no thread {thread_id!r}")

    async def _messages(self, thread_id: str) -> list[Any]:
        if self._runs.settled(thread_id) and self.checkpointer is not None:
            return await saved_messages(self.checkpointer, thread_id)
        state = await self.graph.aget_state(self._config(thread_id))
        return (state.values or {}).get("messages", []) if state else []

    async def history(self, thread_id: str, *, user_id: str = "local") -> list[dict[str, Any]]:
        """The thread's messages as `{"role": user|assistant|tool, "content", "id", ...}`.
        Raises `ThreadNotFound` (a KeyError) or `ThreadAccessDenied` (a PermissionError)."""
        from memory.retention import message_dict

        await self._check(thread_id, user_id)
        return [message_dict(m) for m in await self._messages(thread_id)]

    async def list_threads(self, user_id: str) -> list[dict[str, Any]]:
        """This user's threads, newest first: `{"id", "title", "created_at", "updated_at", "messages", "feedback"}`."""
        if self.threads is None:
            return []
        return [t.public() for t in await self.threads.list(user_id)]

    async def export_thread(self, thread_id: str, user_id: str) -> dict[str, Any]:
        """The whole thread as JSON-ready data (metadata, messages, running summary)."""
        from memory.retention import export_payload

        await self._check(thread_id, user_id)
        state = await self.graph.aget_state(self._config(thread_id))
        info = await self.threads.get(thread_id) if self.threads is not None else None
        return export_payload(thread_id, info, (state.values or {}) if state else {})

    async def delete_thread(self, thread_id: str, user_id: str) -> None:
        await self._check(thread_id, user_id)
        await self.checkpointer.adelete_thread(thread_id)
        if self.threads is not None:
            await self.threads.remove(thread_id)

    async def prune_threads(self, *, vacuum: bool = True) -> dict[str, Any]:
        """Apply the retention settings to every user's threads (see `memory.retention.prune`)."""
        from memory.retention import prune

        if self.threads is None:
            return {"deleted": 0, "checkpoints_removed": 0}
        return await prune(self.threads, self.checkpointer, self.settings.memory, vacuum=vacuum)

    async def feedback(self, thread_id: str, user_id: str, good: bool, comment: str | None = None) -> dict[str, Any] | None:
        """Thumbs up/down on the thread's last turn. Thumbs down: the model reflects on that
        turn and the reflection is stored as a note; returns the note (None otherwise)."""
        from agent.reflexion import write_reflection

        await self._check(thread_id, user_id)
        if self.threads is not None:
            await self.threads.set_feedback(thread_id, good)
        memory = self._memory_on()
        if good or memory is None or not self.settings.memory.reflection:
            return None
        values = (await self.graph.aget_state(self._config(thread_id))).values or {}
        task, answer = values.get("request", ""), values.get("answer", "")
        if not task:
            return None
        outcome = "the user marked the answer as bad" + (f": {comment}" if comment else "")
        reflection = await write_reflection(
            self.backend, task=task, answer=answer, outcome=outcome, steps=values.get("step_log", []), session=thread_id, comment=comment
        )
        note = await memory.add_note(user_id, task=task, reflection=reflection, outcome=outcome, answer=answer)
        return note.public()

    # ------------------------------------------------------------ long-term memory (UI memory panel)

    def _memory_on(self) -> LongTermMemory | None:
        return self.memory if self.settings.memory.long_term else None

    async def memories(self, user_id: str) -> list[dict[str, Any]]:
        """This user's memories, newest first: `{"id", "text", "created_at", "kind"}`."""
        return [m.public() for m in await self.memory.list("memory", user_id)] if self.memory else []

    async def notes(self, user_id: str) -> list[dict[str, Any]]:
        """This user's reflection notes, newest first: `{"id", "text", "task", "outcome", ...}`."""
        return [n.public() for n in await self.memory.list("note", user_id)] if self.memory else []

    async def forget(self, user_id: str, item_id: str) -> bool:
        """Delete one of this user's memories or notes by id; False when the user has none with it."""
        return bool(self.memory and await self.memory.delete(user_id, item_id))


async def _collect(events: AsyncIterator[dict[str, Any]], thread_id: str, on_event) -> RunResult:
    final: dict[str, Any] | None = None
    async for event in events:
        if on_event:
            on_event(event)
        if event["type"] == "final":
            final = event
    if final is None:  # respond always emits; this guards against a graph change breaking that
        raise RuntimeError("the run ended without a final answer")
    keys = ("answer", "plan", "steps", "artifacts", "error")
    return RunResult(thread_id=thread_id, usage=final.get("usage"), citations=final.get("citations") or [], **{k: final[k] for k in keys})


def new_thread_id() -> str:
    return uuid.uuid4().hex
