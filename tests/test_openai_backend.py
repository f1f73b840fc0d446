"""The openai backend with the official client, over HTTP, against a local OpenAI-style server.

The server replays canned chat-completion streams (SSE, as OpenAI sends them) and records what
it was sent, so the test checks both directions: tools/tool_choice going out, streamed content
and split tool-call deltas coming back, and errors turned into clear LLMErrors.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.llm.base import ChatRequest, LLMError
from agent.llm.openai_backend import OpenAIBackend


def chunk(delta: dict, finish: str | None = None) -> str:
    body = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n"


class FakeOpenAI(BaseHTTPRequestHandler):
    replies: list[list[str]] = []
    received: list[dict] = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        if type(self).status != 200:
            self.send_response(type(self).status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"error": {"message": "no such model", "type": "invalid_request_error"}}).encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in type(self).replies.pop(0):
            self.wfile.write(piece.encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    FakeOpenAI.replies, FakeOpenAI.received, FakeOpenAI.status = [], [], 200
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


TOOLS = [{"type": "function", "function": {"name": "calculator", "description": "math",
          "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}]


def test_streamed_text_and_split_tool_call(server):
    FakeOpenAI.replies = [
        [chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"}), chunk({}, "stop")],
        [
            chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "calculator", "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"expres'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'sion": "2+2"}'}}]}),
            chunk({"tool_calls": [{"index": 1, "id": "c2", "type": "function", "function": {"name": "calculator", "arguments": "{oops"}}]}),
            chunk({}, "tool_calls"),
        ],
    ]
    backend = OpenAIBackend("m", base_url=server, api_key="k")
    tokens: list[str] = []
    reply = asyncio.run(backend.complete(ChatRequest(messages=[{"role": "user", "content": "hi"}]), on_token=tokens.append))
    assert reply.content == "Hello" and tokens == ["Hel", "lo"] and not reply.tool_calls
    request = ChatRequest(messages=[{"role": "user", "content": "2+2"}], tools=TOOLS, tool_choice="calculator")
    reply = asyncio.run(backend.complete(request))
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [("c1", "calculator", {"expression": "2+2"}), ("c2", "calculator", {})]
    assert reply.raw_tool_arguments == {"c2": "{oops"}
    sent = FakeOpenAI.received[1]
    assert sent["tools"] == TOOLS and sent["tool_choice"] == {"type": "function", "function": {"name": "calculator"}}
    assert sent["temperature"] == 0.0 and sent["stream"] is True


def test_errors_are_clear(server):
    FakeOpenAI.status = 404
    backend = OpenAIBackend("missing-model", base_url=server, api_key="k")
    with pytest.raises(LLMError, match="model 'missing-model' not found"):
        asyncio.run(backend.complete(ChatRequest(messages=[{"role": "user", "content": "hi"}])))
    down = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key="k", timeout_s=2)
    with pytest.raises(LLMError, match="cannot reach the OpenAI-compatible server"):
        asyncio.run(down.complete(ChatRequest(messages=[{"role": "user", "content": "hi"}])))


def test_the_servers_token_counts_come_back(server):
    usage = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [],
             "usage": {"prompt_tokens": 17, "completion_tokens": 3, "total_tokens": 20}}
    FakeOpenAI.replies = [[chunk({"role": "assistant", "content": "Hi"}), chunk({}, "stop"), f"data: {json.dumps(usage)}\n\n"], [chunk({"content": "x"})]]
    backend = OpenAIBackend("m", base_url=server, api_key="k")
    reply = asyncio.run(backend.complete(ChatRequest(messages=[{"role": "user", "content": "hi"}])))
    assert reply.content == "Hi" and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (17, 3)
    assert FakeOpenAI.received[0]["stream_options"] == {"include_usage": True}
    # A server that sends no counts: no usage (the caller estimates), not zeros.
    assert asyncio.run(backend.complete(ChatRequest(messages=[{"role": "user", "content": "hi"}]))).usage is None
