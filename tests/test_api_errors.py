"""Bad input gets a clear 4xx with a JSON body, never a 500 (including random bodies)."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.api.client_tools import ToolSchemaError, normalise_parameters, normalise_tools
from apps.api.conversations import Conversations, conversation_key
from tests.api_support import scripted_server
from tests.conftest import say

USER = {"role": "user", "content": "hi"}


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    # Every conversation starts a fresh scripted cursor, so this script answers any valid request.
    with scripted_server(tmp_path_factory.mktemp("api"), say("1. Answer"), say("Hello."), server={"max_request_bytes": 4096}) as base:
        yield base


@pytest.fixture(scope="module")
def http(url):
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


def openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [USER]}, "model"),
        ({"model": "mmagent"}, "messages"),
        ({"model": "mmagent", "messages": []}, "messages"),
        ({"model": "mmagent", "messages": "hi"}, "messages"),
        ({"model": "mmagent", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"model": "mmagent", "messages": [{"role": "user"}]}, "messages.0"),
        ({"model": "mmagent", "messages": [{"role": "tool", "content": "x"}]}, "messages.0"),
        ({"model": "mmagent", "messages": [USER], "temperature": "hot"}, "temperature"),
        ({"model": "mmagent", "messages": [USER], "stream": "maybe"}, "stream"),
        ({"model": "mmagent", "messages": [USER], "n": 3}, "n"),
        ({"model": "mmagent", "messages": [USER], "tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"model": "mmagent", "messages": [USER], "tools": [{"type": "function", "function": {"name": ""}}]}, "tools[0].function.name"),
        ({"model": "mmagent", "messages": [USER], "tools": [{"function": {"name": "f", "parameters": {"type": "array"}}}]}, "tools[0].function.parameters"),
        ({"model": "mmagent", "messages": [USER], "tools": [{"function": {"name": "f", "parameters": {"properties": {"a": {"type": "strnig"}}}}}]}, "tools[0].function.parameters"),
        ({"model": "mmagent", "messages": [USER], "tools": [{"function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
        ({"model": "mmagent", "messages": [USER], "tool_choice": "required"}, "tool_choice"),
        ({"model": "mmagent", "messages": [USER], "response_format": {"type": "xml"}}, "response_format"),
        ({"model": "mmagent", "messages": [USER, {"role": "tool", "tool_call_id": "c", "content": "x"}]}, "messages.1"),
        ({"model": "mmagent", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}, {"type": "text", "text": "?"}]}]}, "messages.0.content.0.image_url"),
        ({"model": "mmagent", "messages": [USER], "user": "a b c"}, "user"),
    ],
)
def test_bad_chat_requests_are_400(http, body, param):
    error = openai_error(http.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_malformed_json_unknown_model_and_unknown_routes(http):
    error = openai_error(http.post("/v1/chat/completions", content=b'{"model": ', headers={"content-type": "application/json"}), 400)
    assert "not valid JSON" in error["message"] and error["code"] == "invalid_json"
    error = openai_error(http.post("/v1/chat/completions", content=b"hello", headers={"content-type": "text/plain"}), 400)
    assert "JSON object" in error["message"]
    error = openai_error(http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [USER]}), 404)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    openai_error(http.get("/v1/models/gpt-4o"), 404)
    assert openai_error(http.get("/v1/nothing/here"), 404)["code"] == "unknown_endpoint"
    response = http.get("/v1/chat/completions")
    openai_error(response, 405)
    assert response.headers["allow"] == "POST"


def test_request_size_limit_is_413(http):
    big = {"model": "mmagent", "messages": [{"role": "user", "content": "x" * 5000}]}
    assert openai_error(http.post("/v1/chat/completions", json=big), 413)["code"] == "request_too_large"

    def chunked():  # no Content-Length: the limit is enforced while reading
        for _ in range(10):
            yield b"x" * 1000

    assert http.post("/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"}).status_code == 413
    tool = http.post("/v1/tools/calculator/invoke", json={"expression": "1+" * 3000 + "1"})
    assert tool.status_code == 413 and tool.json()["ok"] is False


def test_valid_request_still_works_on_the_same_server(http):
    response = http.post("/v1/chat/completions", json={"model": "mmagent", "messages": [USER], "top_p": 0.5, "seed": 1})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "Hello."


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool", "bogus"])},
        optional={"content": json_values, "tool_calls": json_values, "tool_call_id": json_values, "name": json_values},
    ),
    max_size=3,
)
chat_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["mmagent", "gpt-4o"]) | json_values,
        "messages": messages | json_values,
        "tools": st.lists(json_values, max_size=2) | json_values,
        "tool_choice": json_values,
        "stream": st.booleans() | json_values,
        "temperature": json_values,
        "user": json_values,
        "response_format": json_values,
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=chat_bodies | json_values)
def test_random_bodies_never_500(http, body):
    for path in ("/v1/chat/completions", "/v1/tools/calculator/invoke", "/v1/threads/t/runs"):
        response = http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
        assert response.status_code < 500, (path, body, response.text)
        if not response.headers["content-type"].startswith("text/event-stream"):
            response.json()  # every other answer is JSON


@given(raw=st.binary(max_size=200))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_bytes_never_500(http, raw):
    for path in ("/v1/chat/completions", "/v1/tools/calculator/invoke"):
        response = http.post(path, content=raw, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500 or response.status_code == 200, (path, raw, response.text)


# ---------------------------------------------------------------- client tool normalisation


def test_sloppy_schemas_are_repaired():
    tools = normalise_tools([
        {"type": "function", "function": {"name": "weather.get", "parameters": {"type": "dict", "properties": {
            "city": {"type": "str", "required": True}, "days": {"type": "int"}, "tags": {"type": "list", "items": {"type": "str"}}}}}},
        {"name": "no_params"},  # a bare function object, no parameters at all
        {"type": "function", "function": {"name": "weather_get", "parameters": {"properties": {"x": {"type": "float"}}}}},
    ])
    first, second, third = (t["function"] for t in tools.schemas)
    assert first["name"] == "weather_get" and third["name"] == "weather_get_2"
    assert first["parameters"] == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["city"],
    }
    assert second["parameters"] == {"type": "object", "properties": {}, "required": []}
    assert third["parameters"]["properties"]["x"] == {"type": "number"}
    assert tools.client_name("weather_get") == "weather.get" and tools.client_name("weather_get_2") == "weather_get"
    assert tools.safe_name("weather.get") == "weather_get"
    assert tools.choice({"type": "function", "function": {"name": "weather.get"}}) == "weather_get"


def test_unrepairable_schemas_are_refused():
    with pytest.raises(ToolSchemaError):
        normalise_parameters({"type": "object", "properties": {"a": {"type": 5}}})
    with pytest.raises(ToolSchemaError):
        normalise_tools([{"function": {"name": "a"}}, {"function": {"name": "a"}}])


def test_conversation_keys_ignore_client_reserialisation():
    a = [USER, {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1, "y": 2}'}}]}]
    b = [USER, {"role": "assistant", "content": "", "refusal": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"y":2,"x":1}'}}]}]
    assert conversation_key("u", a) == conversation_key("u", b) != conversation_key("v", a)
    conversations = Conversations(max_entries=2)
    conversations.remember("u", a, "agent", "thread-1")
    assert conversations.claim("u", [*b, {"role": "tool", "tool_call_id": "c1", "content": "3"}], "agent") == "thread-1"
    assert conversations.claim("u", b, "agent") is None  # taken once: a regenerated turn starts afresh
