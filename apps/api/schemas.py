"""Request bodies of the API, validated at the edge.

The chat models follow OpenAI's wire format and ignore parameters they do not use (top_p,
seed, ...), as OpenAI-compatible servers do, so unchanged clients keep working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MODEL_ID = "mmagent"


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    image_url: ImageUrl | None = None

    @field_validator("image_url", mode="before")
    @classmethod
    def _bare_url(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value  # some clients send the URL alone


class FunctionCall(BaseModel):
    name: str = Field(min_length=1)
    # A JSON string per OpenAI; some clients send the object itself.
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.role in ("system", "developer", "user") and self.content is None:
            raise ValueError(f"a {self.role} message needs content")
        return self


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1, max_length=2000)
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=65536)
    max_completion_tokens: int | None = Field(None, ge=1, le=65536)
    n: int = Field(1, ge=1, le=1, description="One choice per request.")
    user: str | None = None
    response_format: dict[str, Any] | None = None


class RunRequest(BaseModel):
    """`POST /v1/threads/{id}/runs`: one user turn on a thread."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, max_length=100_000)
    images: list[str] = Field(default_factory=list, max_length=16, description="data: URLs, or files in the artifacts folder.")
    tools: list[str] | None = Field(None, description="Limit this run to these built-in tools (default: all).")

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("input is blank")
        return value
