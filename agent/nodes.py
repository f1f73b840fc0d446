"""The graph's nodes: recall, plan, act, observe, reflect, respond. Wiring is in `agent/graph.py`.

act lives in `agent/node_act.py` and respond in `agent/node_respond.py` (re-exported here); what
they share for asking the model is `agent/model_calls.py`.

Model calls per node (what a `scripted:` file must provide, in this order):
  recall   none (long-term memory and notes come from the store)
  plan     1 call per turn
  act      1 call per round; +1 repair call when a non-grammar backend emits a tool call
           with an unknown tool or invalid arguments; no call when the router finds no tool
  reflect  1 call after a round with a failed tool, or when the plan ran out (at most
           `limits.max_reflections` per turn)
  respond  0 calls when act already answered in text; else 1 (n with self-consistency)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.runtime import Runtime

from agent import prompts, tracing
from agent.events import PlanEvent, ReflectionEvent, ToolCallEvent, ToolResultEvent, emit
from agent.llm.base import LLMError, bad_arguments_error
from agent.model_calls import ask, budget, fold_summary, memory_sections, prompt_messages, structured_reply  # noqa: F401 - re-exported
from agent.node_act import act, current_step, offered_tools  # noqa: F401 - the act node
from agent.node_respond import grounded, majority, repeated_call, respond, with_honesty_notes  # noqa: F401 - the respond node
from agent.state import AgentContext, AgentState

Ctx = Runtime[AgentContext]
log = logging.getLogger(__name__)


# ---------------------------------------------------------------- recall


async def recall(state: AgentState, runtime: Ctx) -> dict[str, Any]:
    """Long-term memory into the turn: what we know about the user, and reflection notes from
    similar earlier tasks (plus the latest of the same task type)."""
    ctx = runtime.context
    settings = ctx.settings.memory
    if ctx.memory is None or not settings.long_term:
        return {}
    request = state["request"]
    try:
        facts = await ctx.memory.recall(ctx.user_id, request, settings.recall_k, settings.recall_min_score)
        notes = await ctx.memory.relevant_notes(ctx.user_id, request, settings.notes_k, settings.notes_min_score, state.get("task_type", ""))
    except Exception as exc:  # noqa: BLE001 - a memory failure must not cost the user their answer
        log.warning("long-term memory unavailable for this turn: %s", exc)
        return {}
    given = list(state.get("lessons", []))
    retrieved = [prompts.note_line(n.text, n.task or "", n.outcome or "") for n in notes if n.text not in given]
    return {"memories": [f.text for f in facts], "lessons": [*given, *retrieved]}


# ---------------------------------------------------------------- plan


async def plan(state: AgentState, runtime: Ctx) -> dict[str, Any]:
    ctx = runtime.context
    # Routing embeds text (CPU work behind the encoder's lock): in a worker thread, so the
    # event loop keeps serving other requests meanwhile.
    offered = await asyncio.to_thread(offered_tools, ctx, state, None)
    system = prompts.PLAN.render(
        context={
            "Available tools": prompts.tool_catalogue(offered),
            **memory_sections(state),
            "Lessons from earlier attempts": prompts.numbered(state.get("reflections", [])),
        }
    )
    folded = fold_summary(ctx, state, system)
    try:
        reply = await structured_reply(ctx, {**state, **folded}, system, prompts.PLAN_SCHEMA, 200, "plan")
    except LLMError as exc:
        return {"error": str(exc), **folded}
    steps = parse_plan(reply.content)
    emit(PlanEvent(steps=steps))
    return {"plan": steps, "plan_start": 0, **folded}


# A plan step or reflection is shown to users and put into every later prompt of the turn: a
# model that rambles must not make them megabytes long.
MAX_STEP_CHARS = 300
MAX_REFLECTION_CHARS = 600


def parse_plan(text: str) -> list[str]:
    """A plan from JSON (`{"plan": [...]}`) or from numbered/bulleted lines."""
    text = (text or "").strip()
    try:
        data = json.loads(text)
        items = data.get("plan") if isinstance(data, dict) else data
        if isinstance(items, list):
            steps = [str(s).strip()[:MAX_STEP_CHARS] for s in items if str(s).strip()]
            if steps:
                return steps[:8]
    except (ValueError, RecursionError, AttributeError):
        pass
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    marked = [re.sub(r"^(\d+[.)]|[-*•])\s*", "", ln) for ln in lines if re.match(r"^(\d+[.)]|[-*•])\s*", ln)]
    steps = [s[:MAX_STEP_CHARS] for s in marked or lines if s.strip()]
    return steps[:8] or ["Answer the request directly."]


# ---------------------------------------------------------------- observe


async def observe(state: AgentState, runtime: Ctx) -> dict[str, Any]:
    """Run the last act's tool calls; every call gets exactly one tool message, whatever happens."""
    ctx = runtime.context
    message = state["messages"][-1]
    bad = state.get("bad_arguments") or {}
    calls = message.tool_calls if isinstance(message, AIMessage) else []
    outcomes = await asyncio.gather(*(run_tool(ctx, call, bad.get(call["id"]), state.get("request", "")) for call in calls))

    log = list(state.get("step_log", []))
    artifacts = list(state.get("artifacts", []))
    called_ok = list(state.get("called_ok", []))
    tool_messages = []
    for call, (result, seconds) in zip(calls, outcomes):
        limit = ctx.settings.limits.tool_result_chars
        tool_messages.append(
            ToolMessage(
                content=result.for_model(limit),
                tool_call_id=call["id"],
                name=call["name"],
                status="success" if result.ok else "error",
            )
        )
        entry = {"tool": call["name"], "arguments": call["args"], "ok": result.ok, "seconds": round(seconds, 3)}
        entry.update({"result": result.result} if result.ok else {"error": result.error})
        log.append(entry)
        artifacts.extend(result.artifacts)
        if result.ok and call["name"] not in called_ok:
            called_ok.append(call["name"])
    return {
        "messages": tool_messages,
        "step_log": log,
        "artifacts": artifacts,
        "called_ok": called_ok,
        "last_round_failed": any(not r.ok for r, _ in outcomes),
        "bad_arguments": {},
    }


async def run_tool(ctx: AgentContext, call: dict[str, Any], bad_arguments: str | None, request: str = ""):
    from tools.registry import ToolResult

    emit(ToolCallEvent(id=call["id"], name=call["name"], arguments=call["args"]))
    start = time.perf_counter()
    server = getattr(ctx.registry.get(call["name"]), "server", None) if call["name"] in ctx.registry else None
    with tracing.span(ctx, f"tool {call['name']}", {"mmagent.tool.name": call["name"], "mmagent.tool.server": server or ""}) as current:
        if bad_arguments is not None and call["name"] in ctx.registry:
            result = ToolResult(ok=False, error=bad_arguments_error(call["name"], bad_arguments))
        else:
            result = await ctx.registry.ainvoke(
                call["name"], call["args"], ctx.settings.limits.tool_timeout_s, ctx.tool_context(request)
            )
        tracing.tool_call_attributes(current, ctx, call["args"], result.ok, result.error)
    seconds = time.perf_counter() - start
    emit(
        ToolResultEvent(
            id=call["id"], name=call["name"], ok=result.ok, result=result.result if result.ok else None,
            error=result.error, artifacts=result.artifacts, seconds=round(seconds, 3),
        )
    )
    return result, seconds


# ---------------------------------------------------------------- reflect


async def reflect(state: AgentState, runtime: Ctx) -> dict[str, Any]:
    ctx = runtime.context
    failures = [f"{e['tool']}({json.dumps(e['arguments'], ensure_ascii=False)}): {e['error']}" for e in state.get("step_log", []) if not e["ok"]]
    system = prompts.REFLECT.render(
        context={
            "Plan so far": prompts.numbered(state.get("plan", [])),
            "Tool errors": "\n".join(failures[-5:]),
            "Earlier reflections": prompts.numbered(state.get("reflections", [])),
        }
    )
    try:
        reply = await structured_reply(ctx, state, system, prompts.REFLECT_SCHEMA, 300, "reflect")
    except LLMError as exc:
        return {"error": str(exc)}
    text, new_plan = parse_reflection(reply.content)
    text = text[:MAX_REFLECTION_CHARS]
    new_plan = new_plan or state.get("plan", [])
    emit(ReflectionEvent(text=text, plan=new_plan))
    return {
        "reflections": [*state.get("reflections", []), text],
        "plan": new_plan,
        "plan_start": state.get("steps", 0),
        "last_round_failed": False,
    }


def parse_reflection(text: str) -> tuple[str, list[str]]:
    text = (text or "").strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return str(data.get("reflection", "")).strip(), parse_plan(json.dumps({"plan": data.get("plan", [])}))
    except (ValueError, RecursionError):
        pass
    lines = text.splitlines()
    plan_lines = [ln for ln in lines if re.match(r"^\s*(\d+[.)]|[-*•])\s+", ln)]
    prose = " ".join(ln.strip() for ln in lines if ln not in plan_lines and ln.strip())
    prose = re.sub(r"^(reflection|plan)\s*:\s*", "", prose, flags=re.I).strip()
    return prose or text, parse_plan("\n".join(plan_lines)) if plan_lines else []
