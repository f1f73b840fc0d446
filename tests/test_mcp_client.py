"""Tools from real MCP servers (the SDK-written fixture over stdio and HTTP, and the
`mcp-server-time` package) in the registry: names, schemas, results, failures, restarts,
the approval gate, tool retrieval, and an agent turn whose trace shows the calls."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import Settings
from agent.runner import open_agent, open_tools
from tests.conftest import call, calls, say, write_script
from tests.mcp_support import fixture_http, fixture_stdio, time_server
from tests.processes import ROOT
from tools.mcp_tools import listing, tool_name
from tools.registry import ToolRegistry

pytestmark = pytest.mark.slow  # starts MCP server processes
OPENAI_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def settings_with(data_dir: Path, **servers) -> Settings:
    return Settings(data_dir=data_dir, memory={"long_term": False}, mcp={"servers": servers})


def test_tools_join_the_registry_named_for_their_server(tmp_path):
    settings = settings_with(tmp_path / "data", fx=fixture_stdio(), time=time_server(), gone={"command": str(tmp_path / "no-such-program")})

    async def main():
        async with open_tools(settings, ToolRegistry()) as (registry, hub, errors):
            return listing(registry), errors, hub.status()

    schemas, errors, status = asyncio.run(main())
    names = {s["function"]["name"]: s.get("server") for s in schemas}
    assert {"fx__add", "fx__echo", "fx__picture", "time__get_current_time", "time__convert_time"} <= set(names)
    assert names["fx__add"] == "fx" and names["time__get_current_time"] == "time"
    assert all(OPENAI_NAME.match(n) for n in names)
    add = next(s for s in schemas if s["function"]["name"] == "fx__add")["function"]
    assert add["parameters"]["required"] == ["a", "b"] and "MCP server fx" in add["description"]
    assert errors["fx"] is None and errors["time"] is None
    assert "gone" in errors and "could not be started" in errors["gone"] and "no-such-program" in errors["gone"]
    assert {s["server"]: s["up"] for s in status} == {"fx": True, "time": True, "gone": False}


def test_long_and_odd_names_fit_the_openai_rule():
    long = tool_name("server", "x" * 100)
    other = tool_name("server", "x" * 99 + "y")
    assert OPENAI_NAME.match(long) and OPENAI_NAME.match(other) and long != other
    assert tool_name("srv", "get.weather/now") == "srv__get_weather_now"


def test_results_failures_and_restarts_over_stdio(tmp_path):
    settings = settings_with(tmp_path / "data", fx=fixture_stdio(timeout_s=1.5))

    async def main():
        async with open_tools(settings, ToolRegistry()) as (registry, hub, _):
            out = {}
            out["add"] = await registry.ainvoke("fx__add", {"a": 2, "b": 3})
            out["echo"] = await registry.ainvoke("fx__echo", {"text": "héllo"})
            out["picture"] = await registry.ainvoke("fx__picture", {"width": 5, "height": 4})
            out["document"] = await registry.ainvoke("fx__document", {})
            out["bad"] = await registry.ainvoke("fx__add", {"a": "two"})
            out["not_json"] = await registry.ainvoke("fx__add", "{nope")
            out["fail"] = await registry.ainvoke("fx__fail", {"reason": "boom"})
            out["slow"] = await registry.ainvoke("fx__slow", {"seconds": 10})
            first = (await registry.ainvoke("fx__pid", {})).result["result"]
            out["crash"] = await registry.ainvoke("fx__crash", {})
            out["after"] = await registry.ainvoke("fx__pid", {})
            out["first_pid"] = first
            out["langchain"] = await registry.get("fx__add").as_langchain().ainvoke({"a": 1, "b": 2})
            out["starts"] = hub.connections["fx"].starts
            return out

    out = asyncio.run(main())
    assert out["add"].ok and out["add"].result == {"sum": 5.0}
    assert out["echo"].ok and "héllo" in json.dumps(out["echo"].result, ensure_ascii=False)
    picture = out["picture"]
    assert picture.ok and len(picture.artifacts) == 1
    artifact = picture.artifacts[0]
    assert Path(artifact["path"]).is_file() and (artifact["width"], artifact["height"]) == (5, 4)
    text = picture.for_model()
    assert artifact["ref"] in text and "base64" not in text and len(text) < 200
    document = out["document"]
    assert document.ok and len(document.artifacts) == 1 and Path(document.artifacts[0]["path"]).is_file()
    assert document.result.splitlines()[:2] == ["Here is the report.", "Sales rose 12%."]  # text and a text resource
    assert f"saved as {document.artifacts[0]['ref']}" in document.result  # an image resource: an artifact
    assert "binary resource file:///data.bin" in document.result and "[resource https://example.com/full (full report)]" in document.result
    assert not out["bad"].ok and "invalid arguments for fx__add" in out["bad"].error and "'b' is a required property" in out["bad"].error
    assert not out["not_json"].ok and "not valid JSON" in out["not_json"].error
    assert not out["fail"].ok and "fail" in out["fail"].error
    assert not out["slow"].ok and "1.5 s" in out["slow"].error
    assert not out["crash"].ok and "failed during crash" in out["crash"].error and "restarted" in out["crash"].error
    assert out["after"].ok and out["after"].result["result"] != out["first_pid"]  # a new process
    assert out["starts"] >= 2
    assert json.loads(out["langchain"]) == {"sum": 3.0}  # the same tool as a LangChain tool


def test_a_killed_idle_server_is_started_again_on_the_next_call(tmp_path):
    settings = settings_with(tmp_path / "data", fx=fixture_stdio())

    async def main():
        async with open_tools(settings, ToolRegistry()) as (registry, hub, _):
            pid = (await registry.ainvoke("fx__pid", {})).result["result"]
            os.kill(pid, 9)
            await asyncio.sleep(0.3)
            return pid, await registry.ainvoke("fx__pid", {})

    pid, again = asyncio.run(main())
    assert again.ok and again.result["result"] != pid


def test_streamable_http_server_with_headers(tmp_path):
    with fixture_http(tmp_path) as url:
        settings = settings_with(tmp_path / "data", web={"url": url, "headers": {"X-Test": "1"}})

        async def main():
            async with open_tools(settings, ToolRegistry()) as (registry, hub, errors):
                return errors, await registry.ainvoke("web__add", {"a": 1, "b": 1.5}), await registry.ainvoke("web__picture", {})

        errors, added, picture = asyncio.run(main())
    assert errors == {"web": None}
    assert added.ok and added.result == {"sum": 2.5}
    assert picture.ok and picture.artifacts


def test_an_http_server_that_is_down_is_a_readable_error(tmp_path):
    from tests.processes import free_port

    settings = settings_with(tmp_path / "data", down={"url": f"http://127.0.0.1:{free_port()}/mcp", "start_timeout_s": 5})

    async def main():
        async with open_tools(settings, ToolRegistry()) as (registry, _, errors):
            return errors, await registry.ainvoke("down__add", {})

    errors, result = asyncio.run(main())
    assert "MCP server 'down'" in errors["down"]
    assert not result.ok and "unknown tool" in result.error  # its tools were never listed


def test_the_time_server_package_answers(tmp_path):
    settings = settings_with(tmp_path / "data", time=time_server())

    async def main():
        async with open_tools(settings, ToolRegistry()) as (registry, _, _errors):
            return await registry.ainvoke("time__get_current_time", {"timezone": "Asia/Shanghai"})

    result = asyncio.run(main())
    assert result.ok and result.result["timezone"] == "Asia/Shanghai" and "+08:00" in result.result["datetime"]


def test_ask_first_servers_need_approval(tmp_path):
    script = write_script(tmp_path / "s.jsonl", say("1. add"), calls(call("fx__add", {"a": 1, "b": 2})), say("done"))
    settings = settings_with(tmp_path / "data", fx=fixture_stdio(ask_first=True))
    asked = []

    async def approve(name, arguments):
        asked.append((name, arguments))
        return True

    async def main():
        async with open_agent(settings, llm=f"scripted:{script}", persist=False) as agent:
            refused = await agent.arun("add 1 and 2", thread_id="no-one-to-ask")
            events = [e async for e in agent.astream("add 1 and 2", thread_id="approved", approve=approve)]
            return refused, events

    refused, events = asyncio.run(main())
    assert not refused.steps[0]["ok"] and "needs the user's approval" in refused.steps[0]["error"]
    final = next(e for e in events if e["type"] == "final")
    assert final["steps"][0]["ok"] and final["steps"][0]["result"] == {"sum": 3.0}
    assert asked == [("fx__add", {"a": 1, "b": 2})]


def test_tool_retrieval_ranks_mcp_tools(tmp_path):
    from agent.tool_router import ToolRouter
    from multimodal.text_embeddings import SentenceEncoder
    from tools.calculator import calculator_tool

    settings = settings_with(tmp_path / "data", time=time_server())

    async def main():
        async with open_tools(settings, ToolRegistry([calculator_tool()])) as (registry, _, _errors):
            router = ToolRouter(registry, SentenceEncoder())
            return (
                [r.name for r in router.select("What time is it now in Tokyo?", None, "model", 2, 0.0, set())],
                [r.name for r in router.select("What is 17% of 2340?", None, "model", 1, 0.0, set())],
            )

    clock, sums = asyncio.run(main())
    assert set(clock) == {"time__get_current_time", "time__convert_time"}  # ranked on their descriptions
    assert sums == ["calculator"]


def test_an_agent_turn_traces_an_external_and_an_own_tool(tmp_path, monkeypatch):
    """Done means: one turn calls a tool of an external MCP server and one of ours; its trace
    has both calls with their timings, and `mmagent trace THREAD` prints them."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    script = write_script(
        tmp_path / "s.jsonl",
        say("1. Add with the MCP tool\n2. Multiply with the calculator"),
        calls(call("fx__add", {"a": 2, "b": 3}), call("calculator", {"expression": "6*7"})),
        say("2+3 is 5 and 6*7 is 42."),
    )
    data = tmp_path / "data"
    settings = settings_with(data, fx=fixture_stdio())

    async def main():
        async with open_agent(settings, llm=f"scripted:{script}") as agent:
            return await agent.arun("What is 2+3, and 6*7?", thread_id="traced-turn", user_id="ada")

    result = asyncio.run(main())
    assert [(s["tool"], s["ok"]) for s in result.steps] == [("fx__add", True), ("calculator", True)]
    assert result.usage["total_tokens"] == result.usage["prompt_tokens"] + result.usage["completion_tokens"] > 0

    files = list((data / "traces" / "traced-turn").glob("*.json"))
    assert len(files) == 1
    trace = json.loads(files[0].read_text())
    spans = {s["name"]: s for s in trace["spans"]}
    assert trace["thread_id"] == "traced-turn" and trace["user_id"] == "ada"
    for name in ("run", "node plan", "node act", "node observe", "node respond", "model plan", "model act", "tool fx__add", "tool calculator"):
        assert name in spans, name
    mcp_call, own_call = spans["tool fx__add"], spans["tool calculator"]
    assert mcp_call["attributes"]["mmagent.tool.server"] == "fx" and mcp_call["attributes"]["mmagent.tool.ok"] is True
    assert json.loads(mcp_call["attributes"]["mmagent.tool.arguments"]) == {"a": 2, "b": 3}
    assert own_call["attributes"]["mmagent.tool.server"] == ""
    assert mcp_call["seconds"] > 0 and own_call["seconds"] > 0
    observe = spans["node observe"]
    assert mcp_call["parent_id"] == observe["span_id"] == own_call["parent_id"]
    assert all(s["attributes"]["mmagent.thread_id"] == "traced-turn" and s["attributes"]["mmagent.user_id"] == "ada" for s in trace["spans"])
    assert spans["model act"]["attributes"]["gen_ai.usage.input_tokens"] > 0

    env = {**os.environ, "PYTHONPATH": str(ROOT), "MMAGENT_DATA_DIR": str(data)}
    shown = subprocess.run([sys.executable, "-m", "apps.cli", "trace", "traced-turn"], capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"tool fx__add  \d+\.\d{3} s  ok  server fx", shown.stdout)
    assert re.search(r"tool calculator  \d+\.\d{3} s  ok", shown.stdout)
    missing = subprocess.run([sys.executable, "-m", "apps.cli", "trace", "no-such-thread"], capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no trace for thread 'no-such-thread'")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_tools_list_and_doctor_show_the_servers(tmp_path):
    data = tmp_path / "data"
    config = tmp_path / "mmagent.toml"
    config.write_text(
        f"[mcp.servers.fx]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(fixture_stdio()['args'][0])}]\n"
        "[mcp.servers.gone]\ncommand = \"/no/such/program\"\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MMAGENT_DATA_DIR": str(data), "MMAGENT_CONFIG": str(config)}

    def mmagent(*args):
        return subprocess.run([sys.executable, "-m", "apps.cli", *args], capture_output=True, text=True, env=env, timeout=180)

    listed = mmagent("tools", "list")
    assert listed.returncode == 0, listed.stderr
    assert "fx__add [MCP server fx]: Add two numbers" in listed.stdout and "calculator: " in listed.stdout
    assert "warning: MCP server gone is down" in listed.stderr
    called = mmagent("tools", "call", "fx__add", "--args", '{"a": 1, "b": 2}', "--json")
    assert json.loads(called.stdout) == {"ok": True, "result": {"sum": 3.0}}
    doctor = json.loads(mmagent("doctor", "--json").stdout)
    assert doctor["mcp"]["fx"].startswith("stdio") and "up, 8 tools" in doctor["mcp"]["fx"]
    assert "DOWN" in doctor["mcp"]["gone"]


def test_bad_server_settings_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="either `command`"):
        Settings(mcp={"servers": {"x": {"command": "a", "url": "http://h/mcp"}}})
    with pytest.raises(ValueError, match="must be 1-32 letters"):
        Settings(mcp={"servers": {"a__b": {"command": "a"}}})
    with pytest.raises(ValueError, match="http:// or https://"):
        Settings(mcp={"servers": {"x": {"url": "ftp://h"}}})


def test_the_http_api_lists_and_invokes_mcp_tools(tmp_path):
    import httpx

    from apps.server import create_app
    from tests.api_support import api_settings, running

    script = write_script(tmp_path / "s.jsonl", say("1. add"), calls(call("fx__add", {"a": 4, "b": 5})), say("9"))
    settings = api_settings(tmp_path / "data", mcp={"servers": {"fx": fixture_stdio()}})
    with running(create_app(settings, llm=f"scripted:{script}", ui=False)) as base:
        listed = httpx.get(f"{base}/v1/tools", timeout=60).json()["data"]
        invoked = httpx.post(f"{base}/v1/tools/fx__add/invoke", json={"a": 1, "b": 2}, timeout=60)
        invalid = httpx.post(f"{base}/v1/tools/fx__add/invoke", json={"a": 1}, timeout=60)
        turn = httpx.post(f"{base}/v1/chat/completions", json={"model": "mmagent", "messages": [{"role": "user", "content": "4+5?"}]}, timeout=60)
    servers = {s["function"]["name"]: s.get("server") for s in listed}
    assert servers["fx__add"] == "fx" and servers["calculator"] is None
    assert invoked.status_code == 200 and invoked.json()["result"] == {"sum": 3.0}
    assert invalid.status_code == 422 and "'b' is a required property" in invalid.json()["error"]
    body = turn.json()
    assert turn.status_code == 200 and body["mmagent"]["steps"][0]["tool"] == "fx__add" and body["mmagent"]["steps"][0]["ok"]
    assert body["usage"]["total_tokens"] > 0
