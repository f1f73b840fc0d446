"""Reflexion: evaluator, reflection notes, retries that plan with the reflection, reuse of a
reflection on a similar new task, chat self-evaluation and thumbs-down feedback."""

from __future__ import annotations

import asyncio

import pytest

from agent.config import Settings
from memory.evaluate import CheckError, evaluate
from agent.reflexion import failure_signal
from agent.trials import run_with_trials
from tests.conftest import call, calls, say, write_script
from tests.memory_fixtures import encoder, memory_agent, prompts_for  # noqa: F401 - fixture

REFLECTION = "I guessed the percentage instead of computing it; use the calculator for percentages."


@pytest.mark.parametrize(
    ("answer", "expected", "check", "passed"),
    [
        ("17% of 2340 is 397.8.", 397.8, None, True),
        ("It is about 400.", "397.8", None, False),
        ("The total is 1,234.", 1234, "numeric", True),
        ("Paris.", "paris", "exact", True),
        ("It is Paris, France.", "paris", "exact", False),
        ("It is Paris, France.", "Paris", "contains", True),
        ("cat-1.png written", None, "regex:cat-\\d+\\.png", True),
        ("a short answer", None, "len(answer) < 20 and 'short' in answer.lower()", True),
        ("no digits here", None, "number(answer) > 3", False),
    ],
)
def test_evaluator(answer, expected, check, passed):
    assert evaluate(answer, expected, check).passed is passed


def test_evaluator_rejects_code_and_missing_checks():
    with pytest.raises(CheckError):
        evaluate("x", None, "__import__('os').system('true')")
    with pytest.raises(CheckError):
        evaluate("x", None, "answer.__class__")
    with pytest.raises(CheckError):
        evaluate("x")
    assert evaluate("yes", None, lambda answer, expected: answer == "yes").passed


def test_failed_trial_reflects_and_the_second_trial_plans_with_it_and_passes(tmp_path, encoder):  # noqa: F811
    script = write_script(
        tmp_path / "s.jsonl",
        # trial 1: answers without the calculator, wrongly
        say("1. Answer from memory"),
        say("17% of 2340 is about 400."),
        # the reflection on trial 1
        say(f"Reflection: {REFLECTION}"),
        # trial 2: plans with the reflection, uses the calculator
        say("1. Compute 17% * 2340 with the calculator\n2. Answer"),
        calls(call("calculator", {"expression": "17% * 2340"})),
        say("17% of 2340 is 397.8."),
    )
    agent = memory_agent(script, encoder)
    result = asyncio.run(run_with_trials(agent, "What is 17% of 2340?", expected=397.8, trials=3, thread_id="task1", user_id="ci"))

    assert result.passed and [t.passed for t in result.trials] == [False, True]
    assert result.answers == ["17% of 2340 is about 400.", "17% of 2340 is 397.8."]
    assert result.reflections == [REFLECTION] and result.trials[0].reflection == REFLECTION
    assert "expected the number 397.8" in result.trials[0].reason
    assert result.final.answer == "17% of 2340 is 397.8." and result.final.thread_id == "task1-t2"
    plans = prompts_for(agent, "plan", session="task1")
    assert REFLECTION not in plans[0] and REFLECTION in plans[1]
    assert plans[1].count(REFLECTION) == 1  # the trial's own reflection and the stored note are one
    notes = asyncio.run(agent.notes("ci"))
    assert [(n["text"], n["task"]) for n in notes] == [(REFLECTION, "What is 17% of 2340?")]
    assert notes[0]["outcome"].startswith("failed: expected the number 397.8")

    # A similar new task, in a new thread: the stored reflection reaches its plan prompt.
    asyncio.run(agent.arun("What is 18% of 1200?", thread_id="task2", user_id="ci"))
    assert REFLECTION in prompts_for(agent, "plan", session="task2")[0]
    # ...but not another user's, and not an unrelated task's.
    asyncio.run(agent.arun("What is 18% of 1200?", thread_id="task3", user_id="someone-else"))
    assert REFLECTION not in prompts_for(agent, "plan", session="task3")[0]
    asyncio.run(agent.arun("Draw a cat wearing a hat", thread_id="task4", user_id="ci"))
    assert REFLECTION not in prompts_for(agent, "plan", session="task4")[0]


def test_all_trials_failing_keeps_every_reflection_and_task_type_notes(tmp_path, encoder):  # noqa: F811
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Guess"), say("Maybe 3."), say("Reflection: I guessed; compute it."),
        say("1. Guess again"), say("Maybe 4."), say("Reflection: Still guessing; call the calculator."),
    )
    agent = memory_agent(script, encoder)
    result = asyncio.run(
        run_with_trials(agent, "What is 6 * 7?", expected=42, trials=2, thread_id="t", user_id="u", task_type="arithmetic")
    )
    assert not result.passed and len(result.trials) == 2
    assert result.reflections == ["I guessed; compute it.", "Still guessing; call the calculator."]
    assert "I guessed; compute it." in prompts_for(agent, "plan", session="t")[1]
    # An unrelated task of the same type still gets the latest notes of that type.
    notes = asyncio.run(agent.memory.relevant_notes("u", "Name a colour", 3, 0.99, task_type="arithmetic"))
    assert {n.text for n in notes} == set(result.reflections)


def test_invalid_check_fails_before_any_model_call(tmp_path, encoder):  # noqa: F811
    agent = memory_agent(write_script(tmp_path / "s.jsonl", say("unused")), encoder)
    with pytest.raises(CheckError):
        asyncio.run(run_with_trials(agent, "x", check="open('/etc/passwd')", trials=2))
    assert len(agent.backend.requests) == 0


def test_chat_turn_with_an_unresolved_tool_failure_writes_a_note(tmp_path, encoder):  # noqa: F811
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Divide"),
        calls(call("calculator", {"expression": "1/0"})),
        say("Reflection: cannot divide by zero.\n1. Tell the user"),
        say("I could not compute that."),
        say("Reflection: Division by zero is undefined; ask the user what they meant instead of calling the calculator."),
    )
    agent = memory_agent(script, encoder, Settings(limits={"max_reflections": 1}))
    result = asyncio.run(agent.arun("What is 1/0?", thread_id="c1", user_id="u"))
    assert failure_signal({"answer": result.answer, "steps": result.steps, "error": None}).startswith("calculator failed")
    notes = asyncio.run(agent.notes("u"))
    assert [n["text"] for n in notes] == ["Division by zero is undefined; ask the user what they meant instead of calling the calculator."]


def test_thumbs_down_writes_a_reflection_and_thumbs_up_does_not(tmp_path, encoder):  # noqa: F811
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Answer"),
        say("The capital of Australia is Sydney."),
        say("Reflection: I named the largest city, not the capital; the capital is Canberra."),
    )
    agent = memory_agent(script, encoder)
    asyncio.run(agent.arun("What is the capital of Australia?", thread_id="f1", user_id="u"))
    assert asyncio.run(agent.feedback("f1", "u", True)) is None
    note = asyncio.run(agent.feedback("f1", "u", False, "wrong city"))
    assert note["text"] == "I named the largest city, not the capital; the capital is Canberra."
    assert note["task"] == "What is the capital of Australia?" and "wrong city" in note["outcome"]
    assert "User comment: wrong city" in agent.backend.requests[-1][1].messages[1]["content"]
    assert [n["id"] for n in asyncio.run(agent.notes("u"))] == [note["id"]]
