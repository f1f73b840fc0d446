"""Tools of external MCP servers as registry tools (`McpTool`), and the per-app `McpHub`.

An MCP tool joins the registry like ours: its JSON schema is what the models see and is
checked (jsonschema) before a call; tool retrieval ranks it on its description; the approval
gate covers it when its server is `ask_first`; every failure (server missing, crashed, slow,
bad result, the tool's own error) comes back as a `ToolResult` error the model can read.

Names say the server: `<server>__<tool>`, fitted to the OpenAI function-name rule
`^[A-Za-z0-9_-]{1,64}$` (other characters become `_`; a long name is cut and given a short
hash so that two long names stay apart).

Results: text as text (JSON text, and `structuredContent`, as JSON values); images are
checked and saved as artifacts, and the model reads their reference, never base64; embedded
text resources as their text, binary ones as a line saying what they were.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tools.mcp_client import McpConnection, McpServerError
from tools.registry import Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, bounded

SEPARATOR = "__"
#: A server that failed to start is tried again after this long (at the next turn or listing).
RETRY_AFTER_S = 30.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_NAME = 64


def tool_name(server: str, tool: str) -> str:
    name = f"{server}{SEPARATOR}{_UNSAFE.sub('_', tool)}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(tool.encode()).hexdigest()[:8]
    return f"{name[: _MAX_NAME - 9]}_{digest}"


class _Arguments(BaseModel):
    """Validated arguments of an MCP tool: the JSON object itself (the schema is the server's)."""

    model_config = ConfigDict(extra="allow")


@dataclass
class McpTool(Tool):
    server: str = ""
    remote_name: str = ""
    input_schema: dict[str, Any] = field(default_factory=dict)
    ask_first: bool = False
    connection: McpConnection | None = None
    settings: Any = None

    def parameters(self) -> dict[str, Any]:
        return self.input_schema

    def validate(self, arguments: dict[str, Any] | str | None) -> BaseModel:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        if arguments is None or isinstance(arguments, str) and not arguments.strip():
            arguments = {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except (ValueError, RecursionError) as exc:
                raise ToolError(f"arguments for {self.name} are not valid JSON ({bounded(str(exc), 200)})") from None
        if not isinstance(arguments, dict):
            raise ToolError(f"arguments for {self.name} must be a JSON object, got {type(arguments).__name__}")
        try:
            errors = sorted(Draft202012Validator(self.input_schema).iter_errors(arguments), key=lambda e: list(e.path))
        except SchemaError as exc:  # the server's schema is broken: say so rather than guess
            raise ToolError(f"{self.name}: the MCP server {self.server!r} gave an invalid schema ({bounded(exc.message, 200)})") from None
        if errors:
            parts = [f"{'.'.join(str(p) for p in e.path) or '(arguments)'}: {e.message}" for e in errors[:5]]
            raise ToolError(bounded(f"invalid arguments for {self.name}: {'; '.join(parts)}"))
        return _Arguments(**arguments)

    def arguments(self, validated: BaseModel) -> dict[str, Any]:
        return dict(validated.model_extra or {})

    def call(self, kwargs: dict[str, Any], context: ToolContext) -> Awaitable[Any]:
        return self._call(kwargs)

    async def _call(self, arguments: dict[str, Any]) -> Any:
        try:
            result = await self.connection.call(self.remote_name, arguments, self.connection.config.timeout_s)
        except McpServerError as exc:
            raise ToolError(str(exc)) from None
        return convert_result(result, self.settings, f"mcp:{self.server}/{self.remote_name}")

    def as_langchain(self):
        from langchain_core.tools import StructuredTool

        async def _arun(**kwargs: Any) -> str:
            return (await self.ainvoke(kwargs)).for_model()

        # A JSON-schema dict as args_schema: LangChain passes the arguments through as given.
        return StructuredTool(name=self.name, description=self.description, args_schema=self.input_schema, coroutine=_arun)


def convert_result(result: Any, settings: Any, source: str) -> ToolOutput:
    """A `CallToolResult` as our result: text/JSON for the model, images as artifacts."""
    texts: list[str] = []
    artifacts: list[dict[str, Any]] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            texts.append(block.text)
        elif kind == "image":
            artifact = _image_artifact(block.data, block.mime_type, settings, source)
            artifacts.append(artifact)
            texts.append(f"[image saved as {artifact['ref']} ({artifact['width']}x{artifact['height']})]")
        elif kind == "audio":
            texts.append(f"[audio ({block.mime_type}) not shown]")
        elif kind == "resource_link":
            texts.append(f"[resource {block.uri}" + (f" ({block.name})" if getattr(block, "name", None) else "") + "]")
        elif kind == "resource":
            texts.append(_embedded(block.resource, settings, source, artifacts))
        else:
            texts.append(f"[{kind or 'unknown'} content not shown]")
    text = "\n".join(t for t in texts if t)
    if result.is_error:
        raise ToolError(bounded(text or "the tool reported an error without a message"))
    if result.structured_content is not None and not artifacts:
        return ToolOutput(result=result.structured_content, artifacts=artifacts)
    return ToolOutput(result=_maybe_json(text) if len(texts) == 1 else text, artifacts=artifacts)


def _embedded(resource: Any, settings: Any, source: str, artifacts: list[dict[str, Any]]) -> str:
    mime = getattr(resource, "mime_type", None) or ""
    if getattr(resource, "text", None) is not None:
        return resource.text
    if mime.startswith("image/"):
        artifact = _image_artifact(resource.blob, mime, settings, source)
        artifacts.append(artifact)
        return f"[image {resource.uri} saved as {artifact['ref']}]"
    size = len(resource.blob or "") * 3 // 4
    return f"[binary resource {resource.uri} ({mime or 'unknown type'}, about {size} bytes) not shown]"


def _image_artifact(data: str, mime: str, settings: Any, source: str) -> dict[str, Any]:
    from multimodal.artifacts import save_image_bytes

    if settings is None:
        raise ToolError("the tool returned an image but this app has no artifacts folder")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ToolError(f"{source} returned an image that is not valid base64") from None
    return save_image_bytes(settings, raw, {"source": source, "mime_sent": mime}, label=f"the image from {source}")


def _maybe_json(text: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            pass
    return text


class McpHub:
    """The configured MCP servers of one app: connections, their tools in the registry, status."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        log_dir = Path(settings.data_dir) / "mcp"
        self.connections = {
            name: McpConnection(name, config, log_dir) for name, config in settings.mcp.servers.items() if config.enabled
        }
        self._attached: set[str] = set()
        self._failed_at: dict[str, float] = {}

    def __bool__(self) -> bool:
        return bool(self.connections)

    async def attach(self, registry: ToolRegistry) -> dict[str, str | None]:
        """Start the servers not listed yet (concurrently) and register their tools; returns
        server -> error (None when up). A server that fails is tried again at the next attach."""
        todo = [c for name, c in self.connections.items() if name not in self._attached]
        outcomes = await asyncio.gather(*(self._attach_one(c, registry) for c in todo))
        return dict(zip((c.name for c in todo), outcomes))

    async def _attach_one(self, connection: McpConnection, registry: ToolRegistry) -> str | None:
        failed = self._failed_at.get(connection.name)
        if failed is not None and time.monotonic() - failed < RETRY_AFTER_S:
            return connection.last_error  # not every turn pays for a server that just failed to start
        try:
            tools = await connection.connect()
        except McpServerError as exc:
            self._failed_at[connection.name] = time.monotonic()
            return str(exc)
        self._failed_at.pop(connection.name, None)
        for remote in tools:
            tool = self.make_tool(connection, remote)
            if tool.name not in registry:
                registry.register(tool)
        self._attached.add(connection.name)
        return None

    def make_tool(self, connection: McpConnection, remote: Any) -> McpTool:
        config = connection.config
        description = (remote.description or remote.name).strip()
        schema = dict(remote.input_schema or {"type": "object"})
        schema.setdefault("type", "object")
        return McpTool(
            name=tool_name(connection.name, remote.name),
            description=f"{description} (MCP server {connection.name})",
            args_schema=_Arguments,
            func=_unused,
            examples=[],
            # The outer bound; the connection bounds the call itself by `timeout_s`, so a
            # restart of a dead server does not eat into the call's own time.
            timeout_s=config.timeout_s + config.start_timeout_s,
            server=connection.name,
            remote_name=remote.name,
            input_schema=schema,
            ask_first=config.ask_first,
            connection=connection,
            settings=self.settings,
        )

    def ask_first(self, registry: ToolRegistry) -> frozenset[str]:
        return frozenset(t.name for t in registry if isinstance(t, McpTool) and t.ask_first)

    def status(self) -> list[dict[str, Any]]:
        return [c.status() for c in self.connections.values()]

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.connections.values()), return_exceptions=True)


def _unused(**_: Any) -> None:  # McpTool.call replaces the function; the dataclass wants one
    raise ToolError("internal error: an MCP tool was called without its server")


def server_of(tool: Tool) -> str | None:
    """The MCP server a registry tool comes from (None: one of ours)."""
    return tool.server if isinstance(tool, McpTool) else None


def listing(registry: ToolRegistry) -> list[dict[str, Any]]:
    """OpenAI function schemas of every tool; an MCP server's tools also name their `server`
    (an extra field, which OpenAI-style clients ignore)."""
    out = []
    for tool in registry:
        schema = tool.openai_schema()
        if isinstance(tool, McpTool):
            schema["server"] = tool.server
        out.append(schema)
    return out
