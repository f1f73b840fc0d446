"""The full graph driven by scripted models: plan, tool calls, errors and recovery, limits."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

from agent.config import Settings
from agent.history import paired_history
from agent.llm.scripted import ScriptedBackend
from agent.nodes import majority
from agent.runner import Agent
from tests.conftest import call, calls, say, write_script
from tools.calculator import calculator_tool
from tools.registry import Tool, ToolRegistry


class NoArgs(BaseModel):
    pass


def boom() -> str:
    raise RuntimeError("disk on fire")


def make_agent(script, settings: Settings | None = None, checkpointer=None) -> Agent:
    registry = ToolRegistry([calculator_tool(), Tool("boom", "A tool that always crashes.", NoArgs, boom)])
    return Agent(settings or Settings(), ScriptedBackend(script), registry, None, checkpointer or InMemorySaver())


def run(agent: Agent, text: str, thread: str = "t1"):
    events: list[dict] = []
    result = asyncio.run(agent.arun(text, thread_id=thread, on_event=events.append))
    return result, events


def messages_of(agent: Agent, thread: str = "t1"):
    state = asyncio.run(agent.graph.aget_state({"configurable": {"thread_id": thread}}))
    return state.values["messages"]


def assert_paired(messages) -> None:
    """Every tool call has exactly one tool message right after its assistant message."""
    assert paired_history(messages) == messages
    open_calls: set[str] = set()
    for msg in messages:
        if isinstance(msg, AIMessage):
            assert not open_calls
            open_calls = {c["id"] for c in msg.tool_calls}
        elif isinstance(msg, ToolMessage):
            open_calls.remove(msg.tool_call_id)
    assert not open_calls


def test_plan_tool_call_and_answer(tmp_path):
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Compute 17% of 2340 with the calculator\n2. Answer with the result"),
        calls(call("calculator", {"expression": "17% * 2340"})),
        say("17% of 2340 is 397.8."),
    )
    agent = make_agent(script)
    result, events = run(agent, "What is 17% of 2340?")
    assert result.plan == ["Compute 17% of 2340 with the calculator", "Answer with the result"]
    assert result.answer == "17% of 2340 is 397.8."
    assert [s["tool"] for s in result.steps] == ["calculator"]
    assert result.steps[0]["ok"] and "397.8" in str(result.steps[0]["result"])
    kinds = [e["type"] for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "final"
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("token")
    assert "".join(e["text"] for e in events if e["type"] == "token") == "17% of 2340 is 397.8."
    assert_paired(messages_of(agent))


def test_several_tool_calls_in_one_turn(tmp_path):
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Compute both products\n2. Compare"),
        calls(call("calculator", {"expression": "12*12"}, "a"), call("calculator", {"expression": "11*13"}, "b")),
        say("144 is larger than 143."),
    )
    agent = make_agent(script)
    result, events = run(agent, "Which is larger, 12*12 or 11*13?")
    assert [s["result"] for s in result.steps] == ["144", "143"]
    assert [e["id"] for e in events if e["type"] == "tool_result"] == ["a", "b"]
    msgs = messages_of(agent)
    assert_paired(msgs)
    assert [m.tool_call_id for m in msgs if isinstance(m, ToolMessage)] == ["a", "b"]


def test_tool_error_reflection_and_recovery(tmp_path):
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Divide with the calculator\n2. Answer"),
        calls(call("calculator", {"expression": "10/0"})),
        say("Reflection: dividing by zero is undefined; the user meant 10/2.\n1. Compute 10/2\n2. Answer"),
        calls(call("calculator", {"expression": "10/2"})),
        say("10 divided by 2 is 5."),
    )
    agent = make_agent(script)
    result, events = run(agent, "What is 10 divided by 2?")
    assert result.error is None
    assert [s["ok"] for s in result.steps] == [False, True]
    assert "division by zero" in result.steps[0]["error"]
    reflection = next(e for e in events if e["type"] == "reflection")
    assert "dividing by zero" in reflection["text"] and reflection["plan"] == ["Compute 10/2", "Answer"]
    assert result.plan == ["Compute 10/2", "Answer"]
    # The failure was resolved by a later success of the same tool: no failure note.
    assert result.answer == "10 divided by 2 is 5."
    assert_paired(messages_of(agent))


def test_crashing_tool_is_paired_and_reported_honestly(tmp_path):
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Run boom\n2. Answer"),
        calls(call("boom", {})),
        say("Reflection: boom crashed; nothing else can do its job.\n1. Tell the user"),
        say("I could not finish: the boom tool crashed."),
    )
    agent = make_agent(script)
    result, _ = run(agent, "Run boom")
    assert "Tool problems:" in result.answer and "boom failed: boom failed: RuntimeError: disk on fire" in result.answer
    msgs = messages_of(agent)
    assert_paired(msgs)
    tool_msg = next(m for m in msgs if isinstance(m, ToolMessage))
    assert tool_msg.status == "error" and "disk on fire" in tool_msg.text


def test_step_limit_stops_gracefully(tmp_path):
    looping = [calls(call("calculator", {"expression": f"{i}+1"}, f"c{i}")) for i in range(10)]
    script = write_script(tmp_path / "s.jsonl", say("1. Keep adding"), *looping[:3], say("So far: 1, 2, 3."))
    settings = Settings(limits={"max_steps": 3, "max_reflections": 0})
    agent = make_agent(script, settings)
    result, _ = run(agent, "count forever")
    assert result.answer.startswith("I stopped after 3 steps (the step limit)")
    assert "So far: 1, 2, 3." in result.answer
    assert len(result.steps) == 3
    assert_paired(messages_of(agent))


def test_invalid_arguments_get_one_repair_round(tmp_path):
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Compute"),
        calls(call("calculator", {"expr": "2+2"}, "bad")),  # wrong field name
        calls(call("calculator", {"expression": "2+2"}, "good")),  # the repair
        say("4"),
    )
    agent = make_agent(script)
    result, events = run(agent, "2+2?")
    assert [e["id"] for e in events if e["type"] == "tool_call"] == ["good"]
    assert result.answer == "4"


def test_unrepaired_bad_calls_become_tool_errors(tmp_path):
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Compute"),
        calls(call("calculater", {"expression": "2+2"}, "x1"), call("calculator", "{not json", "x2")),
        calls(call("calculater", {"expression": "2+2"}, "x1"), call("calculator", "{not json", "x2")),
        say("Reflection: I misspelled the tool.\n1. Use calculator"),
        say("I could not use the calculator."),
    )
    agent = make_agent(script)
    result, _ = run(agent, "2+2?")
    errors = [s["error"] for s in result.steps]
    assert "unknown tool 'calculater'" in errors[0] and "available tools: boom, calculator" in errors[0]
    assert "not valid JSON" in errors[1]
    assert_paired(messages_of(agent))


def test_script_running_out_is_a_clear_error(tmp_path):
    script = write_script(tmp_path / "s.jsonl", say("1. Compute"))
    agent = make_agent(script)
    result, _ = run(agent, "2+2?")
    assert result.error and "ran out of replies after 1" in result.error and "act step" in result.error
    assert result.answer.startswith("I could not finish this request:")


def test_threads_continue_and_stay_separate(tmp_path):
    script = write_script(tmp_path / "s.jsonl", say("1. Answer"), say("Hello!"), say("1. Answer"), say("Still here."))
    agent = make_agent(script)
    run(agent, "hi", thread="a")
    run(agent, "again", thread="a")
    run(agent, "hi", thread="b")  # its own cursor: replays the script from the start
    texts_a = [m.text for m in messages_of(agent, "a")]
    assert texts_a == ["hi", "Hello!", "again", "Still here."]
    assert [m.text for m in messages_of(agent, "b")] == ["hi", "Hello!"]


def test_dangling_tool_calls_are_closed():
    ai = AIMessage(content="", tool_calls=[{"id": "x", "name": "calculator", "args": {}}])
    orphan = ToolMessage(content="late", tool_call_id="nobody")
    fixed = paired_history([ai, orphan])
    assert len(fixed) == 2 and isinstance(fixed[1], ToolMessage) and fixed[1].tool_call_id == "x"
    assert "interrupted" in fixed[1].text


def test_self_consistency_majority(tmp_path):
    assert majority(["42", "41", "42.", " 42 "]) == "42"
    script = write_script(tmp_path / "s.jsonl", say("1. Answer"), say("7"), say("7"), say("8"), say("7."))
    agent = make_agent(script, Settings(sampling={"self_consistency": 3}))
    result, _ = run(agent, "What is 3+4?")
    assert result.answer == "7"


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_plan_falls_back(bad):
    from agent.nodes import parse_plan

    assert parse_plan(bad) == ["Answer the request directly."]
    assert parse_plan('{"plan": ["a", "b"]}') == ["a", "b"]
    assert parse_plan("Sure!\n1) first\n2) second") == ["first", "second"]


def test_weak_model_answers_are_grounded_in_tool_results():
    from agent.nodes import grounded

    log = [{"tool": "calculator", "arguments": {"expression": "12*7"}, "ok": True, "result": "84"}]
    assert grounded("It is big.", log) == 'calculator({"expression": "12*7"}) = 84\n\nIt is big.'
    assert grounded("", log) == 'calculator({"expression": "12*7"}) = 84'
    assert grounded("12 times 7 is 84.", log) == "12 times 7 is 84."


def test_registry_exposes_langchain_and_openai_tools():
    tool = calculator_tool()
    lc = tool.as_langchain()
    assert lc.name == "calculator" and lc.invoke({"expression": "2+3"}) == "5"
    assert lc.invoke({"expression": "1/0"}).startswith("ERROR: ")
    schema = tool.openai_schema()["function"]
    assert schema["name"] == "calculator" and schema["parameters"]["properties"]["expression"]["type"] == "string"


def test_tools_that_ask_for_context_get_the_caller_and_the_model_never_sees_it():
    import asyncio

    from pydantic import BaseModel

    from tools.registry import Tool, ToolContext

    class Args(BaseModel):
        key: str

    def whoami(key: str, context: ToolContext) -> str:
        return f"{key}:{context.user_id}:{context.thread_id}"

    tool = Tool("whoami", "Who is asking.", Args, whoami)
    assert "context" not in tool.openai_schema()["function"]["parameters"]["properties"]
    result = asyncio.run(tool.ainvoke({"key": "k"}, context=ToolContext(user_id="alice", thread_id="t1")))
    assert result.result == "k:alice:t1"
    assert asyncio.run(tool.ainvoke({"key": "k"})).result == "k:local:default"
