"""The real bundled Gemma 3 270M: cache creation on first load, reuse afterwards, constrained calls.

One session-scoped cache folder, so the slow first load (GGUF -> dequantised cache) runs once.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from agent.llm.base import ChatRequest
from agent.llm.local import LocalBackend
from multimodal.llm_loader import BUNDLED_CACHE_NAME, LoadedLM, load_bundled_model

pytestmark = pytest.mark.slow

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression and return the number.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "e.g. 3*(4+5)"}},
            "required": ["expression"],
        },
    },
}


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid += 1


@pytest.fixture(scope="session")
def bundled_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundled-cache")


@pytest.fixture(scope="session")
def loads(bundled_cache: Path) -> dict[str, Any]:
    folder = bundled_cache / BUNDLED_CACHE_NAME
    # What a first load killed by an older build could leave behind: a folder without the
    # completion marker. It must be rebuilt, not trusted.
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    # ...and the temporary folder of a first load that was killed (its pid is gone).
    stale = bundled_cache / f".{BUNDLED_CACHE_NAME}.{_dead_pid()}.deadbeef.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")

    started = time.perf_counter()
    first = load_bundled_model(bundled_cache, "cpu")
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    second = load_bundled_model(bundled_cache, "cpu")
    second_s = time.perf_counter() - started
    print(f"\nbundled load: first {first_s:.1f} s ({first.origin}), second {second_s:.1f} s ({second.origin})")
    return {"first": first, "second": second, "folder": folder}


def test_first_load_writes_cache_and_second_reads_it(loads: dict[str, Any], bundled_cache: Path) -> None:
    folder: Path = loads["folder"]
    first: LoadedLM = loads["first"]
    second: LoadedLM = loads["second"]
    assert first.origin == "gguf" and second.origin == "cache"
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "mmagent-bundled.json"} <= {
        p.name for p in folder.iterdir()
    }
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "gemma3_text"
    # The atomic write leaves no temporary folders or partial files behind.
    leftovers = [p.name for p in bundled_cache.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    assert second.source == str(folder) and second.device == "cpu"


def test_constrained_calculator_call(loads: dict[str, Any]) -> None:
    backend = LocalBackend("bundled", loads["second"])
    assert backend.chooses_tools is False and backend.constrained is True
    messages = [{"role": "user", "content": "What is 12 times 7? Use the calculator."}]
    for choice in ("calculator", "required", "auto"):
        started = time.perf_counter()
        reply = asyncio.run(
            backend.complete(ChatRequest(messages=messages, tools=[CALCULATOR], tool_choice=choice, max_tokens=128))
        )
        print(f"\n{choice}: {time.perf_counter() - started:.2f} s -> {reply}")
        if choice == "auto" and not reply.tool_calls:
            assert reply.content
            continue
        (call,) = reply.tool_calls
        assert call.name == "calculator"
        assert set(call.arguments) == {"expression"} and isinstance(call.arguments["expression"], str)


def test_free_text_reply(loads: dict[str, Any]) -> None:
    backend = LocalBackend("bundled", loads["second"])
    pieces: list[str] = []

    async def go() -> Any:
        return await backend.complete(
            ChatRequest(messages=[{"role": "user", "content": "Name a colour."}], max_tokens=24), on_token=pieces.append
        )

    reply = asyncio.run(go())
    assert "".join(pieces) == reply.content
    assert "\nUser:" not in reply.content
    assert backend.describe()["origin"] == "cache"


def test_graph_end_to_end_through_constrained_tool_call(loads: dict[str, Any], tmp_path: Path) -> None:
    """plan → act (router picks the calculator, the model fills its arguments under the
    grammar) → observe → act (nothing left to call) → respond, on the real bundled model."""
    from langgraph.checkpoint.memory import InMemorySaver

    from agent.config import Settings
    from agent.runner import Agent, default_tools
    from agent.tool_router import ToolRouter
    from multimodal.text_embeddings import SentenceEncoder

    settings = Settings(data_dir=tmp_path, limits={"max_new_tokens": 64})
    backend = LocalBackend("bundled", loads["second"], settings)
    registry = default_tools(settings)
    agent = Agent(settings, backend, registry, ToolRouter(registry, SentenceEncoder()), InMemorySaver())
    events: list[dict[str, Any]] = []
    result = asyncio.run(agent.arun("What is 12 times 7?", thread_id="e2e", on_event=events.append))
    print(f"\nbundled e2e: {result.model_dump()}")
    assert result.error is None
    assert result.plan and all(isinstance(s, str) and s for s in result.plan)
    (step,) = result.steps
    assert step["tool"] == "calculator"
    assert set(step["arguments"]) == {"expression"} and isinstance(step["arguments"]["expression"], str)
    # The answer carries the real result, never an imitated tool call.
    assert "84" in result.answer and "[called tool" not in result.answer
    kinds = [e["type"] for e in events]
    assert kinds[0] == "plan" and "tool_call" in kinds and kinds[-1] == "final"
