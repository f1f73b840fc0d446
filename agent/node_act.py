"""The act node: offer the most relevant tools, ask the model for calls or an answer, and (for
backends without a grammar) run tool calls written as text and repair invalid ones once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from agent import prompts, weak_model
from agent.events import token_emitter
from agent.llm.base import (
    ChatReply,
    ChatRequest,
    LLMError,
    ToolCall,
    bad_arguments_error,
    new_call_id,
    reply_from_openai,
    tool_calls_in_text,
)
from agent.model_calls import ask, memory_sections, prompt_messages
from agent.state import AgentContext, AgentState
from tools.registry import ToolError

Ctx = Runtime[AgentContext]


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
