"""Events the graph streams out while it runs (for the CLI, the UI and the HTTP API).

Nodes emit them through LangGraph's custom stream (`stream_mode="custom"`); consumers get
plain dicts with a `type` field, so they can be sent as JSON or server-sent events as is.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.config import get_stream_writer
from pydantic import BaseModel

from agent.llm.base import clean_text


class PlanEvent(BaseModel):
    type: Literal["plan"] = "plan"
    steps: list[str]


class ToolCallEvent(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: dict[str, Any]


class ToolResultEvent(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    id: str
    name: str
    ok: bool
    result: Any = None
    error: str | None = None
    artifacts: list[dict[str, Any]] = []
    seconds: float


class ReflectionEvent(BaseModel):
    type: Literal["reflection"] = "reflection"
    text: str
    plan: list[str]


class TokenEvent(BaseModel):
    type: Literal["token"] = "token"
    node: str
    text: str


class FinalEvent(BaseModel):
    type: Literal["final"] = "final"
    answer: str
    plan: list[str]
    steps: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]
    error: str | None = None
    #: The passages the answer cites: {"n", "source", "heading", "chunk_id"} (agent/grounding.py).
    citations: list[dict[str, Any]] = []


Event = PlanEvent | ToolCallEvent | ToolResultEvent | ReflectionEvent | TokenEvent | FinalEvent


def emit(event: Event) -> None:
    """Send an event to whoever streams this run; a no-op outside a streaming run."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a graph run (e.g. a unit test of a node helper)
        return
    writer(event.model_dump())


def token_emitter(node: str):
    """An `on_token` callback for backends that turns tokens into TokenEvents."""

    def on_token(text: str) -> None:
        if text:
            # Streamed pieces bypass ChatReply's clean-up; a lone surrogate would break the SSE stream.
            emit(TokenEvent(node=node, text=clean_text(text)))

    return on_token
