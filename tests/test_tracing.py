"""Traces of runs: OTLP export to a real collector endpoint, JSON files per run, runs of two
users kept apart, retention, odd thread ids, bounded argument text."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from langgraph.checkpoint.memory import InMemorySaver

from agent.config import Settings
from agent.llm.scripted import ScriptedBackend
from agent.runner import Agent
from agent.tracing import MAX_ARGUMENT_CHARS, RunTracer, last_trace, recorded_arguments, render_tree, thread_folder
from tests.conftest import call, calls, say, write_script
from tools.calculator import calculator_tool
from tools.registry import ToolRegistry

SCRIPT = (say("1. Multiply"), calls(call("calculator", {"expression": "6*7"})), say("42"))


def traced_agent(tmp_path, settings: Settings, replies=SCRIPT) -> Agent:
    script = write_script(tmp_path / "s.jsonl", *replies)
    return Agent(settings, ScriptedBackend(script), ToolRegistry([calculator_tool()]), None, InMemorySaver(), tracer=RunTracer(settings))


class Collector(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        type(self).bodies.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_spans_go_to_the_otlp_endpoint_when_one_is_set(tmp_path, monkeypatch):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    Collector.bodies = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        settings = Settings(data_dir=tmp_path / "data")
        agent = traced_agent(tmp_path, settings)
        assert agent.tracer.exporter == "otlp"
        asyncio.run(agent.arun("What is 6*7?", thread_id="otlp-thread", user_id="ada"))
        agent.tracer.shutdown()  # flushes the batch
    finally:
        httpd.shutdown()
    spans = []
    for path, body in Collector.bodies:
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
    names = {s.name for s in spans}
    assert {"run", "node plan", "node act", "node observe", "node respond", "model plan", "tool calculator"} <= names
    tool = next(s for s in spans if s.name == "tool calculator")
    attributes = {a.key: a.value for a in tool.attributes}
    assert attributes["mmagent.thread_id"].string_value == "otlp-thread" and attributes["mmagent.user_id"].string_value == "ada"
    assert attributes["mmagent.tool.ok"].bool_value is True
    assert not (tmp_path / "data" / "traces").exists()  # OTLP instead of the JSON files


def test_concurrent_runs_of_two_users_keep_their_own_traces(tmp_path, monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    settings = Settings(data_dir=tmp_path / "data")
    slow = (say("1. Multiply"), {**calls(call("calculator", {"expression": "6*7"})), "delay_s": 0.2}, say("42"))
    agent = traced_agent(tmp_path, settings, slow)

    async def both():
        await asyncio.gather(
            agent.arun("What is 6*7?", thread_id="t-alice", user_id="alice"),
            agent.arun("What is 6*7?", thread_id="t-bob", user_id="bob"),
        )

    asyncio.run(both())
    for thread, user in (("t-alice", "alice"), ("t-bob", "bob")):
        trace = last_trace(settings, thread)
        assert trace["user_id"] == user
        assert {s["attributes"]["mmagent.user_id"] for s in trace["spans"]} == {user}
        assert {s["attributes"]["mmagent.thread_id"] for s in trace["spans"]} == {thread}
        assert len({s["trace_id"] for s in trace["spans"]}) == 1
        assert "tool calculator" in render_tree(trace)


def test_old_traces_are_pruned_and_odd_thread_ids_hashed(tmp_path, monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    settings = Settings(data_dir=tmp_path / "data", tracing={"keep_runs": 2})
    agent = traced_agent(tmp_path, settings, SCRIPT * 3)
    odd = "../../etc/passwd 线程"
    for _ in range(3):
        asyncio.run(agent.arun("What is 6*7?", thread_id=odd))
    folder = tmp_path / "data" / "traces" / thread_folder(odd)
    assert folder.parent == tmp_path / "data" / "traces" and thread_folder(odd).startswith("h-")
    assert len(list(folder.glob("*.json"))) == 2
    assert last_trace(settings, odd)["thread_id"] == odd


def test_recorded_arguments_are_bounded():
    text = recorded_arguments({"text": "x" * 10_000})
    assert len(text) <= MAX_ARGUMENT_CHARS + 1 and text.endswith("…")
    assert json.loads(recorded_arguments({"a": 1})) == {"a": 1}


def test_private_data_in_tool_arguments_and_errors_is_masked_in_traces(tmp_path, monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    leaky = (say("1. Compute"), calls(call("calculator", {"expression": "ada@example.com + 4111 1111 1111 1111"})), say("done"))
    for mask, folder in ((True, "on"), (False, "off")):
        settings = Settings(data_dir=tmp_path / folder, safety={"mask_pii": mask})
        asyncio.run(traced_agent(tmp_path, settings, leaky).arun("Add these", thread_id="t"))
        text = json.dumps(last_trace(settings, "t"), ensure_ascii=False)
        assert ("ada@example.com" in text) is not mask and ("4111 1111 1111 1111" in text) is not mask
        if mask:
            assert "[email]" in text and "[card number]" in text
