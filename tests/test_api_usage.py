"""`usage` (prompt, completion and total tokens) in /v1/chat/completions, read by the official
`openai` client: agent turns and client-tool replies, plain and streamed."""

from __future__ import annotations

from openai import OpenAI

from tests.api_support import scripted_server
from tests.conftest import call, calls, say

CALC_SCRIPT = (
    say("1. Multiply with the calculator\n2. Answer"),
    calls(call("calculator", {"expression": "6*7"})),
    say("6 times 7 is 42."),
)
WEATHER = {"type": "function", "function": {"name": "weather", "description": "Weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def client(url: str) -> OpenAI:
    return OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)


def well_formed(usage) -> None:
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_an_agent_turn_reports_the_tokens_of_all_its_model_calls(tmp_path):
    with scripted_server(tmp_path, *CALC_SCRIPT, *CALC_SCRIPT) as url:
        api = client(url)
        reply = api.chat.completions.create(model="mmagent", messages=[{"role": "user", "content": "What is 6 times 7?"}])
        well_formed(reply.usage)
        # plan + act + act: more than one call's worth of prompt
        assert reply.usage.prompt_tokens > 3 * 20
        chunks = list(api.chat.completions.create(
            model="mmagent", messages=[{"role": "user", "content": "And 6 times 7 again?"}], stream=True,
            stream_options={"include_usage": True},
        ))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert chunks[-1].choices == [] and all(c.usage is None for c in chunks[:-1])
    well_formed(chunks[-1].usage)


def test_client_tool_replies_report_usage(tmp_path):
    script = (calls(call("weather", {"city": "Paris"}, "call_w1")), say("Sunny."))
    with scripted_server(tmp_path, *script) as url:
        api = client(url)
        reply = api.chat.completions.create(model="mmagent", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER])
        assert reply.choices[0].message.tool_calls[0].function.name == "weather"
        well_formed(reply.usage)
        chunks = list(api.chat.completions.create(
            model="mmagent", stream=True, stream_options={"include_usage": True}, tools=[WEATHER],
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_w1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "call_w1", "content": "sunny, 21 C"},
            ],
        ))
    well_formed(chunks[-1].usage)
    assert chunks[-1].choices == []
