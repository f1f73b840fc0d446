"""Reflexion (Shinn et al., 2023): actor → evaluator → self-reflection → episodic memory → retry.

The actor is the agent graph; the evaluator is `memory.evaluate` in scripted runs, and in chat
the turn's own signals (a tool failure left unresolved, the step limit), the model's
self-evaluation (`memory.self_evaluate = "always"`) or the user's thumbs down. On failure the
model writes a short reflection, stored as a note with the task and its outcome; the recall
node puts the most relevant notes into the next plan prompt.

Model calls here use the run's backend session, so a `scripted:` file lists, per trial, the
trial's replies and then the reflection line.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agent import prompts
from agent.llm.base import ChatBackend, ChatRequest, LLMError
from memory.evaluate import Check, evaluate

if TYPE_CHECKING:
    from agent.runner import Agent, RunResult

log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------- trials


class Trial(BaseModel):
    number: int
    thread_id: str
    answer: str
    passed: bool
    reason: str
    reflection: str | None = None
    error: str | None = None


class TrialsResult(BaseModel):
    task: str
    passed: bool
    trials: list[Trial]
    reflections: list[str]
    final: Any  # the last trial's RunResult

    @property
    def answers(self) -> list[str]:
        return [t.answer for t in self.trials]


async def run_with_trials(
    agent: Agent,
    task_input: str,
    *,
    expected: Any = None,
    check: Check = None,
    trials: int,
    thread_id: str | None = None,
    user_id: str = "local",
    images: list[str] | None = None,
    task_type: str = "",
) -> TrialsResult:
    """Up to `trials` attempts at a task; after each failed one the model reflects, the note is
    stored, and the next attempt plans with every reflection so far (plus relevant older notes).

    Each trial runs in a fresh thread (`<thread_id>-t<n>`: the actor starts clean, as in the
    paper); all of them share the backend session `thread_id`, so scripted replies are consumed
    in order across trials. Raises `memory.evaluate.CheckError` for an invalid check.
    """
    from agent.runner import TurnOptions, new_thread_id

    if trials < 1:
        raise ValueError("trials must be at least 1")
    if not callable(check):
        evaluate("", expected, check)  # an invalid check fails here, before any model call
    base = thread_id or new_thread_id()
    reflections: list[str] = []
    done: list[Trial] = []
    result: RunResult | None = None
    for number in range(1, trials + 1):
        options = TurnOptions(session=base, lessons=list(reflections), task_type=task_type, self_evaluate=False)
        tid = base if trials == 1 else f"{base}-t{number}"
        result = await agent.arun(task_input, thread_id=tid, images=images, user_id=user_id, options=options)
        verdict = evaluate(result.answer, expected, check)
        trial = Trial(number=number, thread_id=tid, answer=result.answer, passed=verdict.passed, reason=verdict.reason, error=result.error)
        done.append(trial)
        if verdict.passed:
            break
        trial.reflection = await _reflect(agent, task_input, result, verdict.reason, base, user_id, task_type)
        if trial.reflection:
            reflections.append(trial.reflection)
    assert result is not None
    return TrialsResult(task=task_input, passed=done[-1].passed, trials=done, reflections=reflections, final=result)


async def _reflect(agent: Agent, task: str, result: RunResult, reason: str, session: str, user_id: str, task_type: str) -> str | None:
    if not agent.settings.memory.reflection:
        return None
    try:
        text = await write_reflection(
            agent.backend, task=task, answer=result.answer, outcome=f"failed: {reason}", steps=result.steps, session=session
        )
    except LLMError as exc:
        log.warning("no reflection written: %s", exc)
        return None
    if agent.memory is not None:
        await agent.memory.add_note(
            user_id, task=task, reflection=text, outcome=f"failed: {reason}", task_type=task_type, answer=result.answer
        )
    return text
