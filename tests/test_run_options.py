"""Per-run tool options from the UI: tools turned off, and approval before a tool runs."""

from __future__ import annotations

import asyncio

from langgraph.checkpoint.memory import InMemorySaver

from agent.config import Settings
from agent.llm.scripted import ScriptedBackend
from agent.runner import Agent
from tests.conftest import call, calls, say, write_script
from tools.calculator import calculator_tool
from tools.registry import ToolRegistry


def _agent(tmp_path, *messages) -> Agent:
    script = write_script(tmp_path / "s.jsonl", *messages)
    return Agent(Settings(), ScriptedBackend(str(script)), ToolRegistry([calculator_tool()]), None, InMemorySaver())


async def _events(agent: Agent, **options) -> list[dict]:
    return [e async for e in agent.astream("what is 6*7?", thread_id="t", **options)]


def _plan_and_call(tmp_path):
    return _agent(
        tmp_path,
        say("1. Compute 6*7 with the calculator"),
        calls(call("calculator", {"expression": "6*7"})),
        say("done"),
        say("The answer is whatever the tool said."),
    )


def test_a_denied_tool_does_not_run_and_the_model_reads_why(tmp_path):
    asked = []

    async def deny(name, arguments):
        asked.append((name, arguments))
        return False

    events = asyncio.run(_events(_plan_and_call(tmp_path), needs_approval={"calculator"}, approve=deny))
    assert asked == [("calculator", {"expression": "6*7"})]
    result = next(e for e in events if e["type"] == "tool_result")
    assert not result["ok"] and "declined" in result["error"]


def test_an_approved_tool_runs(tmp_path):
    async def allow(name, arguments):
        return True

    events = asyncio.run(_events(_plan_and_call(tmp_path), needs_approval={"calculator"}, approve=allow))
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] and "42" in str(result["result"])


def test_a_tool_turned_off_is_unknown_to_the_run(tmp_path):
    events = asyncio.run(_events(_plan_and_call(tmp_path), tools=[]))
    assert not [e for e in events if e["type"] == "tool_result" and e["ok"]]
    assert events[-1]["type"] == "final"
