"""The graph's nodes: recall, plan, act, observe, reflect, respond. Wiring is in `agent/graph.py`.

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
from collections import Counter
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.runtime import Runtime

from agent import prompts
from agent.events import FinalEvent, PlanEvent, ReflectionEvent, ToolCallEvent, ToolResultEvent, emit, token_emitter
from agent.history import Budget, fit, to_openai
from agent.llm.base import ChatReply, ChatRequest, LLMError, ToolCall
from agent.state import AgentContext, AgentState
from memory.summary import extend_summary
from memory.tokens import MESSAGE_OVERHEAD, token_counter
from tools.registry import ToolError

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


# ---------------------------------------------------------------- the prompt budget


def budget(ctx: AgentContext) -> Budget:
    settings = ctx.settings.memory
    return Budget(settings.context_tokens, settings.tool_result_tokens, token_counter(ctx.backend))


def prompt_messages(ctx: AgentContext, state: AgentState, system: str) -> list[dict[str, Any]]:
    """The system prompt and as much history as the token budget allows."""
    return to_openai(system, state["messages"], budget=budget(ctx), summary=state.get("summary", ""))


def fold_summary(ctx: AgentContext, state: AgentState, system: str) -> dict[str, Any]:
    """Extend the running summary with the turns that no longer fit the budget (once each)."""
    b = budget(ctx)
    reserve = b.count(system) + ctx.settings.memory.summary_tokens + 2 * MESSAGE_OVERHEAD
    dropped, _ = fit(state["messages"], b.tokens - reserve, b)
    position = {m.id: i for i, m in enumerate(state["messages"]) if m.id}
    done = position.get(state.get("summary_upto", ""), -1)
    new = [m for m in dropped if position.get(m.id, -1) > done]
    if not new:
        return {}
    summary = extend_summary(state.get("summary", ""), new, ctx.settings.memory.summary_tokens, b.count)
    return {"summary": summary, "summary_upto": next(m.id for m in reversed(new) if m.id)}


# ---------------------------------------------------------------- plan


async def plan(state: AgentState, runtime: Ctx) -> dict[str, Any]:
    ctx = runtime.context
    offered = offered_tools(ctx, state, context=None)
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


def memory_sections(state: AgentState) -> dict[str, str]:
    return {
        "What you remember about the user": prompts.bulleted(state.get("memories", [])),
        "Notes from earlier tasks (reflections on failures)": prompts.numbered(state.get("lessons", [])),
    }


async def structured_reply(ctx: AgentContext, state: AgentState, system: str, schema: dict[str, Any], max_tokens: int, purpose: str) -> ChatReply:
    """A temperature-0 reply for plan/reflect: JSON under `schema` on grammar backends (a base
    model would ramble otherwise), plain text elsewhere; the parsers accept both."""
    request = ChatRequest(
        messages=prompt_messages(ctx, state, system),
        response_schema=schema if ctx.backend.constrained else None,
        temperature=0.0,
        max_tokens=max_tokens,
        purpose=purpose,
    )
    return await ctx.backend.complete(request, session=ctx.session)


def parse_plan(text: str) -> list[str]:
    """A plan from JSON (`{"plan": [...]}`) or from numbered/bulleted lines."""
    text = (text or "").strip()
    try:
        data = json.loads(text)
        items = data.get("plan") if isinstance(data, dict) else data
        if isinstance(items, list):
            steps = [str(s).strip() for s in items if str(s).strip()]
            if steps:
                return steps[:8]
    except (json.JSONDecodeError, AttributeError):
        pass
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    marked = [re.sub(r"^(\d+[.)]|[-*•])\s*", "", ln) for ln in lines if re.match(r"^(\d+[.)]|[-*•])\s*", ln)]
    steps = marked or lines
    return steps[:8] or ["Answer the request directly."]


# ---------------------------------------------------------------- act


def current_step(state: AgentState) -> str:
    steps = state.get("plan") or []
    if not steps:
        return ""
    index = state.get("steps", 0) - state.get("plan_start", 0)
    return steps[min(max(index, 0), len(steps) - 1)]


def offered_tools(ctx: AgentContext, state: AgentState, context: str | None) -> list[dict[str, Any]]:
    """The tools the model is offered now, most relevant first (tool retrieval)."""
    registry, routing = ctx.registry, ctx.settings.routing
    if ctx.policy == "router":
        # Router policy is for weak models, whose plan steps are unreliable: route on the
        # request alone, and move on by excluding the tools that already succeeded (or failed
        # twice: a weak model repeats the same bad arguments).
        failures = Counter(e["tool"] for e in state.get("step_log", []) if not e["ok"])
        exclude = set(state.get("called_ok", [])) | {tool for tool, n in failures.items() if n >= 2}
        chosen = ctx.router.select(state["request"], None, "router", routing.top_k, routing.threshold, exclude)
        return registry.openai_schemas(r.name for r in chosen)
    if ctx.router is None or len(registry) <= routing.top_k:
        return registry.openai_schemas()  # few tools: ranking would only cost time
    chosen = ctx.router.select(state["request"], context, "model", routing.top_k, routing.threshold, set())
    return registry.openai_schemas(r.name for r in chosen)


async def act(state: AgentState, runtime: Ctx) -> dict[str, Any]:
    ctx = runtime.context
    step = current_step(state)
    offered = offered_tools(ctx, state, context=step)
    if ctx.policy == "router" and not offered:
        return {}  # nothing (more) to call: respond writes the answer
    system = prompts.ACT.render(
        context={
            "Plan": prompts.numbered(state.get("plan", [])),
            "Current step": step,
            **memory_sections(state),
            "Lessons from earlier attempts": prompts.numbered(state.get("reflections", [])),
        }
    )
    messages = prompt_messages(ctx, state, system)
    request = ChatRequest(
        messages=messages,
        tools=offered,
        tool_choice=offered[0]["function"]["name"] if ctx.policy == "router" else "auto",
        temperature=0.0,
        max_tokens=ctx.settings.limits.max_new_tokens,
        purpose="act",
    )
    try:
        reply = await ctx.backend.complete(request, on_token=token_emitter("act"), session=ctx.session)
        if not ctx.backend.constrained:
            problems = call_problems(ctx, reply)
            if problems:
                reply = await repair(ctx, request, reply, problems)
    except LLMError as exc:
        return {"error": str(exc), "steps": state.get("steps", 0) + 1}

    calls = reply.tool_calls[: ctx.settings.limits.max_tool_calls_per_step]
    message = AIMessage(
        content=reply.content,
        tool_calls=[{"id": c.id, "name": c.name, "args": c.arguments} for c in calls],
    )
    bad = {c.id: reply.raw_tool_arguments[c.id] for c in calls if c.id in reply.raw_tool_arguments}
    return {
        "messages": [message],
        "steps": state.get("steps", 0) + 1,
        "draft": "" if calls else reply.content.strip(),
        "bad_arguments": bad,
    }


def call_problems(ctx: AgentContext, reply: ChatReply) -> dict[str, str]:
    """Tool calls that cannot run as emitted: unknown tool, unparsable or invalid arguments."""
    problems: dict[str, str] = {}
    for call in reply.tool_calls:
        if call.id in reply.raw_tool_arguments:
            problems[call.id] = f"arguments for {call.name} are not valid JSON: {reply.raw_tool_arguments[call.id][:200]!r}"
            continue
        try:
            ctx.registry.get(call.name).validate(call.arguments)
        except ToolError as exc:
            problems[call.id] = str(exc)
    return problems


async def repair(ctx: AgentContext, request: ChatRequest, reply: ChatReply, problems: dict[str, str]) -> ChatReply:
    """One repair round: show the model its invalid calls and the validation errors."""
    messages = list(request.messages)
    messages.append({"role": "assistant", "content": reply.content, "tool_calls": [_openai_call(reply, c) for c in reply.tool_calls]})
    for call in reply.tool_calls:
        error = problems.get(call.id)
        text = f"ERROR: {error}. Fix the call and try again." if error else "Not run: another call in this step was invalid; repeat it if still needed."
        messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": text})
    retry = request.model_copy(update={"messages": messages})
    return await ctx.backend.complete(retry, on_token=token_emitter("act"), session=ctx.session)


def _openai_call(reply: ChatReply, call: ToolCall) -> dict[str, Any]:
    item = call.to_openai()
    if call.id in reply.raw_tool_arguments:
        item["function"]["arguments"] = reply.raw_tool_arguments[call.id]
    return item


# ---------------------------------------------------------------- observe


async def observe(state: AgentState, runtime: Ctx) -> dict[str, Any]:
    """Run the last act's tool calls; every call gets exactly one tool message, whatever happens."""
    ctx = runtime.context
    message = state["messages"][-1]
    bad = state.get("bad_arguments") or {}
    calls = message.tool_calls if isinstance(message, AIMessage) else []
    outcomes = await asyncio.gather(*(run_tool(ctx, call, bad.get(call["id"])) for call in calls))

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


async def run_tool(ctx: AgentContext, call: dict[str, Any], bad_arguments: str | None):
    from tools.registry import ToolResult

    emit(ToolCallEvent(id=call["id"], name=call["name"], arguments=call["args"]))
    start = time.perf_counter()
    if bad_arguments is not None:
        result = ToolResult(ok=False, error=f"arguments for {call['name']} are not valid JSON: {bad_arguments[:200]!r}")
    else:
        result = await ctx.registry.ainvoke(
            call["name"], call["args"], ctx.settings.limits.tool_timeout_s, ctx.tool_context()
        )
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
    except json.JSONDecodeError:
        pass
    lines = text.splitlines()
    plan_lines = [ln for ln in lines if re.match(r"^\s*(\d+[.)]|[-*•])\s+", ln)]
    prose = " ".join(ln.strip() for ln in lines if ln not in plan_lines and ln.strip())
    prose = re.sub(r"^(reflection|plan)\s*:\s*", "", prose, flags=re.I).strip()
    return prose or text, parse_plan("\n".join(plan_lines)) if plan_lines else []


# ---------------------------------------------------------------- respond


async def respond(state: AgentState, runtime: Ctx) -> dict[str, Any]:
    ctx = runtime.context
    limits, sampling = ctx.settings.limits, ctx.settings.sampling
    error = state.get("error")
    draft = state.get("draft", "")
    stopped = not draft and not error and state.get("steps", 0) >= limits.max_steps and ended_on_tools(state)
    if error:
        answer = prompts.MODEL_FAILED.format(error=error)
    elif draft and sampling.self_consistency == 1:
        answer = draft
    else:
        try:
            answer = await write_answer(ctx, state, stopped, draft)
        except LLMError as exc:
            error = str(exc)
            answer = prompts.MODEL_FAILED.format(error=error)
    if not ctx.backend.chooses_tools and not error:
        answer = grounded(answer, state.get("step_log", []))
    if stopped:
        answer = prompts.STEP_LIMIT_NOTE.format(steps=state.get("steps", 0)) + ("\n\n" + answer if answer else "")
    answer = with_honesty_notes(answer, state)

    update: dict[str, Any] = {"answer": answer, "error": error}
    last = state["messages"][-1]
    if draft and isinstance(last, AIMessage) and not last.tool_calls:
        if answer != last.text:  # replace the act message (same id) rather than add a second answer
            update["messages"] = [AIMessage(content=answer, id=last.id)]
    else:
        update["messages"] = [AIMessage(content=answer)]
    emit(
        FinalEvent(
            answer=answer, plan=state.get("plan", []), steps=state.get("step_log", []),
            artifacts=state.get("artifacts", []), error=error,
        )
    )
    return update


def ended_on_tools(state: AgentState) -> bool:
    return isinstance(state["messages"][-1], ToolMessage)


async def write_answer(ctx: AgentContext, state: AgentState, stopped: bool, draft: str) -> str:
    note = prompts.STEP_LIMIT_NOTE.format(steps=state.get("steps", 0)) + " Say what you found so far." if stopped else ""
    system = prompts.RESPOND.render(context={"Plan": prompts.numbered(state.get("plan", [])), "Note": note})
    base = ChatRequest(
        messages=prompt_messages(ctx, state, system),
        tool_choice="none",
        max_tokens=ctx.settings.limits.max_new_tokens,
        purpose="respond",
    )
    n = ctx.settings.sampling.self_consistency
    if n == 1:
        reply = await ctx.backend.complete(base, on_token=token_emitter("respond"), session=ctx.session)
        return reply.content.strip()
    sampled = base.model_copy(update={"temperature": ctx.settings.sampling.temperature})
    answers = [(await ctx.backend.complete(sampled, session=ctx.session)).content.strip() for _ in range(n)]
    return majority([*answers, draft] if draft else answers)


def majority(answers: list[str]) -> str:
    """Self-consistency vote: the most common answer after normalising case, spaces and end punctuation."""
    def norm(text: str) -> str:
        return re.sub(r"\s+", " ", text.lower()).strip(" .。!!")

    answers = [a for a in answers if a.strip()]
    if not answers:
        return ""
    winner, _ = Counter(norm(a) for a in answers).most_common(1)[0]
    return next(a for a in answers if norm(a) == winner)


def grounded(answer: str, step_log: list[dict[str, Any]]) -> str:
    """For weak models: put the real tool results first when the model's text does not contain
    them (a 270M base model often writes around them). Imitated tool calls never get this far:
    the local backend stops generation at its own tool-call markers."""
    answer = answer.strip()
    results = [e for e in step_log if e["ok"]]
    missing = [e for e in results if str(e["result"]) not in answer]
    if not missing:
        return answer
    facts = "\n".join(f"{e['tool']}({json.dumps(e['arguments'], ensure_ascii=False)}) = {e['result']}" for e in missing)
    return f"{facts}\n\n{answer}".strip()


def with_honesty_notes(answer: str, state: AgentState) -> str:
    """State failed tools and list artifacts from the state, so the answer cannot hide a failure
    or point at a file that does not exist."""
    last_by_tool: dict[str, dict[str, Any]] = {}
    for entry in state.get("step_log", []):
        last_by_tool[entry["tool"]] = entry
    failed = [e for e in last_by_tool.values() if not e["ok"]]
    extra = []
    if failed:
        extra.append("Tool problems:\n" + "\n".join(f"- {e['tool']} failed: {e['error']}" for e in failed))
    files = [a.get("path") or a.get("id") for a in state.get("artifacts", [])]
    files = [f for f in files if f and f not in answer]
    if files:
        extra.append("Files:\n" + "\n".join(f"- {f}" for f in files))
    return "\n\n".join([answer.strip(), *extra]).strip()
