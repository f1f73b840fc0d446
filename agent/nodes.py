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

from agent import grounding, prompts, weak_model
from agent.events import FinalEvent, PlanEvent, ReflectionEvent, ToolCallEvent, ToolResultEvent, emit, token_emitter
from agent.history import Budget, fit, to_openai
from agent.llm.base import (
    ChatReply,
    ChatRequest,
    LLMError,
    TokenCallback,
    ToolCall,
    bad_arguments_error,
    new_call_id,
    reply_from_openai,
    tool_calls_in_text,
)
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


# ---------------------------------------------------------------- asking the model


async def ask(ctx: AgentContext, request: ChatRequest, on_token: TokenCallback | None = None) -> ChatReply:
    """One model call. Backends raise LLMError for what they expect; anything else (a backend
    bug, a reply no parser foresaw) also becomes an LLMError, so the turn ends with a clear
    error in `respond` instead of a traceback out of the graph."""
    try:
        reply = await ctx.backend.complete(request, on_token=on_token, session=ctx.session)
    except LLMError:
        raise
    except Exception as exc:  # noqa: BLE001 - see the docstring
        # Debug level: the CLI shows info logs, and users get one error line, not a traceback.
        log.debug("the model backend failed in the %s step", request.purpose, exc_info=True)
        raise LLMError(f"the model backend failed in the {request.purpose} step: {type(exc).__name__}: {exc}") from exc
    if not isinstance(reply, ChatReply):
        raise LLMError(f"the model backend returned {type(reply).__name__} instead of a reply in the {request.purpose} step")
    return reply


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
    return await ask(ctx, request)


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
        return registry.openai_schemas(weak_model.routed_tools(ctx, state, [r.name for r in chosen], exclude))
    if ctx.router is None or len(registry) <= routing.top_k:
        return registry.openai_schemas()  # few tools: ranking would only cost time
    chosen = ctx.router.select(state["request"], context, "model", routing.top_k, routing.threshold, set())
    return registry.openai_schemas(r.name for r in chosen)


async def act(state: AgentState, runtime: Ctx) -> dict[str, Any]:
    ctx = runtime.context
    step = current_step(state)
    offered = await asyncio.to_thread(offered_tools, ctx, state, step)  # off the event loop, as in plan
    if ctx.policy == "router" and not offered:
        return {}  # nothing (more) to call: respond writes the answer
    if weak_model.uses_weak_model(ctx):
        return await act_on(ctx, state, weak_model.call_request(ctx, state, offered[0]), offered)
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
    return await act_on(ctx, state, request, offered)


async def act_on(ctx: AgentContext, state: AgentState, request: ChatRequest, offered: list[dict[str, Any]]) -> dict[str, Any]:
    """One act model call (plus a repair round for unconstrained backends) as the state update."""
    try:
        reply = await ask(ctx, request, token_emitter("act"))
        if not ctx.backend.constrained:
            reply = with_text_calls(reply, offered)
            problems = call_problems(ctx, reply)
            if problems:
                reply = with_text_calls(await repair(ctx, request, reply, problems), offered)
    except LLMError as exc:
        return {"error": str(exc), "steps": state.get("steps", 0) + 1}

    reply = with_unique_ids(reply, state["messages"])
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


def with_text_calls(reply: ChatReply, offered: list[dict[str, Any]]) -> ChatReply:
    """The reply with tool calls the model wrote as text turned into real calls (see
    `tool_calls_in_text`); unchanged when it has native calls or the text is an answer."""
    if reply.tool_calls:
        return reply
    found = tool_calls_in_text(reply.content, [t["function"]["name"] for t in offered])
    return reply_from_openai("", found) if found else reply


def with_unique_ids(reply: ChatReply, history: list[Any]) -> ChatReply:
    """The reply with call ids this thread has not used yet. Models reuse ids ("call_0" every
    round, or a scripted id every turn); some APIs reject a conversation with repeated ids, and
    a repeated id would make tool results ambiguous."""
    taken = {c["id"] for m in history if isinstance(m, AIMessage) for c in m.tool_calls}
    if not any(c.id in taken for c in reply.tool_calls):
        return reply
    calls, raw = [], {}
    for call in reply.tool_calls:
        new_id = new_call_id() if call.id in taken else call.id
        calls.append(call.model_copy(update={"id": new_id}))
        if call.id in reply.raw_tool_arguments:
            raw[new_id] = reply.raw_tool_arguments[call.id]
    return reply.model_copy(update={"tool_calls": calls, "raw_tool_arguments": raw})


def call_problems(ctx: AgentContext, reply: ChatReply) -> dict[str, str]:
    """Tool calls that cannot run as emitted: unknown tool, unparsable or invalid arguments."""
    problems: dict[str, str] = {}
    for call in reply.tool_calls:
        try:
            tool = ctx.registry.get(call.name)  # an unknown tool first: its arguments do not matter
            if call.id in reply.raw_tool_arguments:
                problems[call.id] = bad_arguments_error(call.name, reply.raw_tool_arguments[call.id])
            else:
                tool.validate(call.arguments)
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
    return await ask(ctx, retry, token_emitter("act"))


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
    if bad_arguments is not None and call["name"] in ctx.registry:
        result = ToolResult(ok=False, error=bad_arguments_error(call["name"], bad_arguments))
    else:
        result = await ctx.registry.ainvoke(
            call["name"], call["args"], ctx.settings.limits.tool_timeout_s, ctx.tool_context(request)
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


# ---------------------------------------------------------------- respond


async def respond(state: AgentState, runtime: Ctx) -> dict[str, Any]:
    ctx = runtime.context
    limits, sampling = ctx.settings.limits, ctx.settings.sampling
    error = state.get("error")
    draft = state.get("draft", "")
    stop = "" if draft or error else stop_note(state, limits)
    if error:
        answer = prompts.MODEL_FAILED.format(error=error)
    elif draft and sampling.self_consistency == 1:
        answer = draft
    elif weak_model.uses_weak_model(ctx):
        try:
            reply = await ask(ctx, weak_model.answer_request(ctx, state), token_emitter("respond"))
            answer = weak_model.checked_answer(ctx, state, reply.content)
        except LLMError as exc:
            error = str(exc)
            answer = prompts.MODEL_FAILED.format(error=error)
    else:
        try:
            answer = await write_answer(ctx, state, stop, draft)
        except LLMError as exc:
            error = str(exc)
            answer = prompts.MODEL_FAILED.format(error=error)
    if not ctx.backend.chooses_tools and not error and not weak_model.uses_weak_model(ctx):
        answer = grounded(answer, state.get("step_log", []))
    citations: list[dict[str, Any]] = []
    if not error and not stop:
        checked = await grounding.grounded_answer(ctx, state, answer)
        answer, citations = checked.answer, [c.model_dump() for c in checked.citations]
    if not answer.strip() and not error and not stop:
        # An empty reply is a model failure, not an answer: say so (and let the CLI exit 1).
        error = prompts.NO_USABLE_ANSWER
        answer = prompts.MODEL_FAILED.format(error=error)
    if stop:
        answer = stop + ("\n\n" + answer if answer.strip() else "")
    answer = with_honesty_notes(answer, state)

    update: dict[str, Any] = {"answer": answer, "error": error}
    last = state["messages"][-1]
    if isinstance(last, AIMessage) and not last.tool_calls:
        # act answered in text (maybe empty): replace that message (same id) rather than add a second answer
        if answer != last.text:
            update["messages"] = [AIMessage(content=answer, id=last.id)]
    else:
        update["messages"] = [AIMessage(content=answer)]
    emit(
        FinalEvent(
            answer=answer, plan=state.get("plan", []), steps=state.get("step_log", []),
            artifacts=state.get("artifacts", []), error=error, citations=citations,
        )
    )
    return update


def ended_on_tools(state: AgentState) -> bool:
    return isinstance(state["messages"][-1], ToolMessage)


def stop_note(state: AgentState, limits: Any) -> str:
    """Why the turn stops while the model still wanted tools: the step limit, or a call it keeps
    repeating; "" when it did not stop early."""
    if not ended_on_tools(state):
        return ""
    if state.get("steps", 0) >= limits.max_steps:
        return prompts.STEP_LIMIT_NOTE.format(steps=state.get("steps", 0))
    repeated = repeated_call(state, limits.max_repeated_calls)
    if repeated:
        return prompts.REPEATED_CALL_NOTE.format(call=repeated, times=limits.max_repeated_calls)
    return ""


def repeated_call(state: AgentState, limit: int) -> str | None:
    """The call the model keeps repeating, when every call of the last round already ran at
    least `limit` times this turn with the same arguments and the same outcome (None otherwise).

    Nothing new can come of such a round, and a weak or broken model would repeat it until the
    step limit; the ids do not count, models make new ones for the same call."""
    rounds = 0
    for message in reversed(state["messages"]):
        if not isinstance(message, ToolMessage):
            break
        rounds += 1  # observe wrote one tool message and one step_log entry per call
    log = state.get("step_log", [])
    if not rounds or rounds > len(log):
        return None
    seen = Counter(_outcome(e) for e in log)
    last = log[-rounds:]
    if any(seen[_outcome(e)] < limit for e in last):
        return None
    first = last[0]
    shown = f"{first['tool'] or repr('')}({json.dumps(first['arguments'], ensure_ascii=False, default=str)})"
    return shown if len(shown) <= 200 else shown[:200] + "…"


def _outcome(entry: dict[str, Any]) -> str:
    value = entry.get("result") if entry["ok"] else entry.get("error")
    return json.dumps([entry["tool"], entry["arguments"], entry["ok"], value], sort_keys=True, ensure_ascii=False, default=str)


async def write_answer(ctx: AgentContext, state: AgentState, stop: str, draft: str) -> str:
    note = stop + " Say what you found so far." if stop else ""
    system = prompts.RESPOND.render(context={"Plan": prompts.numbered(state.get("plan", [])), "Note": note})
    base = ChatRequest(
        messages=prompt_messages(ctx, state, system),
        tool_choice="none",
        max_tokens=ctx.settings.limits.max_new_tokens,
        purpose="respond",
    )
    n = ctx.settings.sampling.self_consistency
    if n == 1:
        reply = await ask(ctx, base, token_emitter("respond"))
        return reply.content.strip()
    sampled = base.model_copy(update={"temperature": ctx.settings.sampling.temperature})
    answers = [(await ask(ctx, sampled)).content.strip() for _ in range(n)]
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
        extra.append("Tool problems:\n" + "\n".join(f"- {e['tool'] or repr('')} failed: {e['error']}" for e in failed))
    files = [a.get("path") or a.get("id") for a in state.get("artifacts", [])]
    files = [f for f in files if f and f not in answer]
    if files:
        extra.append("Files:\n" + "\n".join(f"- {f}" for f in files))
    return "\n\n".join([answer.strip(), *extra]).strip()
