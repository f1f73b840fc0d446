"""Reflexion's retry loop: up to K trials of a task, a reflection note after each failed one.

The evaluator is `memory.evaluate`; the reflection is `agent.reflexion.write_reflection`.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from agent.llm.base import LLMError
from agent.reflexion import write_reflection
from agent.runner import Agent, RunResult, new_thread_id
from agent.state import TurnOptions
from memory.evaluate import Check, evaluate

log = logging.getLogger(__name__)


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
