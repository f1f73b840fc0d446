"""Tool registry: name, description, pydantic argument schema, example requests, and a function.

Each tool is exposed as an OpenAI function schema (for the models and the HTTP API) and as a
LangChain `StructuredTool`. Invoking a tool never raises: bad arguments and failures come back
as a `ToolResult` with `ok=False` and an error the model can read and act on.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

# Raised by tools for an expected failure (the message goes to the model as is); defined in the
# model layer, whose image loading raises it too.
from multimodal.errors import ToolError  # noqa: F401


@dataclass(frozen=True)
class ToolContext:
    """Who a tool call is for. Tools that keep per-user state (memory, uploads) declare a
    keyword parameter named `context` and receive this; it is never part of the model's schema."""

    user_id: str = "local"
    thread_id: str = "default"
    settings: Any = None  # agent.config.Settings; typed loosely to keep tools importable alone
    #: Tools that must be approved by the person before they run, and who asks them.
    needs_approval: frozenset[str] = frozenset()
    approve: Callable[[str, dict[str, Any]], Awaitable[bool]] | None = None
    #: The user's request of this turn: retrieve checks it too, since a small model's query can
    #: drop the very name the question is about (negative rejection, memory/knowledge/evidence.py).
    request: str = ""


class ToolArgs(BaseModel):
    """Base of every tool's argument schema. An unknown field is an error the model reads and
    can fix, not silently dropped (a misspelt `k` must not fall back to the default), and the
    schema tells the model so with `additionalProperties: false`."""

    model_config = ConfigDict(extra="forbid")


#: Errors often echo the caller's input; hostile input (a 1 MB key, thousands of fields) must
#: not turn into a 1 MB error in the model's context, the UI or an API response.
MAX_ERROR_CHARS = 1000
MAX_REPORTED_ERRORS = 5


class ToolOutput(BaseModel):
    """What a tool returns when it has more than a plain value, e.g. files it wrote."""

    result: Any
    artifacts: list[dict[str, Any]] = []
    #: The result as separate fields for programs (e.g. the calculator's number and exact form),
    #: besides `result`, the readable form the model sees. None: the tool has no such fields.
    data: dict[str, Any] | None = None


class ToolResult(BaseModel):
    ok: bool
    result: Any = None
    error: str | None = None
    artifacts: list[dict[str, Any]] = []
    data: dict[str, Any] | None = None  # see ToolOutput.data; never sent to the model

    def for_model(self, max_chars: int = 4000) -> str:
        """The text the model sees in the tool message (truncated with a note when long)."""
        if self.ok:
            text = self.result if isinstance(self.result, str) else json.dumps(self.result, ensure_ascii=False, default=str)
        else:
            text = f"ERROR: {self.error}"
        if len(text) > max_chars:
            text = text[:max_chars] + f"\n[truncated: {len(text) - max_chars} more characters not shown]"
        return text


@dataclass
class Tool:
    name: str
    description: str
    args_schema: type[BaseModel]
    func: Callable[..., Any]
    #: Example requests (English and Chinese) used by tool retrieval.
    examples: list[str] = field(default_factory=list)
    timeout_s: float | None = None
    #: Imports or loads what the first call needs (blocking). Apps run it in the background after
    #: start-up (`Agent.prepare`), so start-up does not wait for it and the first call need not.
    warm_up: Callable[[], None] | None = None

    def parameters(self) -> dict[str, Any]:
        return copy.deepcopy(self._parameters)  # callers may edit theirs (weak-model prompts do)

    @functools.cached_property
    def _parameters(self) -> dict[str, Any]:
        # Generated once per tool, not for every act step of every request.
        schema = self.args_schema.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return schema

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters()},
        }

    def validate(self, arguments: dict[str, Any] | str | None) -> BaseModel:
        """Parse and validate arguments; raises ToolError with a readable message."""
        if arguments is None:
            arguments = {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise ToolError(f"arguments for {self.name} are not valid JSON ({exc.msg} at position {exc.pos})") from None
            except RecursionError:
                raise ToolError(f"arguments for {self.name} are nested too deeply") from None
            except ValueError as exc:  # e.g. an integer literal over Python's 4300-digit limit
                raise ToolError(f"arguments for {self.name} are not valid JSON ({bounded(str(exc), 200)})") from None
        if not isinstance(arguments, dict):
            raise ToolError(f"arguments for {self.name} must be a JSON object, got {type(arguments).__name__}")
        try:
            return self.args_schema.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(bounded(f"invalid arguments for {self.name}: {format_validation_error(exc)}")) from None

    @functools.cached_property
    def wants_context(self) -> bool:
        # Looked up once per tool, not on every call.
        return "context" in inspect.signature(self.func).parameters

    async def ainvoke(
        self, arguments: dict[str, Any] | str | None, timeout_s: float | None = None, context: ToolContext | None = None
    ) -> ToolResult:
        limit = self.timeout_s or timeout_s
        try:
            kwargs = self.arguments(self.validate(arguments))
            if context and self.name in context.needs_approval:
                # Fails closed: a gated tool with no one to ask does not run.
                if context.approve is None:
                    raise ToolError(f"{self.name} needs the user's approval and there is no one to ask; do not call it again for this request")
                if not await context.approve(self.name, dict(kwargs)):
                    raise ToolError(f"the user declined to run {self.name}; do not call it again for this request")
            call = self.call(kwargs, context or ToolContext())
            value = await asyncio.wait_for(call, limit) if limit else await call
        except ToolError as exc:
            return ToolResult(ok=False, error=bounded(str(exc)))
        except TimeoutError:
            return ToolResult(ok=False, error=f"{self.name} did not finish within {limit:g} s")
        except Exception as exc:  # a tool bug must reach the model as text, not crash the run
            return ToolResult(ok=False, error=bounded(f"{self.name} failed: {type(exc).__name__}: {exc}"))
        if isinstance(value, ToolOutput):
            return ToolResult(ok=True, result=value.result, artifacts=value.artifacts, data=value.data)
        return ToolResult(ok=True, result=value)

    def arguments(self, validated: BaseModel) -> dict[str, Any]:
        """The validated arguments as keyword arguments (what the approval gate shows)."""
        return validated.model_dump()

    def call(self, kwargs: dict[str, Any], context: ToolContext) -> Awaitable[Any]:
        """The call itself, as an awaitable (tools from MCP servers override this)."""
        if self.wants_context:
            kwargs = {**kwargs, "context": context}
        if inspect.iscoroutinefunction(self.func):
            return self.func(**kwargs)
        return asyncio.to_thread(self.func, **kwargs)

    def invoke(self, arguments: dict[str, Any] | str | None, timeout_s: float | None = None) -> ToolResult:
        return asyncio.run(self.ainvoke(arguments, timeout_s))

    def as_langchain(self):
        """This tool as a LangChain StructuredTool (for LangChain/LangGraph users)."""
        from langchain_core.tools import StructuredTool

        def _run(**kwargs: Any) -> str:
            return self.invoke(kwargs).for_model()

        async def _arun(**kwargs: Any) -> str:
            return (await self.ainvoke(kwargs)).for_model()

        return StructuredTool.from_function(
            func=_run, coroutine=_arun, name=self.name, description=self.description, args_schema=self.args_schema
        )


def format_validation_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:MAX_REPORTED_ERRORS]:
        # Field names can be the caller's own keys (extra fields): shown short and escaped.
        where = ".".join(_short(p) for p in err["loc"]) or "(arguments)"
        parts.append(f"{where}: {err['msg']}")
    if len(errors) > MAX_REPORTED_ERRORS:
        parts.append(f"(and {len(errors) - MAX_REPORTED_ERRORS} more)")
    return "; ".join(parts)


def _short(part: Any, limit: int = 60) -> str:
    text = str(part)
    if not text.isprintable():
        text = ascii(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An error message cut to `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters]"


class ToolRegistry:
    """The tools one app instance offers. Built per app; never a module-level singleton."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(sorted(self._tools)) or "none"
            raise ToolError(f"unknown tool {_short(name, 100)!r}; available tools: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self):
        # A snapshot: MCP tools are registered on the event loop while routing may iterate in a thread.
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return list(self._tools)

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        """The named tools only (unknown names are ignored: a tool may be gone since the UI listed it)."""
        wanted = set(names)
        return ToolRegistry(t for n, t in self._tools.items() if n in wanted)

    def openai_schemas(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        chosen = self._tools.values() if names is None else [self.get(n) for n in names]
        return [t.openai_schema() for t in chosen]

    async def ainvoke(
        self, name: str, arguments: dict[str, Any] | str | None, timeout_s: float | None = None, context: ToolContext | None = None
    ) -> ToolResult:
        try:
            tool = self.get(name)
        except ToolError as exc:
            return ToolResult(ok=False, error=str(exc))
        return await tool.ainvoke(arguments, timeout_s, context)
