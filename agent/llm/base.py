"""The one interface every LLM backend implements.

Messages travel in OpenAI chat format (role/content/tool_calls/tool_call_id): every backend
speaks it or converts from it, and it is what `scripted:` files contain.
"""

from __future__ import annotations

import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

# Defined in the model layer, which raises it too (model loading); this is its agent-side name.
from multimodal.errors import LLMError  # noqa: F401

Purpose = Literal["plan", "act", "reflect", "respond"]
TokenCallback = Callable[[str], None]


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:12]


def clean_text(text: str) -> str:
    """Model text with lone UTF-16 surrogates (a broken "\\ud83d" escape in a model's JSON)
    replaced by U+FFFD: they cannot be encoded as UTF-8, so a JSON response, an SSE stream or a
    terminal would fail on them long after the model produced them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # surrogatepass keeps valid pairs (they recombine) and "replace" marks the lone ones.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _clean_value(value: Any) -> Any:
    try:
        dumped = json.dumps(value, ensure_ascii=False)
        dumped.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return json.loads(clean_text(dumped))
    except (TypeError, ValueError, RecursionError):
        return value  # not JSON data at all: nothing a model produced, leave it to the caller


class ToolCall(BaseModel):
    id: str = Field(default_factory=new_call_id)
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", "name")
    @classmethod
    def _text(cls, value: str) -> str:
        return clean_text(value)

    @field_validator("arguments")
    @classmethod
    def _arguments(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _clean_value(value)

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
    # For base models (backends with `completion_style`): a few-shot text to continue instead
    # of the rendered conversation; the reply follows its last line. Chat models ignore it.
    completion_prompt: str | None = None
    # Free text ends before any of these strings.
    stop: list[str] = Field(default_factory=list)


class Usage(BaseModel):
    """Tokens of one model call, as the backend counted them (None on a reply: not counted)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatReply(BaseModel):
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    # Arguments that were not valid JSON, kept verbatim so the caller can report them.
    raw_tool_arguments: dict[str, str] = Field(default_factory=dict)
    usage: Usage | None = None

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        return clean_text(value)

    @field_validator("raw_tool_arguments")
    @classmethod
    def _raw(cls, value: dict[str, str]) -> dict[str, str]:
        return {clean_text(k): clean_text(v) for k, v in value.items()}


def usage_of(request: ChatRequest, reply: ChatReply) -> tuple[int, int, bool]:
    """(prompt tokens, completion tokens, estimated?) of a call: the backend's own count, else
    an estimate from the text (memory/tokens.py), for backends that count nothing (scripted)."""
    if reply.usage is not None:
        return reply.usage.prompt_tokens, reply.usage.completion_tokens, False
    from memory.tokens import MESSAGE_OVERHEAD, estimate_tokens

    prompt_text = request.completion_prompt
    if prompt_text is not None:
        prompt = estimate_tokens(prompt_text)
    else:
        prompt = sum(estimate_tokens(json.dumps(m.get("content") or "", ensure_ascii=False)) + MESSAGE_OVERHEAD for m in request.messages)
        prompt += sum(estimate_tokens(json.dumps(t, ensure_ascii=False)) for t in request.tools)
    completion = estimate_tokens(reply.content) + sum(estimate_tokens(json.dumps(c.to_openai(), ensure_ascii=False)) for c in reply.tool_calls)
    return prompt, completion, True


def _finite(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is not a finite number")
    return value


def _reject_constant(name: str) -> Any:
    # NaN and Infinity parse in Python but are not JSON: sent back in the history, a strict
    # server would reject every later request of the thread.
    raise ValueError(f"{name} is not valid JSON")


def parse_arguments(text: str) -> Any:
    """Tool-call arguments from a model's JSON string; raises ValueError when they are not strict,
    finite JSON (too deeply nested counts as not JSON: the parser would run out of stack)."""
    if not text.strip():
        return {}
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def bad_arguments_error(name: str, raw: str) -> str:
    """What the model and the user are told about arguments kept in `raw_tool_arguments`."""
    try:
        value = parse_arguments(raw)
    except ValueError:
        return f"arguments for {name} are not valid JSON: {raw[:200]!r}"
    return f"arguments for {name} must be a JSON object, got {type(value).__name__}: {raw[:200]!r}"


def reply_from_openai(content: str | None, calls: list[dict[str, Any]]) -> ChatReply:
    """A ChatReply from OpenAI-style calls ({id, name, arguments}); arguments may be a JSON
    string (kept verbatim in `raw_tool_arguments` when it does not parse to an object).

    Whatever the model sent, every call gets a distinct non-empty string id (a missing or
    repeated id would leave a tool message without its call, which every model API rejects)."""
    tool_calls, raw, seen = [], {}, set()
    for i, call in enumerate(calls):
        call = call if isinstance(call, dict) else {}
        call_id = clean_text(str(call.get("id") or "")) or f"call_{i}"
        if call_id in seen:
            call_id = new_call_id()
        seen.add(call_id)
        given = call.get("arguments", {})
        arguments = given
        if isinstance(given, str):
            try:
                arguments = parse_arguments(given)
            except ValueError:
                pass
        if not isinstance(arguments, dict):
            raw[call_id] = given if isinstance(given, str) else _dumps(given)
            arguments = {}
        tool_calls.append(ToolCall(id=call_id, name=str(call.get("name") or ""), arguments=arguments))
    return ChatReply(content=content if isinstance(content, str) else "", tool_calls=tool_calls, raw_tool_arguments=raw)


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return repr(value)[:1000]


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


def tool_calls_in_text(content: str, tool_names: list[str]) -> list[dict[str, Any]]:
    """Tool calls a model wrote as text instead of native calls, as OpenAI-style calls for
    `reply_from_openai`; [] when the text is anything else.

    OpenAI-compatible servers started without a tool-call parser (vLLM, llama.cpp) hand such
    calls back as content. Only a reply that is nothing but calls (bare JSON, a ```json fence,
    or Hermes/Qwen <tool_call> tags) naming offered tools counts, so an answer that merely
    shows JSON stays an answer."""
    text = content.strip()
    if not text or not tool_names:
        return []
    tagged = _TAGGED.findall(text)
    if tagged:
        if _TAGGED.sub("", text).strip():
            return []
        pieces = tagged
    else:
        fenced = _FENCE.match(text)
        pieces = [fenced.group(1) if fenced else text]
    calls: list[dict[str, Any]] = []
    for piece in pieces:
        try:
            value = json.loads(piece)
        except (ValueError, RecursionError):
            return []
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict):
                return []
            item = item.get("function") if isinstance(item.get("function"), dict) else item
            name = item.get("name")
            arguments = item.get("arguments", item.get("parameters", {}))
            if name not in tool_names or not isinstance(arguments, dict | str):
                return []
            calls.append({"name": name, "arguments": arguments})
    return calls


class ChatBackend(ABC):
    """A chat model. Instances are per app (never module globals) and safe to call concurrently."""

    #: The spec this backend was built from, e.g. "bundled" or "openai:gpt-4o-mini".
    spec: str
    #: True for models strong enough to choose among several tools on their own.
    chooses_tools: bool = True
    #: True when tool arguments are produced under a grammar and are always schema-valid.
    constrained: bool = False
    #: True for base models that continue `ChatRequest.completion_prompt` (few-shot text).
    completion_style: bool = False

    @abstractmethod
    async def complete(
        self, request: ChatRequest, *, on_token: TokenCallback | None = None, session: str = "default"
    ) -> ChatReply:
        """Produce one assistant message. `session` keys per-conversation state (scripted cursors)."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Load what the first call would load (blocking; callers run it in a thread)."""

    def describe(self) -> dict[str, Any]:
        """What `mmagent doctor` prints about this backend."""
        return {"spec": self.spec}

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients or models."""
