"""The prompt token budget: trimming, the running summary, tool-result truncation, pairing."""

from __future__ import annotations

import asyncio

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from agent.config import Settings
from agent.history import Budget, fit, to_openai
from agent.llm.scripted import ScriptedBackend
from agent.runner import Agent
from memory.summary import extend_summary
from memory.tokens import MESSAGE_OVERHEAD, estimate_tokens, token_counter, truncate_to_tokens
from tests.conftest import call, calls, say, write_script
from tools.calculator import calculator_tool
from tools.registry import ToolRegistry

BUDGET = 800


def prompt_tokens(messages: list[dict]) -> int:
    return sum(Budget(BUDGET).of_message(m) for m in messages)


def assert_pairs_intact(messages: list[dict]) -> None:
    """Every assistant tool call is answered right after it; no tool message without its call."""
    open_ids: set[str] = set()
    for m in messages:
        if m["role"] == "tool":
            assert m["tool_call_id"] in open_ids, m
            open_ids.remove(m["tool_call_id"])
        else:
            assert not open_ids, f"unanswered calls {open_ids} before {m}"
            open_ids = {c["id"] for c in m.get("tool_calls", [])}
    assert not open_ids


def test_estimate_counts_chinese_densely():
    assert estimate_tokens("") == 0
    assert estimate_tokens("hello world, this is English") == 7  # 28 chars / 4
    assert estimate_tokens("你好世界你好世界") == 6  # 8 CJK chars / 1.5, rounded up
    assert estimate_tokens("画一只猫 a cat") >= 4

    class WithTokenizer:
        class tokenizer:
            @staticmethod
            def encode(text):
                return text.split()

    assert token_counter(WithTokenizer())("a b c") == 3
    assert token_counter(object()) is estimate_tokens


def test_truncation_keeps_a_note():
    text = "x" * 10_000
    cut = truncate_to_tokens(text, 100, estimate_tokens)
    assert estimate_tokens(cut.split("\n[truncated")[0]) <= 100
    assert "[truncated: " in cut and "more characters not shown]" in cut
    assert truncate_to_tokens("short", 100, estimate_tokens) == "short"


def long_conversation(turns: int) -> list:
    """English and Chinese turns, each with a tool round (call + long result)."""
    messages = []
    for i in range(turns):
        text = f"Turn {i}: what is {i} squared? " + ("请详细解释计算过程。" * 6 if i % 2 else "Explain the steps in detail. " * 6)
        messages += [
            HumanMessage(content=text, id=f"h{i}"),
            AIMessage(content="", tool_calls=[{"id": f"c{i}", "name": "calculator", "args": {"expression": f"{i}**2"}}], id=f"a{i}"),
            ToolMessage(content=f"{i * i} " + "log line. " * 400, tool_call_id=f"c{i}", name="calculator", id=f"t{i}"),
            AIMessage(content=f"{i} squared is {i * i}.", id=f"r{i}"),
        ]
    return messages


def test_ten_times_the_budget_is_trimmed_with_pairs_intact():
    budget = Budget(BUDGET, tool_result_tokens=120)
    messages = long_conversation(30)
    full = sum(budget.of_message(m) for m in to_openai("system", messages, max_messages=10_000)[1:])
    assert full > 10 * BUDGET
    summary = extend_summary("", messages[:-8], 200, estimate_tokens)
    out = to_openai("You are a test.", messages, budget=budget, summary=summary)
    assert prompt_tokens(out) <= BUDGET
    assert out[-4]["content"].startswith("Turn 29:")  # the latest turn is whole
    assert_pairs_intact(out)
    tool = next(m for m in out if m["role"] == "tool")
    assert "[truncated: " in tool["content"]
    assert "# Earlier in this conversation (summary)" in out[0]["content"]
    assert "Turn 0" not in "".join(m["content"] for m in out[1:])


def test_a_single_turn_longer_than_the_budget_keeps_its_request_and_latest_rounds():
    budget = Budget(300, tool_result_tokens=60)
    turn = [HumanMessage(content="Sum many things", id="h")]
    for i in range(20):
        turn += [
            AIMessage(content="", tool_calls=[{"id": f"c{i}", "name": "calculator", "args": {"expression": f"{i}+1"}}], id=f"a{i}"),
            ToolMessage(content=str(i + 1) + " ok" * 50, tool_call_id=f"c{i}", name="calculator", id=f"t{i}"),
        ]
    dropped, kept = fit(turn, 300 - MESSAGE_OVERHEAD, budget)
    assert dropped == [] and kept[0].id == "h" and kept[-1].id == "t19"
    out = to_openai("sys", turn, budget=budget)
    assert prompt_tokens(out) <= 300 and out[1]["content"] == "Sum many things"
    assert_pairs_intact(out)


def test_running_summary_keeps_the_newest_lines_within_its_budget():
    messages = long_conversation(12)
    summary = extend_summary("", messages[:24], 1000, estimate_tokens)
    assert summary.splitlines()[0].startswith("- User: Turn 0:") and "| used: calculator | Assistant: 0 squared is 0." in summary
    tight = extend_summary(summary, messages[24:40], 120, estimate_tokens)
    assert estimate_tokens(tight) <= 120
    assert tight.splitlines()[0] == "(earlier turns omitted)" and "Turn 9:" in tight.splitlines()[-1]


def test_the_graph_keeps_every_prompt_under_budget_over_a_long_chat(tmp_path):
    turns = 24
    replies = []
    for i in range(turns):
        replies += [say(f"1. Compute {i}*{i}"), calls(call("calculator", {"expression": f"{i}*{i}"}, f"c{i}")), say(f"{i}*{i} = {i * i}. " + "Details. " * 90)]
    script = write_script(tmp_path / "s.jsonl", *replies)
    settings = Settings(memory={"context_tokens": BUDGET, "summary_tokens": 150, "long_term": False})
    backend = ScriptedBackend(script)
    agent = Agent(settings, backend, ToolRegistry([calculator_tool()]), None, InMemorySaver())

    async def go():
        for i in range(turns):
            images = ["artifact:cat-1.png"] if i == 3 else None
            await agent.arun(f"Turn {i}: what is {i} times {i}? " + "Please show your working. " * 30, thread_id="long", images=images)
        return (await agent.graph.aget_state(agent._config("long"))).values

    values = asyncio.run(go())
    sent = [r.messages for _, r in backend.requests]
    full = sum(Budget(BUDGET).of_message(m) for m in to_openai("", values["messages"], max_messages=10_000)[1:])
    assert full > 10 * BUDGET  # the conversation is ten times the budget
    for messages in sent:
        assert prompt_tokens(messages) <= BUDGET
        assert_pairs_intact(messages)
    last_plan = [r.messages for _, r in backend.requests if r.purpose == "plan"][-1]
    assert "# Earlier in this conversation (summary)" in last_plan[0]["content"]
    assert "Turn 0: what is 0 times 0?" in values["summary"] or "(earlier turns omitted)" in values["summary"]
    assert f"Turn {turns - 1}:" in last_plan[-1]["content"]
    # Images stay references: no base64 anywhere, the reference is in the stored turn.
    stored = [m.text for m in values["messages"]]
    assert any("[attached image: artifact:cat-1.png]" in t for t in stored)
    assert not any("base64" in m.get("content", "") for ms in sent for m in ms)
