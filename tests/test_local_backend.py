"""LocalBackend on a tiny random-weight model built here (no downloads).

Random weights make the model's preferences arbitrary, which is exactly what we want: whatever it
"wants" to write, the grammar must turn it into schema-valid JSON. Schemas are checked with an
independent mini validator below, not with the backend's own safety net.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import BaseModel, Field

from agent.llm.base import ChatRequest, LLMError
from agent.llm.local import LocalBackend, render_prompt
from multimodal.devices import available_devices, device_report, resolve_device, torch_dtype_for
from multimodal.llm_loader import LoadedLM, hf_model_available, load_hf_model

# --------------------------------------------------------------------------------------------
# An independent JSON-schema check (jsonschema is not a dependency)


def check(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> None:
    """Assert `value` is valid for `schema` (the keywords these tests use)."""
    root = root if root is not None else schema
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return check(value, root["$defs"][name], root)
    if "anyOf" in schema:
        failures = []
        for option in schema["anyOf"]:
            try:
                check(value, option, root)
                return None
            except AssertionError as exc:
                failures.append(str(exc))
        raise AssertionError(f"{value!r} matches no anyOf option: {failures}")
    if "const" in schema:
        assert value == schema["const"], (value, schema)
    if "enum" in schema:
        assert value in schema["enum"], (value, schema)
    kind = schema.get("type")
    python_types = {
        "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
        "integer": int, "number": (int, float),
    }
    if kind is not None:
        assert isinstance(value, python_types[kind]), (value, schema)
        if kind in ("integer", "number"):
            assert not isinstance(value, bool), (value, schema)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in value, f"missing {name!r} in {value!r}"
        for name, item in value.items():
            assert name in props, f"unexpected property {name!r} in {value!r}"
            check(item, props[name], root)
    if isinstance(value, list):
        assert len(value) <= schema.get("maxItems", len(value)), (value, schema)
        assert len(value) >= schema.get("minItems", 0), (value, schema)
        for item in value:
            check(item, schema["items"], root)
    if isinstance(value, str):
        assert len(value) <= schema.get("maxLength", len(value)), (value, schema)
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert value >= schema.get("minimum", value), (value, schema)
        assert value <= schema.get("maximum", value), (value, schema)
    return None


# --------------------------------------------------------------------------------------------
# A tiny model + tokenizer, saved with save_pretrained and loaded through the product's loader

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = (
    "the quick brown fox jumps over the lazy dog what is twelve times seven use the calculator "
    "please answer weather in paris london tokyo today tomorrow celsius fahrenheit unit city "
    "name value count items list true false null expression result search query image caption "
    'translate english chinese {"name": "calculator", "arguments": {"expression": "12*7"}} '
    '{"answer": "hello"} [1, 2, 3] 0 1 2 3 4 5 6 7 8 9 10 42 100 -5 3.14 a b c d e f g h i j k '
    "user assistant system tool result called with arguments schema reply json object string"
).split()


def _tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<|pad|>", "<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([" ".join(CORPUS)] * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", pad_token="<|pad|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llm")
    tokenizer = _tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tiny_dir: Path) -> LoadedLM:
    return load_hf_model(str(tiny_dir), "cpu")


@pytest.fixture(autouse=True)
def _seeded() -> None:
    # Sampled tests are meant to hold for any seed; a fixed one makes failures reproducible.
    torch.manual_seed(1234)


@pytest.fixture()
def backend(tiny_lm: LoadedLM) -> LocalBackend:
    # Random weights rarely close a string: a small string budget keeps the tests quick.
    return LocalBackend(f"hf:{tiny_lm.source}", tiny_lm, max_string_tokens=6, max_array_items=4)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def tool(name: str, parameters: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


class Place(BaseModel):
    city: str
    country_code: str = Field(max_length=2)


class TripArgs(BaseModel):
    origin: Place
    destination: Place
    days: int = Field(ge=1, le=30)
    mode: str | None = None


SCHEMAS: dict[str, dict[str, Any]] = {
    "ints": {
        "type": "object",
        "properties": {"a": {"type": "integer", "minimum": -50, "maximum": 50}, "b": {"type": "integer", "minimum": 0, "maximum": 999}},
        "required": ["a", "b"],
    },
    "enum": {
        "type": "object",
        "properties": {"unit": {"enum": ["celsius", "fahrenheit"]}, "city": {"type": "string"}},
        "required": ["unit", "city"],
    },
    "nested": {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "filters": {
                "type": "object",
                "properties": {"lang": {"enum": ["en", "zh"]}, "safe": {"type": "boolean"}},
                "required": ["lang", "safe"],
            },
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        },
        "required": ["query", "filters", "tags"],
    },
    "optional": {
        "type": "object",
        "properties": {"expression": {"type": "string"}, "precision": {"type": "integer", "minimum": 0, "maximum": 10}},
        "required": ["expression"],
    },
    "pydantic_defs": TripArgs.model_json_schema(),
}


# --------------------------------------------------------------------------------------------
# Loader and devices


def test_loader_and_availability(tiny_dir: Path, tiny_lm: LoadedLM, tmp_path: Path) -> None:
    assert tiny_lm.origin == "hf" and tiny_lm.device == "cpu" and tiny_lm.dtype == torch.float32
    assert hf_model_available(str(tiny_dir))
    assert not hf_model_available(str(tmp_path))  # a folder without config.json
    assert not hf_model_available("nobody-xyz/no-such-model-123")
    with pytest.raises(LLMError, match=r"MMAGENT_LLM=hf:"):
        load_hf_model(str(tmp_path / "missing"), "cpu")


def test_devices() -> None:
    assert "cpu" in available_devices()
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in available_devices()
    with pytest.warns(RuntimeWarning, match="not available"):
        assert resolve_device("cuda:7") in available_devices()
    with pytest.warns(RuntimeWarning):
        assert resolve_device("tpu") in available_devices()
    assert torch_dtype_for("cpu") == torch.float32
    report = device_report()
    assert {"torch_version", "cuda_available", "gpus", "auto_device"} <= report.keys()


# --------------------------------------------------------------------------------------------
# Constrained output


@pytest.mark.parametrize("schema_name", list(SCHEMAS))
def test_named_tool_call_always_validates(backend: LocalBackend, schema_name: str) -> None:
    schema = SCHEMAS[schema_name]
    tools = [tool("do_it", schema, "Does it."), tool("other", SCHEMAS["ints"])]
    messages = [{"role": "user", "content": "please answer with the tool"}]
    for temperature in (0.0, 1.0, 1.0, 1.5):
        request = ChatRequest(messages=messages, tools=tools, tool_choice="do_it", temperature=temperature, max_tokens=300)
        reply = run(backend.complete(request))
        assert reply.content == "" and len(reply.tool_calls) == 1
        call = reply.tool_calls[0]
        assert call.name == "do_it"
        check(call.arguments, schema)
        json.loads(call.to_openai()["function"]["arguments"])


def test_response_schema_content_validates(backend: LocalBackend) -> None:
    schema = SCHEMAS["nested"]
    for temperature in (0.0, 1.0, 1.0):
        reply = run(backend.complete(ChatRequest(messages=[{"role": "user", "content": "json please"}], response_schema=schema, temperature=temperature, max_tokens=300)))
        assert not reply.tool_calls
        check(json.loads(reply.content), schema)


def test_auto_and_required_choice(backend: LocalBackend) -> None:
    tools = [tool("calculator", SCHEMAS["optional"]), tool("weather", SCHEMAS["enum"]), tool("trip", SCHEMAS["pydantic_defs"])]
    by_name = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    seen = set()
    for i in range(8):
        choice = "required" if i % 2 else "auto"
        request = ChatRequest(messages=[{"role": "user", "content": "what is the weather"}], tools=tools, tool_choice=choice, temperature=1.0, max_tokens=300)
        reply = run(backend.complete(request))
        if reply.tool_calls:
            (call,) = reply.tool_calls
            check(call.arguments, by_name[call.name])
            seen.add("call")
        else:
            assert choice == "auto" and isinstance(reply.content, str)
            seen.add("answer")
    assert "call" in seen


def test_running_out_of_tokens_is_a_clear_error(backend: LocalBackend) -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], tools=[tool("t", SCHEMAS["nested"])], tool_choice="t", max_tokens=3)
    with pytest.raises(LLMError, match="without finishing"):
        run(backend.complete(request))


def test_unknown_tool_choice(backend: LocalBackend) -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], tools=[tool("t", SCHEMAS["ints"])], tool_choice="nope")
    with pytest.raises(LLMError, match="not among the offered tools"):
        run(backend.complete(request))


# --------------------------------------------------------------------------------------------
# Free text, streaming, concurrency, laziness


def test_free_text_respects_max_tokens_and_streams(backend: LocalBackend, tiny_lm: LoadedLM, monkeypatch: pytest.MonkeyPatch) -> None:
    new_tokens: list[int] = []
    original = tiny_lm.model.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        new_tokens.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(tiny_lm.model, "generate", spy)
    for max_tokens in (1, 7, 20):
        pieces: list[str] = []

        async def go() -> Any:
            return await backend.complete(
                ChatRequest(messages=[{"role": "user", "content": "say something"}], max_tokens=max_tokens, temperature=1.0),
                on_token=pieces.append,
            )

        reply = run(go())
        assert new_tokens[-1] <= max_tokens
        assert "".join(pieces) == reply.content


def test_concurrent_calls_load_once(tiny_dir: Path) -> None:
    loads: list[float] = []

    def loader() -> LoadedLM:
        loads.append(time.perf_counter())
        time.sleep(0.2)  # widen the race window
        return load_hf_model(str(tiny_dir), "cpu")

    backend = LocalBackend(f"hf:{tiny_dir}", loader, max_string_tokens=6)
    assert not loads and backend.describe()["loaded"] is False  # lazy: nothing loaded yet
    schema = SCHEMAS["ints"]

    async def many() -> list[Any]:
        requests = [
            ChatRequest(messages=[{"role": "user", "content": f"q{i}"}], tools=[tool("t", schema)], tool_choice="t", temperature=1.0, max_tokens=200)
            if i % 2
            else ChatRequest(messages=[{"role": "user", "content": f"q{i}"}], max_tokens=10)
            for i in range(6)
        ]
        return await asyncio.gather(*(backend.complete(r) for r in requests))

    replies = run(many())
    assert len(loads) == 1
    for i, reply in enumerate(replies):
        if i % 2:
            check(reply.tool_calls[0].arguments, schema)
    info = backend.describe()
    assert info["loaded"] and info["device"] == "cpu" and info["dtype"] == "float32" and info["source"] == str(tiny_dir)


def test_event_loop_not_blocked(backend: LocalBackend) -> None:
    async def go() -> int:
        ticks = 0
        task = asyncio.create_task(backend.complete(ChatRequest(messages=[{"role": "user", "content": "x"}], max_tokens=60, temperature=1.0)))
        while not task.done():
            ticks += 1
            await asyncio.sleep(0.001)
        await task
        return ticks

    assert run(go()) > 1


# --------------------------------------------------------------------------------------------
# Prompt rendering and its fallbacks

HISTORY = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 12 times 7?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "12*7"}'}}
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": "84"},
]


def test_render_with_template(tiny_lm: LoadedLM) -> None:
    prompt = render_prompt(tiny_lm.tokenizer, HISTORY, [], "INSTRUCTION")
    assert prompt.style == "template"
    assert "<|system|>You are terse.\n\nINSTRUCTION" in prompt.text and "<|tool|>84" in prompt.text
    assert prompt.text.endswith("<|assistant|>")
    # This template ignores `tools`, so they are described in the system text instead.
    tools = [tool("calculator", SCHEMAS["optional"], "Evaluates arithmetic.")]
    prompt = render_prompt(tiny_lm.tokenizer, HISTORY, tools, "INSTRUCTION")
    assert prompt.style == "template"
    assert "<|system|>You are terse.\n\nAvailable tools:\n- calculator: Evaluates arithmetic." in prompt.text


def test_render_fallbacks(tiny_lm: LoadedLM) -> None:
    import copy

    tok = copy.deepcopy(tiny_lm.tokenizer)
    # A Gemma-like template that refuses system and tool roles.
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] not in ['user', 'assistant'] %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}"
        "<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    tools = [tool("calculator", SCHEMAS["optional"], "Evaluates arithmetic.")]
    prompt = render_prompt(tok, HISTORY, tools, "INSTRUCTION")
    assert prompt.style == "template-simplified"
    assert prompt.text.startswith("<user>You are terse.")
    assert "calculator: Evaluates arithmetic." in prompt.text
    assert '[called tool calculator with {"expression": "12*7"}]' in prompt.text
    assert "<user>Tool result (calculator): 84" in prompt.text

    tok.chat_template = None
    prompt = render_prompt(tok, HISTORY, tools, "INSTRUCTION")
    assert prompt.style == "transcript" and prompt.add_special_tokens
    assert re.search(r"^System: You are terse\.\n\nAvailable tools:\n- calculator", prompt.text)
    assert "User: What is 12 times 7?" in prompt.text
    assert 'Assistant: [called tool calculator with {"expression": "12*7"}]' in prompt.text
    assert "Tool result (calculator): 84" in prompt.text
    assert prompt.text.endswith("\n\nAssistant:")


def test_transcript_free_text_stops_at_next_turn(tiny_lm: LoadedLM) -> None:
    import copy

    lm = copy.copy(tiny_lm)
    lm.tokenizer = copy.deepcopy(tiny_lm.tokenizer)
    lm.tokenizer.chat_template = None
    backend = LocalBackend("hf:tiny", lm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            reply = run(backend.complete(ChatRequest(messages=[{"role": "user", "content": "user assistant"}], max_tokens=40, temperature=1.5)))
            assert "\nUser:" not in reply.content and "\nAssistant:" not in reply.content


def test_cancelled_call_releases_the_model(backend: LocalBackend, tiny_lm: LoadedLM, monkeypatch: pytest.MonkeyPatch) -> None:
    new_tokens: list[int] = []
    original = tiny_lm.model.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        new_tokens.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(tiny_lm.model, "generate", spy)

    async def go() -> float:
        # Greedy on these random weights never emits EOS: uncancelled, this runs all 3000 tokens (~5 s).
        long = asyncio.create_task(backend.complete(ChatRequest(messages=[{"role": "user", "content": "x"}], max_tokens=3000)))
        await asyncio.sleep(0.3)
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long
        started = time.perf_counter()
        await backend.complete(ChatRequest(messages=[{"role": "user", "content": "y"}], max_tokens=5))
        return time.perf_counter() - started

    waited = run(go())
    assert new_tokens[0] < 3000  # the worker stopped at its next token
    assert waited < 2.0  # and released the model lock for the next call


def test_string_budget_closes_runaway_strings(tiny_lm: LoadedLM, monkeypatch: pytest.MonkeyPatch) -> None:
    new_tokens: list[int] = []
    original = tiny_lm.model.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        new_tokens.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(tiny_lm.model, "generate", spy)
    backend = LocalBackend("hf:tiny", tiny_lm, max_string_tokens=5)
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    for _ in range(3):
        reply = run(backend.complete(ChatRequest(messages=[{"role": "user", "content": "x"}], tools=[tool("t", schema)], tool_choice="t", temperature=1.0, max_tokens=400)))
        check(reply.tool_calls[0].arguments, schema)
        # '{"text": ' takes up to 9 tokens of this tiny vocabulary, the opening quote 1, the string
        # at most the budget of 5, then '"', '}' and EOS.
        assert new_tokens[-1] <= 9 + 1 + 5 + 3


def test_free_text_stops_at_imitated_tool_rounds() -> None:
    """A base model continuing a transcript must not invent a tool call or its result."""
    from agent.llm.local import TRANSCRIPT_STOPS, _cut_at_stop

    assert _cut_at_stop('[called tool search with {"x": 1}]\nIt is big.', TRANSCRIPT_STOPS) == ""
    assert _cut_at_stop("It is 84.\nTool result (calculator): 85", TRANSCRIPT_STOPS) == "It is 84."
    assert _cut_at_stop("It is 84. Tool result (calculator): 85", TRANSCRIPT_STOPS) == "It is 84. "
    assert _cut_at_stop("Plain answer.", TRANSCRIPT_STOPS) == "Plain answer."
