"""Shared test helpers: scripted-model files and isolated settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def say(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def call(name: str, arguments: dict[str, Any] | str, call_id: str | None = None) -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": call_id or f"call_{name}_{abs(hash(args)) % 10_000}", "type": "function", "function": {"name": name, "arguments": args}}


def calls(*items: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": list(items)}


def write_script(path: Path, *messages: dict[str, Any]) -> Path:
    path.write_text("\n".join(json.dumps(m, ensure_ascii=False) for m in messages) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """Every test writes under its own data folder, and sees no OpenAI settings of the machine."""
    folder = tmp_path / "data"
    monkeypatch.setenv("MMAGENT_DATA_DIR", str(folder))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MMAGENT_LLM", raising=False)
    monkeypatch.chdir(tmp_path)
    return folder
