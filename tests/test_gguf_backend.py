"""The bundled model on llama.cpp: constrained calls always close, free text stops cleanly,
and the assembled model file lives in one cache shared by every data folder."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.llm.base import ChatRequest
from agent.llm.constrained import validate_against_schema
from agent.llm.gguf import GGUFBackend
from agent.llm.json_budget import grammar_schema
from tools.demonstrations import CALCULATOR

pytestmark = pytest.mark.slow

CALC = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    },
}

# Schemas of the kinds public function-calling benchmarks send (after the API's normalisation).
SLOPPY_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "book_hotel", "description": "Book rooms.", "parameters": {
        "type": "object", "properties": {
            "guest": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}}, "required": ["name"]},
            "nights": {"type": "integer"}, "rate": {"type": "number"},
            "extras": {"type": "array", "items": {"type": "string"}},
            "rooms": {"type": "array", "items": {"type": "object", "properties": {"beds": {"type": "integer"}, "view": {"type": "string"}}}},
            "notes": {},
        },
        "required": ["guest", "nights", "rooms"]}}},
]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> GGUFBackend:
    settings = load_settings(cache_dir=str(tmp_path_factory.mktemp("models")))
    return GGUFBackend.from_spec("bundled", settings)


def run(coro):
    return asyncio.run(coro)


def test_a_named_tool_call_is_valid(backend: GGUFBackend) -> None:
    reply = run(backend.complete(ChatRequest(messages=[{"role": "user", "content": "What is 12 times 7?"}], tools=[CALC], tool_choice="calculator")))
    assert reply.tool_calls and reply.tool_calls[0].name == "calculator"
    assert isinstance(reply.tool_calls[0].arguments["expression"], str)
    assert backend.describe()["runtime"] == "llama.cpp" and backend.describe()["loaded"]


def test_token_counts_are_the_models_own(backend: GGUFBackend) -> None:
    text = "Question: What is the capital of France?\nAnswer:"
    reply = run(backend.complete(ChatRequest(messages=[], completion_prompt=text, max_tokens=8, purpose="respond")))
    assert reply.usage.prompt_tokens == len(backend._ensure_runtime().model.tokenize(text, add_bos=True))
    assert 1 <= reply.usage.completion_tokens <= 8
    call = run(backend.complete(ChatRequest(messages=[{"role": "user", "content": "What is 12 times 7?"}], tools=[CALC], tool_choice="calculator")))
    assert call.usage.prompt_tokens > 0 and call.usage.completion_tokens > 0  # forced JSON text counts too


def test_a_few_shot_prompt_gets_the_expression(backend: GGUFBackend) -> None:
    from agent.prompts import call_prompt

    text = call_prompt("calculator", CALCULATOR[:6], "A mug costs 4 dollars. How much do 6 mugs cost?", [])
    reply = run(backend.complete(ChatRequest(messages=[], tools=[CALC], tool_choice="calculator", completion_prompt=text)))
    assert reply.tool_calls[0].arguments["expression"].replace(" ", "") in ("4*6", "6*4")


@pytest.mark.parametrize("max_tokens", [16, 384])
@pytest.mark.parametrize("choice", ["required", "book_hotel"])
def test_constrained_calls_close_inside_any_budget(backend: GGUFBackend, max_tokens: int, choice: str) -> None:
    request = ChatRequest(
        messages=[{"role": "user", "content": "Book 3 nights for Ada Lovelace, two rooms with sea view, and tell me the weather in Paris."}],
        tools=SLOPPY_TOOLS, tool_choice=choice, max_tokens=max_tokens, temperature=0.7,
    )
    reply = run(backend.complete(request))
    for call in reply.tool_calls:
        tool = next(t for t in SLOPPY_TOOLS if t["function"]["name"] == call.name)
        assert validate_against_schema(call.arguments, tool["function"]["parameters"]) == []
        json.dumps(call.arguments)
    if choice != "auto":
        assert reply.tool_calls


def test_free_text_stops_at_stop_strings_and_repetition(backend: GGUFBackend) -> None:
    reply = run(backend.complete(ChatRequest(messages=[], completion_prompt="Q: Say yes.\nA: Yes.\n\nQ: Say hello.\nA:", stop=["\n"], max_tokens=64)))
    assert "\n" not in reply.content and reply.content
    looping = run(backend.complete(ChatRequest(messages=[], completion_prompt="I'm sorry. " * 20, max_tokens=64)))
    assert looping.content.count("I'm sorry.") <= 1


def test_grammar_schema_is_compilable_for_sloppy_schemas(backend: GGUFBackend) -> None:
    runtime = backend._ensure_runtime()
    for tool in SLOPPY_TOOLS:
        runtime.grammar(grammar_schema(tool["function"]["parameters"], 8))


def test_the_model_file_is_shared_by_every_data_folder(tmp_path: Path) -> None:
    """A second data folder with the same MMAGENT_CACHE_DIR does not assemble the model again."""
    cache = tmp_path / "models"
    script = (
        "from agent.config import load_settings; from agent.llm.gguf import GGUFBackend; "
        "b = GGUFBackend.from_spec('bundled', load_settings()); b.warm_up(); print(b.describe()['source'])"
    )
    paths = []
    for name in ("one", "two"):
        env = {"MMAGENT_CACHE_DIR": str(cache), "MMAGENT_DATA_DIR": str(tmp_path / name), "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, check=True)
        paths.append(Path(out.stdout.strip()))
    assert paths[0] == paths[1] and paths[0].is_relative_to(cache)
    assert len(list((cache / "gguf").glob("*.gguf"))) == 1
    assert not (tmp_path / "one" / "cache").exists() or not list((tmp_path / "one" / "cache").rglob("*.gguf"))


@pytest.mark.parametrize(
    ("question", "value"),
    [("What is 17% of 2340?", "397.8"), ("一本书 28.5 元，买 6 本一共多少元？", "171"), ("A pen costs 1.25 dollars. How much do 8 pens cost?", "10")],
)
def test_the_readme_question_end_to_end(backend: GGUFBackend, tmp_path: Path, question: str, value: str) -> None:
    """route → act (few-shot, numbers-only expression) → observe → respond on the real model."""
    from langgraph.checkpoint.memory import InMemorySaver

    from agent.config import Settings
    from agent.runner import Agent, default_tools
    from agent.tool_router import ToolRouter
    from multimodal.text_embeddings import SentenceEncoder

    settings = Settings(data_dir=tmp_path)
    registry = default_tools(settings)
    agent = Agent(settings, backend, registry, ToolRouter(registry, SentenceEncoder()), InMemorySaver())
    result = asyncio.run(agent.arun(question, thread_id="readme"))
    assert result.error is None and [s["tool"] for s in result.steps] == ["calculator"]
    assert value in result.answer
    assert "#" not in result.answer and "Question:" not in result.answer
