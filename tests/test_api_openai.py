"""The official `openai` client and LangChain's ChatOpenAI against a real server, unchanged."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI

from tests.api_support import scripted_server
from tests.conftest import call, calls, say

CALC_SCRIPT = (
    say("1. Multiply with the calculator\n2. Answer"),
    calls(call("calculator", {"expression": "6*7"})),
    say("6 times 7 is 42."),
)

# A client tool with a dotted name and a sloppy schema ("dict", "str", no `required`).
SLOPPY_WEATHER = {
    "type": "function",
    "function": {
        "name": "weather.get",
        "description": "Current weather in a city.",
        "parameters": {"type": "dict", "properties": {"city": {"type": "str"}}},
    },
}
# The model sees the safe name, and the client gets its own name back.
WEATHER_SCRIPT = (calls(call("weather_get", {"city": "Paris"}, "call_w1")), say("It is sunny in Paris, 21 °C."))


def client(url: str) -> OpenAI:
    return OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_models_and_plain_completion_runs_the_agent(tmp_path):
    with scripted_server(tmp_path, *CALC_SCRIPT) as url:
        api = client(url)
        assert [m.id for m in api.models.list().data] == ["mmagent"]
        assert api.models.retrieve("mmagent").id == "mmagent"
        reply = api.chat.completions.create(model="mmagent", messages=[{"role": "user", "content": "What is 6 times 7?"}])
        assert reply.object == "chat.completion" and reply.model == "mmagent"
        assert reply.choices[0].message.content == "6 times 7 is 42."
        assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls
        # The agent's work rides along in an extra field that OpenAI clients ignore.
        work = reply.model_extra["mmagent"]
        assert work["plan"] == ["Multiply with the calculator", "Answer"]
        assert work["steps"][0]["tool"] == "calculator" and work["steps"][0]["result"] == "42"


def test_streaming_completion(tmp_path):
    with scripted_server(tmp_path, *CALC_SCRIPT) as url:
        chunks = list(client(url).chat.completions.create(
            model="mmagent", messages=[{"role": "user", "content": "What is 6 times 7?"}], stream=True
        ))
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "6 times 7 is 42."
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
        # The wire format ends as OpenAI's does.
        raw = httpx.post(url + "/v1/chat/completions", json={
            "model": "mmagent", "stream": True, "messages": [{"role": "user", "content": "6*7?"}]}, timeout=60)
        assert raw.headers["content-type"].startswith("text/event-stream")
        assert raw.text.rstrip().endswith("data: [DONE]")


def test_conversation_continues_its_thread(tmp_path):
    script = (say("1. Greet"), say("Nice to meet you, Ada."), say("1. Recall the name"), say("Your name is Ada."))
    with scripted_server(tmp_path, *script) as url:
        api = client(url)
        messages = [{"role": "user", "content": "My name is Ada."}]
        first = api.chat.completions.create(model="mmagent", messages=messages)
        assert first.choices[0].message.content == "Nice to meet you, Ada."
        messages += [{"role": "assistant", "content": first.choices[0].message.content}, {"role": "user", "content": "What is my name?"}]
        second = api.chat.completions.create(model="mmagent", messages=messages)
        # The scripted cursor moved on: the same thread continued (a new one would replay line 1).
        assert second.choices[0].message.content == "Your name is Ada."
        thread = second.model_extra["mmagent"]["thread_id"]
        assert thread == first.model_extra["mmagent"]["thread_id"]
        history = httpx.get(f"{url}/v1/threads/{thread}", timeout=30).json()["messages"]
        assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]


def test_client_tools_round_trip(tmp_path):
    with scripted_server(tmp_path, *WEATHER_SCRIPT) as url:
        api = client(url)
        messages = [{"role": "user", "content": "Weather in Paris?"}]
        first = api.chat.completions.create(model="mmagent", messages=messages, tools=[SLOPPY_WEATHER])
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        (tool_call,) = choice.message.tool_calls
        assert tool_call.id == "call_w1" and tool_call.type == "function"
        assert tool_call.function.name == "weather.get"
        assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
        # The client runs its tool and sends the result back.
        messages += [choice.message, {"role": "tool", "tool_call_id": tool_call.id, "content": '{"sky": "sunny", "celsius": 21}'}]
        second = api.chat.completions.create(model="mmagent", messages=messages, tools=[SLOPPY_WEATHER])
        assert second.choices[0].finish_reason == "stop"
        assert second.choices[0].message.content == "It is sunny in Paris, 21 °C."


def test_client_tools_round_trip_streaming(tmp_path):
    with scripted_server(tmp_path, *WEATHER_SCRIPT) as url:
        api = client(url)
        messages = [{"role": "user", "content": "Weather in Paris?"}]
        chunks = list(api.chat.completions.create(model="mmagent", messages=messages, tools=[SLOPPY_WEATHER], stream=True))
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
        deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
        assert deltas[0].index == 0 and deltas[0].id == "call_w1" and deltas[0].function.name == "weather.get"
        arguments = "".join(d.function.arguments or "" for d in deltas)
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_w1", "type": "function", "function": {"name": "weather.get", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "call_w1", "content": "sunny, 21 C"},
        ]
        chunks = list(api.chat.completions.create(model="mmagent", messages=messages, tools=[SLOPPY_WEATHER], stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "It is sunny in Paris, 21 °C."
        assert chunks[-1].choices[0].finish_reason == "stop"


def test_model_failure_is_a_502_with_openai_error(tmp_path):
    import openai

    with scripted_server(tmp_path, say("1. Answer")) as url:  # the script ends before the answer
        with pytest.raises(openai.APIStatusError) as info:
            client(url).chat.completions.create(model="mmagent", messages=[{"role": "user", "content": "hi"}])
        assert info.value.status_code == 502 and "ran out of replies" in info.value.message
        with pytest.raises(openai.APIError, match="ran out of replies"):
            list(client(url).chat.completions.create(model="mmagent", messages=[{"role": "user", "content": "hi"}], stream=True))


def test_langchain_chat_openai_unchanged(tmp_path):
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return f"sunny in {city}"

    script = (calls(call("get_weather", {"city": "Paris"}, "call_lc1")), say("It is sunny in Paris, 21 °C."))
    with scripted_server(tmp_path, *script) as url:
        llm = ChatOpenAI(base_url=url + "/v1", api_key="unused", model="mmagent", max_retries=0, timeout=60)
        # Without tools the agent answers (a fresh thread per conversation replays the script).
        answer = llm.invoke("Weather in Paris?")
        assert answer.content == "It is sunny in Paris, 21 °C."
        assert "".join(chunk.content for chunk in llm.stream("Weather in Paris?")) == "It is sunny in Paris, 21 °C."

        bound = llm.bind_tools([get_weather])
        history = [HumanMessage("Weather in Paris?")]
        ai = bound.invoke(history)
        assert ai.tool_calls == [{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_lc1", "type": "tool_call"}]
        history += [ai, ToolMessage(get_weather.invoke(ai.tool_calls[0]["args"]), tool_call_id="call_lc1")]
        final = bound.invoke(history)
        assert final.content == "It is sunny in Paris, 21 °C." and not final.tool_calls
