"""Short-term memory: threads survive a restart, a killed run resumes, owners are enforced,
and retention (export, delete, prune, checkpoint compaction) keeps the database bounded."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest

from agent.config import Settings
from agent.runner import open_agent
from memory.retention import prune
from memory.threads import ThreadAccessDenied, ThreadNotFound
from tests.conftest import call, calls, say, write_script
from tools.calculator import calculator_tool
from tools.registry import ToolRegistry

FAST = {"memory": {"long_term": False}}  # thread tests need no long-term memory (no encoder load)


def settings_for(data_dir, **extra) -> Settings:
    return Settings(data_dir=data_dir, **{**FAST, **extra})


def test_thread_survives_restart_and_belongs_to_its_user(data_dir, tmp_path):
    first = write_script(tmp_path / "a.jsonl", say("1. Greet"), say("Nice to meet you, Ada."))
    second = write_script(tmp_path / "b.jsonl", say("1. Recall the name"), say("Your name is Ada."))

    async def go():
        async with open_agent(settings_for(data_dir), llm=f"scripted:{first}") as agent:
            await agent.arun("My name is Ada.", thread_id="t1", user_id="alice")
        # A new Agent on the same data folder: the thread, its owner and its title are back.
        async with open_agent(settings_for(data_dir), llm=f"scripted:{second}") as agent:
            result = await agent.arun("What is my name?", thread_id="t1", user_id="alice")
            plan_prompt = agent.backend.requests[0][1].messages
            history = await agent.history("t1", user_id="alice")
            listed = await agent.list_threads("alice")
            with pytest.raises(ThreadAccessDenied):
                await agent.history("t1", user_id="bob")
            with pytest.raises(PermissionError):  # bob cannot continue alice's thread either
                await agent.arun("What is her name?", thread_id="t1", user_id="bob")
            with pytest.raises(KeyError):
                await agent.history("nope", user_id="alice")
            return result, plan_prompt, history, listed, await agent.list_threads("bob"), await agent.export_thread("t1", "alice")

    result, plan_prompt, history, listed, bobs, exported = asyncio.run(go())
    assert result.answer == "Your name is Ada."
    assert [m["content"] for m in plan_prompt[1:]] == ["My name is Ada.", "Nice to meet you, Ada.", "What is my name?"]
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", "My name is Ada."), ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"), ("assistant", "Your name is Ada."),
    ]
    assert [(t["id"], t["title"], t["messages"]) for t in listed] == [("t1", "My name is Ada.", 4)]
    assert set(listed[0]) >= {"id", "title", "created_at", "updated_at", "messages"}
    assert bobs == []
    assert exported["format"] == "mmagent.thread/1" and exported["thread"]["id"] == "t1"
    assert json.loads(json.dumps(exported))["messages"][3]["content"] == "Your name is Ada."


KILLER = textwrap.dedent(
    """
    import asyncio, os, sys
    from pydantic import BaseModel
    from agent.config import Settings
    from agent.runner import open_agent
    from tools.calculator import calculator_tool
    from tools.registry import Tool, ToolRegistry

    class NoArgs(BaseModel):
        pass

    def slow_fetch() -> str:
        os._exit(9)  # the process dies in the middle of the run, like a kill -9

    async def main():
        registry = ToolRegistry([calculator_tool(), Tool("fetch", "Fetch the data.", NoArgs, slow_fetch)])
        settings = Settings(data_dir=sys.argv[1], memory={"long_term": False})
        async with open_agent(settings, llm="scripted:" + sys.argv[2], registry=registry) as agent:
            await agent.arun("Fetch the data and sum it", thread_id="k1", user_id="alice")

    asyncio.run(main())
    """
)


def test_a_run_killed_mid_way_resumes_from_its_last_checkpoint(data_dir, tmp_path):
    from pydantic import BaseModel

    from tools.registry import Tool

    script = write_script(tmp_path / "k.jsonl", say("1. Fetch the data\n2. Sum it"), calls(call("fetch", {}, "f1")))
    proc = subprocess.run([sys.executable, "-c", KILLER, str(data_dir), str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr

    class NoArgs(BaseModel):
        pass

    fetched = []

    def fetch() -> str:
        fetched.append(1)
        return "1, 2, 3"

    registry = ToolRegistry([calculator_tool(), Tool("fetch", "Fetch the data.", NoArgs, fetch)])
    rest = write_script(tmp_path / "r.jsonl", say("The data sums to 6."))

    async def go():
        async with open_agent(settings_for(data_dir), llm=f"scripted:{rest}", registry=registry) as agent:
            assert await agent.interrupted("k1")
            with pytest.raises(ThreadAccessDenied):
                await agent.aresume("k1", user_id="bob")
            result = await agent.aresume("k1", user_id="alice")
            return result, await agent.interrupted("k1"), await agent.history("k1", user_id="alice")

    result, still_interrupted, history = asyncio.run(go())
    # The plan and the act step were not redone (the new script has only the final reply);
    # the tool call that was running when the process died ran again.
    assert result.answer == "The data sums to 6." and fetched == [1]
    assert result.plan == ["Fetch the data", "Sum it"]
    assert not still_interrupted
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]


def test_new_request_on_an_interrupted_thread_closes_the_dead_run(tmp_path):
    from langchain_core.messages import AIMessage

    script = write_script(tmp_path / "s.jsonl", say("1. Answer"), say("Hello again."))

    async def go():
        async with open_agent(Settings(data_dir=tmp_path / "d", **FAST), llm=f"scripted:{script}", persist=False) as agent:
            config = agent._config("t")
            # Simulate a dead run: act emitted a tool call, observe never ran.
            await agent.graph.aupdate_state(
                config, {"messages": [AIMessage(content="", tool_calls=[{"id": "x", "name": "calculator", "args": {}}])]}, as_node="act"
            )
            assert await agent.interrupted("t")
            result = await agent.arun("hi", thread_id="t")
            return result, await agent.history("t")

    result, history = asyncio.run(go())
    assert result.answer == "Hello again."
    assert [m["role"] for m in history][-2:] == ["user", "assistant"]


def _db_bytes(path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_retention_compacts_checkpoints_prunes_threads_and_shrinks_the_db(data_dir, tmp_path):
    turn = [say("1. Add"), calls(call("calculator", {"expression": "1+1"})), say("2")]
    script = write_script(tmp_path / "s.jsonl", *(turn * 6))
    settings = settings_for(data_dir, memory={"long_term": False, "keep_checkpoint_history": True, "max_threads": None})

    async def go():
        async with open_agent(settings, llm=f"scripted:{script}") as agent:
            for thread in ("a", "b", "c", "d"):
                for _ in range(6):
                    await agent.arun("1+1? " + "padding " * 200, thread_id=thread)
            saver = agent.checkpointer
            before_rows = len([c async for c in saver.alist({"configurable": {"thread_id": "a"}})])
            before = _db_bytes(settings.threads_db)
            # Keep the two newest threads, drop the rest, compact and vacuum.
            limits = settings.memory.model_copy(update={"keep_checkpoint_history": False, "max_threads": 2})
            report = await prune(agent.threads, saver, limits)
            after = _db_bytes(settings.threads_db)
            remaining = await agent.list_threads("local")
            rows = len([c async for c in saver.alist({"configurable": {"thread_id": "d"}})])
            history = await agent.history("d")
            # Age limit: everything is "old" a year from now.
            aged = await prune(agent.threads, saver, limits.model_copy(update={"max_thread_age_days": 30}), now=__import__("time").time() + 365 * 86400)
            return before_rows, before, report, after, remaining, rows, history, aged, await agent.list_threads("local")

    before_rows, before, report, after, remaining, rows, history, aged, left = asyncio.run(go())
    assert before_rows > 20  # LangGraph keeps a checkpoint per step: 6 turns x ~6 steps
    assert report["deleted"] == 2 and sorted(report["deleted_ids"]) == ["a", "b"]
    assert [t["id"] for t in remaining] == ["d", "c"]
    assert rows == 1 and len(history) == 6 * 4  # one checkpoint left, the whole conversation intact
    assert after < before / 3, (before, after)
    print(f"threads db: {before:,} -> {after:,} bytes")
    assert aged["deleted"] == 2 and left == []


def test_turns_compact_as_they_go_and_delete_is_owner_only(data_dir, tmp_path):
    script = write_script(tmp_path / "s.jsonl", *([say("1. Add"), calls(call("calculator", {"expression": "2+2"})), say("4")] * 3))

    async def go():
        async with open_agent(settings_for(data_dir), llm=f"scripted:{script}") as agent:
            for _ in range(3):
                await agent.arun("2+2?", thread_id="x", user_id="alice")
            rows = len([c async for c in agent.checkpointer.alist({"configurable": {"thread_id": "x"}})])
            with pytest.raises(ThreadAccessDenied):
                await agent.delete_thread("x", "bob")
            await agent.delete_thread("x", "alice")
            with pytest.raises(ThreadNotFound):
                await agent.export_thread("x", "alice")
            return rows, await agent.list_threads("alice"), (await agent.graph.aget_state(agent._config("x"))).values

    rows, listed, values = asyncio.run(go())
    assert rows == 1 and listed == [] and not values


def test_a_lone_surrogate_in_a_request_is_stored_marked_not_a_crash(data_dir, tmp_path):
    # What a non-UTF-8 command-line argument becomes in Python (surrogateescape).
    script = write_script(tmp_path / "s.jsonl", say("1. Answer"), say("Hello."))

    async def go():
        async with open_agent(settings_for(data_dir), llm=f"scripted:{script}") as agent:
            result = await agent.arun("hi \udcff there", thread_id="t1", user_id="alice")
            return result, await agent.history("t1", user_id="alice"), await agent.list_threads("alice")

    result, history, listed = asyncio.run(go())
    assert result.error is None and result.answer == "Hello."
    assert history[0]["content"] == "hi \ufffd there"
    assert listed[0]["title"].encode("utf-8")
