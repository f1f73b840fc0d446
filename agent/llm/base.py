"""The one interface every LLM backend implements.

Messages travel in OpenAI chat format (role/content/tool_calls/tool_call_id): every backend
speaks it or converts from it, and it is what `scripted:` files contain.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

Purpose = Literal["plan", "act", "reflect", "respond"]
TokenCallback = Callable[[str], None]


class LLMError(RuntimeError):
    """A backend could not produce a reply (missing model, server down, script exhausted).

    The message is written for the user: it says what failed and what to do about it.
    """


class ToolCall(BaseModel):
    id: str = Field(default_factory=lambda: "call_" + uuid.uuid4().hex[:12])
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }


class ChatRequest(BaseModel):
    messages: list[dict[str, Any]]
    # OpenAI function-tool schemas: {"type": "function", "function": {name, description, parameters}}
    tools: list[dict[str, Any]] = Field(default_factory=list)
    # "auto": call tools or answer; "required": must call one of `tools`; "none": answer only;
    # any other string: must call the tool of that name.
    tool_choice: str = "auto"
    # When set, the reply's content must be JSON valid against this schema (local backends
    # enforce it with a grammar; remote ones are asked for it and validated by the caller).
    response_schema: dict[str, Any] | None = None
    temperature: float = 0.0
    max_tokens: int = 384
    purpose: Purpose = "act"


class ChatReply(BaseModel):
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    # Arguments that were not valid JSON, kept verbatim so the caller can report them.
    raw_tool_arguments: dict[str, str] = Field(default_factory=dict)


def reply_from_openai(content: str | None, calls: list[dict[str, Any]]) -> ChatReply:
    """A ChatReply from OpenAI-style calls ({id, name, arguments}); arguments may be a JSON
    string (kept verbatim in `raw_tool_arguments` when it does not parse to an object)."""
    tool_calls, raw = [], {}
    for i, call in enumerate(calls):
        call_id = call.get("id") or f"call_{i}"
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                pass
        if not isinstance(arguments, dict):
            raw[call_id] = arguments if isinstance(arguments, str) else json.dumps(arguments)
            arguments = {}
        tool_calls.append(ToolCall(id=call_id, name=str(call.get("name") or ""), arguments=arguments))
    return ChatReply(content=content or "", tool_calls=tool_calls, raw_tool_arguments=raw)


class ChatBackend(ABC):
    """A chat model. Instances are per app (never module globals) and safe to call concurrently."""

    #: The spec this backend was built from, e.g. "bundled" or "openai:gpt-4o-mini".
    spec: str
    #: True for models strong enough to choose among several tools on their own.
    chooses_tools: bool = True
    #: True when tool arguments are produced under a grammar and are always schema-valid.
    constrained: bool = False

    @abstractmethod
    async def complete(
        self, request: ChatRequest, *, on_token: TokenCallback | None = None, session: str = "default"
    ) -> ChatReply:
        """Produce one assistant message. `session` keys per-conversation state (scripted cursors)."""

    def describe(self) -> dict[str, Any]:
        """What `mmagent doctor` prints about this backend."""
        return {"spec": self.spec}

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients or models."""
