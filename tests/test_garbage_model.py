"""A model that returns garbage never crashes a run (issue 8).

Random text, invalid or non-object JSON arguments, unknown or empty tool names, repeated or
missing call ids, hundreds of calls, the same call forever, exceptions mid-run, tokens then a
failure: the real graph, with the real calculator and SQLite checkpoints, always returns in
bounded time with a non-empty answer or a clear error, leaves a history every model API accepts,
and the thread takes its next turn. The property test draws the garbage; the named scenarios
below pin what each kind leads to (docs/hardening.md, "Garbage models").
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, ToolMessage

from agent import prompts
from agent.config import Settings
from agent.history import paired_history
from agent.llm.base import ChatBackend, ChatReply, ChatRequest, LLMError, TokenCallback, reply_from_openai, tool_calls_in_text
from agent.llm.scripted import ScriptedBackend
from agent.runner import Agent
from memory.threads import open_threads
from tests.api_support import scripted_server, sse_events
from tests.conftest import call, calls, say, write_script
from tools.calculator import calculator_tool
from tools.registry import ToolRegistry

RUN_LIMIT_S = 30  # a run that takes longer than this is a hang
SANE_ANSWER = "All good on the next turn."


# ------------------------------------------------------------------ a model that returns garbage


@dataclass
class Reply:
    """One OpenAI-format assistant message, parsed by the same code as the openai/scripted backends."""

    content: Any
    tool_calls: list[Any] = field(default_factory=list)


@dataclass
class Fail:
    """Stream `tokens` (maybe none), then raise `error`."""

    error: BaseException
    tokens: str = ""


@dataclass
class GarbageBackend(ChatBackend):
    """Replies with the drawn actions in order; after the last one, `tail` says what happens:
    "repeat" (the last action forever), "answer" (a plain answer) or "fail" (LLMError).
    `sane` turns it into a well-behaved model, for the turn after the garbage."""

    actions: list[Reply | Fail]
    tail: str = "repeat"
    spec: str = "garbage"
    sane: bool = False
    calls: int = 0

    async def complete(self, request: ChatRequest, *, on_token: TokenCallback | None = None, session: str = "default") -> ChatReply:
        self.calls += 1
        if self.sane:
            return ChatReply(content="1. Answer" if request.purpose == "plan" else SANE_ANSWER)
        if self.calls <= len(self.actions):
            action = self.actions[self.calls - 1]
        elif self.tail == "repeat" and self.actions:
            action = self.actions[-1]
        elif self.tail == "answer":
            action = Reply("A plain answer after the garbage.")
        else:
            raise LLMError("the garbage model has nothing more to say")
        if isinstance(action, Fail):
            for piece in re.findall(r"\S+\s*|\s+", action.tokens):
                if on_token:
                    on_token(piece)
                await asyncio.sleep(0)
            raise action.error
        reply = reply_from_openai(action.content, action.tool_calls)
        if on_token and reply.content:  # stream like the real backends do
            for piece in re.findall(r"\S+\s*|\s+", reply.content)[:50]:
                on_token(piece)
        return reply


# ------------------------------------------------------------------ strategies

LONE_SURROGATES = st.sampled_from(["\ud800", "\udfff", "x\ud83d", "\ude00y"])
texts = st.one_of(
    st.text(),  # any unicode, control characters included
    st.text(alphabet=st.characters(exclude_categories=()), max_size=50),  # lone surrogates too
    st.sampled_from(["", " ", "\n\t ", "\x00", "\x1b[2J\x07", "null", "{", "```json\n{\n```", "<tool_call>", "I stopped after 8 steps"]),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=8), st.integers(5_000, 30_000)),  # huge
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=10), LONE_SURROGATES, st.text(max_size=10)),
)
tool_names = st.one_of(
    st.sampled_from(["calculator", "calculator", "", "calculater", "CALCULATOR", "generate_image", "rm -rf /", "__proto__", "a" * 300]),
    st.text(max_size=20),
    st.integers(),
    st.none(),
)
call_ids = st.one_of(st.none(), st.just(""), st.sampled_from(["dup", "call_0", "x"]), st.text(max_size=10), st.integers())
arguments = st.one_of(
    st.builds(lambda e: json.dumps({"expression": e}), st.sampled_from(["1+1", "6*7", "10/0", "2**99999", "sqrt(-1)", "", "x"])),
    st.builds(lambda e: json.dumps({"expression": e}), st.text(max_size=30)),
    st.sampled_from(["{not json", "", "   ", "[1, 2]", "5", "null", '"text"', "true", '{"expression": NaN}', '{"expression": 1e999}',
                     '{"expression": "\\ud800"}', '{"expr": "1+1"}', '{"expression": 5}']),
    st.just('{"x": ' + "[" * 3000 + "]" * 3000 + "}"),  # nested deeper than the parser's stack
    st.text(max_size=40),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),  # an object, not a string
    st.lists(st.integers(), max_size=3),
)
one_call = st.one_of(
    st.builds(lambda i, n, a: {"id": i, "name": n, "arguments": a}, call_ids, tool_names, arguments),
    st.builds(dict),  # a call with nothing in it
    st.sampled_from(["not a call", None, 7]),
)
replies = st.one_of(
    st.builds(Reply, texts),
    st.builds(Reply, st.one_of(texts, st.none(), st.integers()), st.lists(one_call, min_size=1, max_size=6)),
    st.builds(lambda c, n: Reply(None, [c] * n), one_call, st.integers(100, 400)),  # hundreds of calls in one reply
    st.builds(lambda e, n: Reply(None, [{"id": "dup", "name": "calculator", "arguments": json.dumps({"expression": e})}] * n),
              st.sampled_from(["1+1", "2*3"]), st.integers(2, 5)),  # duplicated ids
)
failures = st.builds(
    Fail,
    st.sampled_from([LLMError("the model server went away"), RuntimeError("backend bug"), ValueError("bad value"), KeyError("choices"),
                     TimeoutError(), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")]),
    st.one_of(st.just(""), texts.filter(lambda t: len(t) < 200)),
)
actions = st.lists(st.one_of(replies, replies, replies, failures), min_size=1, max_size=12)


# ------------------------------------------------------------------ invariants


def assert_history_valid(messages: list[Any]) -> None:
    """OpenAI/LangGraph pairing: each assistant message's calls are answered by exactly one tool
    message each, right after it; no tool message without its call; call ids unique in the thread;
    every text encodable (what a JSON API or a terminal needs)."""
    assert paired_history(messages) == messages
    seen_ids: set[str] = set()
    i = 0
    while i < len(messages):
        msg = messages[i]
        msg.text.encode("utf-8")
        assert not isinstance(msg, ToolMessage), f"orphan tool message at {i}: {msg!r}"
        i += 1
        if isinstance(msg, AIMessage) and msg.tool_calls:
            ids = [c["id"] for c in msg.tool_calls]
            assert all(isinstance(x, str) and x for x in ids), ids
            assert len(set(ids)) == len(ids) and not seen_ids & set(ids), ids
            seen_ids |= set(ids)
            answers = messages[i : i + len(ids)]
            assert all(isinstance(m, ToolMessage) for m in answers), answers
            assert sorted(m.tool_call_id for m in answers) == sorted(ids)
            for m in answers:
                m.text.encode("utf-8")
            i += len(ids)


def assert_events_valid(events: list[dict[str, Any]]) -> dict[str, Any]:
    for event in events:
        json.dumps(event, ensure_ascii=False, default=str).encode("utf-8")  # what SSE and the CLI send
    finals = [e for e in events if e["type"] == "final"]
    assert len(finals) == 1 and events[-1] is finals[0]
    started = [e["id"] for e in events if e["type"] == "tool_call"]
    finished = [e["id"] for e in events if e["type"] == "tool_result"]
    assert len(set(started)) == len(started) and sorted(started) == sorted(finished)
    final = finals[0]
    assert final["answer"].strip(), final
    if final["error"] is not None:
        assert final["error"].strip() and "Traceback" not in final["error"]
        assert "I could not finish this request: " in final["answer"]  # after a stop note, when there is one
    return final


def limits() -> Settings:
    return Settings(memory={"long_term": False}, limits={"tool_timeout_s": 10})


async def garbage_turn(backend: GarbageBackend, folder: Path, streamed: bool) -> None:
    async with open_threads(folder / "threads.sqlite") as (saver, catalog):
        settings = limits().model_copy(update={"data_dir": folder})
        agent = Agent(settings, backend, ToolRegistry([calculator_tool()]), None, saver, threads=catalog)
        if streamed:
            events = [e async for e in agent.astream("What is 6 times 7?", thread_id="t")]
        else:
            events = []
            await agent.arun("What is 6 times 7?", thread_id="t", on_event=events.append)
        assert_events_valid(events)
        assert_history_valid(await messages_of(agent))

        backend.sane = True
        result = await agent.arun("And now?", thread_id="t")
        assert result.error is None and result.answer == SANE_ANSWER, result
        assert_history_valid(await messages_of(agent))


async def messages_of(agent: Agent, thread: str = "t") -> list[Any]:
    state = await agent.graph.aget_state({"configurable": {"thread_id": thread}})
    return state.values["messages"]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(actions=actions, tail=st.sampled_from(["repeat", "answer", "fail"]), streamed=st.booleans())
def test_garbage_never_crashes_a_run(data_dir, actions, tail, streamed):
    backend = GarbageBackend(actions, tail)
    with tempfile.TemporaryDirectory(dir=data_dir.parent) as folder:
        asyncio.run(asyncio.wait_for(garbage_turn(backend, Path(folder), streamed), RUN_LIMIT_S))


# ------------------------------------------------------------------ named scenarios (scripted model)


def scripted_agent(script: Path, **limits_: Any) -> tuple[Agent, ScriptedBackend]:
    from langgraph.checkpoint.memory import InMemorySaver

    backend = ScriptedBackend(script)
    settings = Settings(memory={"long_term": False}, limits=limits_)
    return Agent(settings, backend, ToolRegistry([calculator_tool()]), None, InMemorySaver()), backend


def run(agent: Agent, text: str = "What is 1+1?", thread: str = "t"):
    events: list[dict[str, Any]] = []
    result = asyncio.run(agent.arun(text, thread_id=thread, on_event=events.append))
    messages = asyncio.run(messages_of(agent, thread))
    assert_history_valid(messages)
    return result, events, messages


def test_endless_identical_call_is_stopped_after_max_repeated_calls(data_dir, tmp_path):
    same = calls(call("calculator", {"expression": "1+1"}, "c1"))  # the same id every round, too
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Add"),
        same,
        same,
        say("Reflection: the plan ran out.\n1. Add again"),  # steps outran the 1-step plan
        same,
        same,  # never used: the third identical result ends the turn
    )
    # The respond call after the stop gets the 6th line, a call; its empty text adds nothing.
    agent, backend = scripted_agent(script)
    result, events, messages = run(agent)
    note = prompts.REPEATED_CALL_NOTE.format(call='calculator({"expression": "1+1"})', times=3)
    assert result.answer == note and result.error is None
    assert [s["result"] for s in result.steps] == ["2", "2", "2"]
    assert backend.position("t") == 6
    assert len({e["id"] for e in events if e["type"] == "tool_call"}) == 3  # fresh ids for the repeated "c1"


def test_a_loop_of_different_calls_still_ends_at_the_step_limit(data_dir, tmp_path):
    rounds = [calls(call("calculator", {"expression": f"{i}+1"}, "same-id")) for i in range(4)]
    script = write_script(tmp_path / "s.jsonl", say("1. Count"), *rounds, say("Counted to 4."))
    agent, _ = scripted_agent(script, max_steps=4, max_reflections=0)
    result, _, _ = run(agent)
    assert result.answer == prompts.STEP_LIMIT_NOTE.format(steps=4) + "\n\nCounted to 4."
    assert [s["result"] for s in result.steps] == ["1", "2", "3", "4"]


def test_an_unknown_tool_forever_gets_repairs_then_tool_errors_then_a_stop(data_dir, tmp_path):
    bad = calls(call("calculater", {"expression": "1+1"}, "u1"))
    reflection = say("Reflection: that tool does not exist.\n1. Try again")
    # Each act round: the call and its repair; a failed round is followed by a reflection (2 at most).
    script = write_script(tmp_path / "s.jsonl", say("1. Add"), bad, bad, reflection, bad, bad, reflection, bad, bad, say("No luck."))
    agent, backend = scripted_agent(script)
    result, _, messages = run(agent)
    assert backend.position("t") == 10
    assert [s["ok"] for s in result.steps] == [False, False, False]
    assert "unknown tool 'calculater'; available tools: calculator" in result.steps[0]["error"]
    repairs = [r for _, r in backend.requests if r.messages[-1]["content"].endswith("Fix the call and try again.")]
    assert len(repairs) == 3 and repairs[0].messages[-1]["content"].startswith("ERROR: unknown tool 'calculater'")
    assert result.answer.startswith(prompts.REPEATED_CALL_NOTE.format(call='calculater({"expression": "1+1"})', times=3) + "\n\nNo luck.")
    assert "Tool problems:\n- calculater failed: unknown tool 'calculater'" in result.answer


def test_an_unknown_tool_repaired_in_one_round_runs(data_dir, tmp_path):
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Add"),
        calls(call("calc", {"expression": "1+1"}, "a")),
        calls(call("calculator", {"expression": "1+1"}, "b")),
        say("1+1 is 2."),
    )
    agent, _ = scripted_agent(script)
    result, events, _ = run(agent)
    assert result.answer == "1+1 is 2." and [e["id"] for e in events if e["type"] == "tool_call"] == ["b"]


@pytest.mark.parametrize("empty", [" ", "\n\t  \n"])
def test_an_empty_reply_is_a_clear_error_not_a_blank_answer(data_dir, tmp_path, empty):
    script = write_script(tmp_path / "s.jsonl", say("1. Answer"), say(empty), say(empty))  # act, then respond retries
    agent, backend = scripted_agent(script)
    result, _, messages = run(agent)
    assert result.error == prompts.NO_USABLE_ANSWER
    assert result.answer == "I could not finish this request: the model gave no usable answer (its reply was empty)"
    assert backend.position("t") == 3
    # One assistant message for the turn: the empty act reply is replaced, not followed by a second.
    assert [type(m).__name__ for m in messages] == ["HumanMessage", "AIMessage"] and messages[-1].text == result.answer


def test_garbage_text_is_returned_as_the_answer_cleaned(data_dir, tmp_path):
    script = tmp_path / "s.jsonl"
    garbage = "\x00\x07 ☃ \ud83d\ude00 broken \ud800 escape \x1b[31m"
    # ensure_ascii: the file holds "\ud800" escapes, as a model's JSON would.
    script.write_text(json.dumps(say("1. Answer")) + "\n" + json.dumps(say(garbage)) + "\n", encoding="utf-8")
    agent, _ = scripted_agent(script)
    result, events, _ = run(agent)
    assert result.error is None
    assert result.answer == "\x00\x07 ☃ 😀 broken \ufffd escape \x1b[31m"  # the valid pair joins, the lone half is replaced
    "".join(e["text"] for e in events if e["type"] == "token").encode("utf-8")


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "calculator", "arguments": {"expression": "6*7"}}',
        '```json\n{"name": "calculator", "arguments": "{\\"expression\\": \\"6*7\\"}"}\n```',
        '<tool_call>\n{"name": "calculator", "parameters": {"expression": "6*7"}}\n</tool_call>',
        '[{"type": "function", "function": {"name": "calculator", "arguments": {"expression": "6*7"}}}]',
    ],
)
def test_a_tool_call_written_as_text_is_run(data_dir, tmp_path, text):
    script = write_script(tmp_path / "s.jsonl", say("1. Multiply"), say(text), say("6 times 7 is 42."))
    agent, _ = scripted_agent(script)
    result, _, _ = run(agent, "What is 6 times 7?")
    assert [(s["tool"], s["result"]) for s in result.steps] == [("calculator", "42")]
    assert result.answer == "6 times 7 is 42."


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "weather", "arguments": {"city": "Paris"}}',  # not an offered tool
        'Call it like this: {"name": "calculator", "arguments": {"expression": "6*7"}}',  # prose around it
        '{"name": "calculator", "arguments": {"expression": "6*7"}',  # unbalanced
        '{"answer": 42}',
        "[" * 3000,
    ],
)
def test_json_that_is_not_a_whole_call_stays_the_answer(data_dir, tmp_path, text):
    assert tool_calls_in_text(text, ["calculator"]) == []
    script = write_script(tmp_path / "s.jsonl", say("1. Answer"), say(text))
    agent, _ = scripted_agent(script)
    result, _, _ = run(agent)
    assert result.answer == text and result.steps == [] and result.error is None


def test_a_text_call_with_bad_arguments_is_repaired_like_a_native_one(data_dir, tmp_path):
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Multiply"),
        say('{"name": "calculator", "arguments": {"expr": "6*7"}}'),
        say('{"name": "calculator", "arguments": {"expression": "6*7"}}'),
        say("42"),
    )
    agent, _ = scripted_agent(script)
    result, _, _ = run(agent)
    assert [(s["tool"], s["ok"]) for s in result.steps] == [("calculator", True)] and result.answer == "42"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("{not json", "arguments for calculator are not valid JSON: '{not json'"),
        ("[1, 2]", "arguments for calculator must be a JSON object, got list: '[1, 2]'"),
        ('"6*7"', "arguments for calculator must be a JSON object, got str"),
        ('{"expression": NaN}', "arguments for calculator are not valid JSON"),
        ('{"expression": 1e999}', "arguments for calculator are not valid JSON"),
        ('{"x": ' + "[" * 3000 + "]" * 3000 + "}", "arguments for calculator are not valid JSON"),
    ],
)
def test_bad_arguments_get_a_repair_round_then_a_clear_tool_error(data_dir, tmp_path, arguments, expected):
    bad = calls(call("calculator", arguments, "b1"))
    script = write_script(tmp_path / "s.jsonl", say("1. Multiply"), bad, bad, say("I could not compute it."))
    agent, backend = scripted_agent(script, max_reflections=0)
    result, _, messages = run(agent)
    [step] = result.steps
    assert not step["ok"] and step["error"].startswith(expected)
    assert backend.position("t") == 4 and result.answer.startswith("I could not compute it.\n\nTool problems:")
    # What goes back to the model is strict JSON: a strict server would reject NaN on every later turn.
    for message in backend.requests[-1][1].messages:
        for sent in message.get("tool_calls", []):
            json.loads(sent["function"]["arguments"], parse_constant=lambda name: pytest.fail(f"{name} sent to the model"))


def test_a_rambling_plan_is_cut_to_size(data_dir, tmp_path):
    script = write_script(tmp_path / "s.jsonl", say("1. " + "blah " * 200_000 + "\n2. " + "x" * 100_000), say("Done."))
    agent, backend = scripted_agent(script)
    result, _, _ = run(agent)
    assert result.answer == "Done." and [len(s) for s in result.plan] == [300, 300]
    assert len(backend.requests[-1][1].messages[0]["content"]) < 5000  # the act prompt carries the plan


def test_repeated_and_missing_call_ids_get_distinct_ids(data_dir, tmp_path):
    twice = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "x", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "1+1"}'}},
        {"id": "x", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "2+2"}'}},
        {"type": "function", "function": {"name": "calculator", "arguments": '{"expression": "5-5"}'}},
        {"id": 7, "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "3+3"}'}},
    ]}
    script = write_script(tmp_path / "s.jsonl", say("1. Add"), twice, say("Done."), say("1. Add"), twice, say("Done again."))
    agent, _ = scripted_agent(script, max_tool_calls_per_step=4)
    first, _, _ = run(agent)
    assert [s["result"] for s in first.steps] == ["2", "4", "0", "6"]
    second, _, messages = run(agent, "again")  # the same ids in the next turn of the thread
    assert second.answer.startswith("Done again.")
    ids = [c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    assert len(ids) == 8 and len(set(ids)) == 8 and ids[0] == "x" and "7" in ids


class ExplodingBackend(ChatBackend):
    spec = "exploding"

    def __init__(self, error: BaseException, tokens: str = "", at: str = "plan") -> None:
        self.error, self.tokens, self.at = error, tokens, at

    async def complete(self, request, *, on_token=None, session="default"):
        if request.purpose != self.at:
            return ChatReply(content="1. Answer")
        for piece in self.tokens.split():
            if on_token:
                on_token(piece + " ")
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (KeyError("choices"), "the model backend failed in the plan step: KeyError: 'choices'"),
        (LLMError("the model server went away"), "the model server went away"),
    ],
)
def test_a_backend_that_raises_ends_the_turn_with_a_clear_error(data_dir, error, expected):
    from langgraph.checkpoint.memory import InMemorySaver

    agent = Agent(Settings(memory={"long_term": False}), ExplodingBackend(error), ToolRegistry([calculator_tool()]), None, InMemorySaver())
    result, _, _ = run(agent)
    assert result.error == expected and result.answer == f"I could not finish this request: {expected}"


def test_tokens_then_a_failure_end_with_the_error(data_dir):
    from langgraph.checkpoint.memory import InMemorySaver

    backend = ExplodingBackend(RuntimeError("stream reset"), tokens="The answer is", at="act")
    agent = Agent(Settings(memory={"long_term": False}), backend, ToolRegistry([calculator_tool()]), None, InMemorySaver())
    result, events, messages = run(agent)
    assert "".join(e["text"] for e in events if e["type"] == "token") == "The answer is "
    assert result.error == "the model backend failed in the act step: RuntimeError: stream reset"
    assert messages[-1].text == result.answer  # the partial text is not kept as an answer


# ------------------------------------------------------------------ through the HTTP API


def test_the_api_answers_garbage_with_200_or_a_json_error_never_500(tmp_path):
    unknown = calls(call("", "{oops", "a"), call("calculater", "[1]", "a"))
    first_turn = [say("1. Answer"), unknown, unknown, say("Reflection: bad calls\n1. Answer"), say("\ufeff\x00 garbage ☃")]
    second_turn = [say("1. Answer"), say(" "), say(" ")]  # an empty reply, twice
    with scripted_server(tmp_path, *first_turn, *second_turn) as url, httpx.Client(base_url=url, timeout=60) as http:
        history = [{"role": "user", "content": "hi"}]
        response = http.post("/v1/chat/completions", json={"model": "mmagent", "messages": history})
        assert response.status_code == 200, response.text
        answer = response.json()["choices"][0]["message"]["content"]
        assert answer.startswith("\ufeff\x00 garbage ☃") and "Tool problems:\n- '' failed: unknown tool ''" in answer
        assert "- calculater failed: unknown tool 'calculater'; available tools:" in answer

        # The same conversation goes on (same thread, so the script's second turn): an empty reply.
        history += [{"role": "assistant", "content": answer}, {"role": "user", "content": "and?"}]
        response = http.post("/v1/chat/completions", json={"model": "mmagent", "messages": history})
        assert response.status_code == 502 and response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["message"] == "the model failed: the model gave no usable answer (its reply was empty)"

        # Streamed, a new conversation (the script from the top): the garbage answer, then [DONE].
        body = {"model": "mmagent", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as streamed:
            assert streamed.status_code == 200
            events = sse_events(streamed)
        assert events[-1] == ("message", "[DONE]")
        text = "".join(data["choices"][0]["delta"].get("content") or "" for _, data in events[:-1] if data.get("choices"))
        assert text.startswith("\ufeff\x00 garbage ☃") and "Tool problems:" in text
        assert http.post("/v1/tools/calculator/invoke", json={"expression": "2+2"}).json()["result"] == "4"
