"""Reflexion (Shinn et al., 2023): actor → evaluator → self-reflection → episodic memory → retry.

The actor is the agent graph; the evaluator is `memory.evaluate` in scripted runs, and in chat
the turn's own signals (a tool failure left unresolved, the step limit), the model's
self-evaluation (`memory.self_evaluate = "always"`) or the user's thumbs down. On failure the
model writes a short reflection, stored as a note with the task and its outcome; the recall
node puts the most relevant notes into the next plan prompt.

Model calls here use the run's backend session, so a `scripted:` file lists, per trial, the
trial's replies and then the reflection line. Retrying a task over trials is `agent.trials`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agent import prompts
from agent.llm.base import ChatBackend, ChatRequest


# ---------------------------------------------------------------- self-reflection


async def write_reflection(
    backend: ChatBackend, *, task: str, answer: str, outcome: str, steps: list[dict[str, Any]], session: str,
    comment: str | None = None,
) -> str:
    """The model's short reflection on a failed attempt (what went wrong, what to do differently)."""
    request = ChatRequest(
        messages=[
            {"role": "system", "content": prompts.REFLEXION.render()},
            {"role": "user", "content": prompts.attempt_summary(task, answer, outcome, steps, comment)},
        ],
        response_schema=prompts.REFLEXION_SCHEMA if backend.constrained else None,
        temperature=0.0,
        max_tokens=200,
        purpose="reflect",
    )
    reply = await backend.complete(request, session=session)
    return parse_reflection_text(reply.content) or f"The attempt failed ({outcome}); try a different approach."


def parse_reflection_text(text: str) -> str:
    text = (text or "").strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            text = str(data.get("reflection", "")).strip()
    except json.JSONDecodeError:
        pass
    return re.sub(r"^\s*reflection\s*:\s*", "", text, flags=re.I).strip()[:600]


async def self_evaluate(
    backend: ChatBackend, *, task: str, answer: str, steps: list[dict[str, Any]], session: str
) -> tuple[bool, str]:
    """The model judges its own answer: (success, reflection when it failed)."""
    request = ChatRequest(
        messages=[
            {"role": "system", "content": prompts.SELF_EVALUATE.render()},
            {"role": "user", "content": prompts.attempt_summary(task, answer, "to be judged", steps)},
        ],
        response_schema=prompts.SELF_EVALUATE_SCHEMA if backend.constrained else None,
        temperature=0.0,
        max_tokens=200,
        purpose="reflect",
    )
    text = (await backend.complete(request, session=session)).content.strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return bool(data.get("success")), parse_reflection_text(str(data.get("reflection", "")))
    except json.JSONDecodeError:
        pass
    success = re.search(r"success\s*:\s*(yes|true)", text, re.I) is not None
    body = re.sub(r"^.*success\s*:\s*\w+\s*", "", text, count=1, flags=re.I | re.S)
    return success, "" if success else parse_reflection_text(body)


def failure_signal(final: dict[str, Any]) -> str | None:
    """Why a chat turn evidently failed, from its final event; None when nothing says so.
    A model error is not a task failure to learn from (the model could not be asked anyway)."""
    if final.get("error"):
        return None
    last_by_tool: dict[str, dict[str, Any]] = {}
    for entry in final.get("steps", []):
        last_by_tool[entry["tool"]] = entry
    failed = [f"{e['tool']} failed: {e.get('error')}" for e in last_by_tool.values() if not e["ok"]]
    if failed:
        return "; ".join(failed)[:300]
    if final.get("answer", "").startswith(prompts.STEP_LIMIT_NOTE.split("{")[0]):
        return "stopped at the step limit before finishing"
    return None
