"""Shared pieces of the abuse tests (tests/test_abuse_*.py): the registry under attack, the
checks every hostile call must pass, and the server as `mmagent serve` runs it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from agent.config import Settings
from agent.runner import default_tools, with_memory_tools
from memory.long_term import LongTermMemory
from tests.api_support import api_settings, running
from tests.conftest import write_script
from tools.registry import ToolRegistry, ToolResult

#: What a failure may cost the model's context (the registry cuts errors at 1000 characters).
ERROR_LIMIT = 1100
MODEL_LIMIT = 4000
IMAGE_MODELS = ("diffusion", "clip", "caption", "vqa")


def fuzz_settings(data_dir: Path, **overrides: Any) -> Settings:
    """No web, no long-term memory start-up, and image models that are simply not there: the
    image tools must still answer with a readable error."""
    missing = {key: str(data_dir / "no-such-model" / key) for key in IMAGE_MODELS}
    return Settings(data_dir=data_dir, knowledge={"web_search": False}, memory={"long_term": False}, models=missing, **overrides)


def full_registry(settings: Settings, knowledge=None, memory: LongTermMemory | None = None) -> ToolRegistry:
    """What `open_agent` offers: the default tools plus remember/recall/forget."""
    return with_memory_tools(default_tools(settings, knowledge=knowledge), memory or LongTermMemory({}, None))


def png(size=(12, 10), color=(30, 120, 200), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def assert_readable(result: Any, tool: str) -> None:
    """A ToolResult whose model text is bounded, and whose error (if any) is short and clean."""
    assert isinstance(result, ToolResult)
    text = result.for_model(MODEL_LIMIT)
    assert len(text) <= MODEL_LIMIT + 80
    # What the API and the checkpoint store write: plain UTF-8 JSON.
    json.dumps(result.model_dump(), ensure_ascii=False, default=str).encode("utf-8")
    if not result.ok:
        error = result.error
        assert isinstance(error, str) and error.strip(), f"{tool}: empty error"
        assert len(error) <= ERROR_LIMIT, f"{tool}: {len(error)}-character error: {error[:200]!r}"
        assert "Traceback" not in error and 'File "' not in error, error
        assert error.count("\n") <= 3, error
        assert not result.artifacts


@contextmanager
def api_server(tmp_path: Path, *replies, models: dict[str, Any] | None = None, **settings) -> Iterator[httpx.Client]:
    """The server as `mmagent serve` runs it (its uvicorn options), scripted, with no image
    weights, no web, and a 64 KB request limit."""
    from apps.server import HTTP_OPTIONS, create_app

    missing = {key: str(tmp_path / "no-such-model" / key) for key in IMAGE_MODELS}
    settings.setdefault("server", {"max_request_bytes": 64 * 1024})
    config = api_settings(tmp_path / "data", models={**missing, **(models or {})}, knowledge={"web_search": False}, **settings)
    app = create_app(config, llm=f"scripted:{write_script(tmp_path / 'script.jsonl', *replies)}", ui=False)
    with running(app, **HTTP_OPTIONS) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client
