"""The respond node: the final answer (the act draft, or a model call from the tool results, with
self-consistency when configured), the early-stop note, and the notes on failed tools and files."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.runtime import Runtime

from agent import grounding, prompts, safety, weak_model
from agent.events import FinalEvent, emit, token_emitter
from agent.llm.base import ChatRequest, LLMError
from agent.model_calls import ask, prompt_messages
from agent.state import AgentContext, AgentState

Ctx = Runtime[AgentContext]


async def respond(state: AgentState, runtime: Ctx) -> dict[str, Any]:
    ctx = runtime.context
    limits, sampling = ctx.settings.limits, ctx.settings.sampling
    error = state.get("error")
    draft = state.get("draft", "")
    refusal = state.get("refusal", "")
    stop = "" if draft or error or refusal else stop_note(state, limits)
    if refusal:
        answer = refusal
    elif error:
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
    if not error and not stop and not refusal:
        checked = await grounding.grounded_answer(ctx, state, answer)
        answer, citations = checked.answer, [c.model_dump() for c in checked.citations]
    if not answer.strip() and not error and not stop:
        # An empty reply is a model failure, not an answer: say so (and let the CLI exit 1).
        error = prompts.NO_USABLE_ANSWER
        answer = prompts.MODEL_FAILED.format(error=error)
    if stop:
        answer = stop + ("\n\n" + answer if answer.strip() else "")
    answer = with_honesty_notes(answer, state)
    if not refusal and not error:  # both are our own words, not the model's
        answer = await safety.guard_output(ctx, answer)

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
