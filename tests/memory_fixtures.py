"""Shared pieces of the memory tests: one sentence encoder per session, agents with memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agent.config import Settings
from agent.llm.scripted import ScriptedBackend
from agent.runner import Agent, with_memory_tools
from memory.long_term import LongTermMemory
from memory.store import open_collections
from tools.calculator import calculator_tool
from tools.registry import ToolRegistry


@pytest.fixture(scope="session")
def encoder():
    from multimodal.text_embeddings import SentenceEncoder

    enc = SentenceEncoder()
    enc.load()
    return enc


def memory_agent(script: Path, encoder, settings: Settings | None = None, memory: LongTermMemory | None = None) -> Agent:
    """An in-memory agent with long-term memory (its own, or `memory` to share one store as a
    server process does) and the memory tools; no thread catalog."""
    memory = memory or LongTermMemory(open_collections(None), encoder)
    registry = with_memory_tools(ToolRegistry([calculator_tool()]), memory)
    return Agent(settings or Settings(), ScriptedBackend(script), registry, None, InMemorySaver(), memory=memory)


def prompts_for(agent: Agent, purpose: str, session: str | None = None) -> list[str]:
    """The system prompts the scripted model received for `purpose` calls."""
    return [
        r.messages[0]["content"]
        for s, r in agent.backend.requests
        if r.purpose == purpose and (session is None or s == session)
    ]
