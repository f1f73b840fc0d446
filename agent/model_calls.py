"""What the nodes share for asking the model: the prompt under the token budget (with the
running summary of trimmed turns), the memory sections of a prompt, and one guarded model call."""

from __future__ import annotations

import logging
from typing import Any

from agent import prompts, tracing
from agent.history import Budget, fit, to_openai
from agent.llm.base import ChatReply, ChatRequest, LLMError, TokenCallback, usage_of
from agent.state import AgentContext, AgentState
from memory.summary import extend_summary
from memory.tokens import MESSAGE_OVERHEAD, token_counter

log = logging.getLogger(__name__)


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
    with tracing.span(ctx, f"model {request.purpose}", {"gen_ai.request.model": ctx.backend.spec}) as current:
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
        prompt, completion, estimated = usage_of(request, reply)
        tracing.model_call_attributes(current, request.purpose, prompt, completion, estimated)
        if ctx.usage is not None:
            ctx.usage.add(prompt, completion)
    return reply


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
