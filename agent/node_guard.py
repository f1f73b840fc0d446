"""The guard_input node: moderation of the request before anything else runs (agent/safety.py
holds the guard itself; this module is the graph's, so opening an agent does not import the graph)."""

from __future__ import annotations

import logging
from typing import Any

from agent import prompts
from agent.safety import SafetyGuard, describe
from agent.state import AgentState

log = logging.getLogger("agent.safety")


async def guard_input(state: AgentState, runtime) -> dict[str, Any]:
    """Before planning: moderate the request; a flagged one gets a refusal, and no model call."""
    guard: SafetyGuard | None = runtime.context.safety
    if guard is None or not guard.enabled:
        return {}
    try:
        verdict = await guard.check(state["request"])
    except Exception as exc:  # noqa: BLE001 - fail closed: an unchecked request does not reach the model
        log.warning("the safety check failed: %s", exc)
        return {"error": f"the safety check failed, so the request was not run: {type(exc).__name__}: {exc}"}
    if not verdict.flagged:
        return {}
    log.info("request refused: %s", ", ".join(verdict.reasons))
    refusal = prompts.REFUSAL.format(reason=describe(verdict))
    return {"refusal": refusal + (prompts.CRISIS_LINE if verdict.categories.get("self_harm") else "")}


def after_guard_input(state: AgentState) -> str:
    return "respond" if state.get("refusal") or state.get("error") else "recall"
