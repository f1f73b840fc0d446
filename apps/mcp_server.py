"""Our tools for other MCP clients: `mmagent mcp` (stdio) and `/mcp` in `mmagent serve`
(streamable HTTP, behind the same API key as /v1).

Built on the official SDK's low-level `Server`: the tools keep their own JSON schemas and
validation (the registry's), so a client sees exactly what our models see. Served: the
registry's own tools (calculator, retrieve, search, the image tools, the memory tools), not the
tools of MCP servers we are a client of (we are no proxy). The memory tools act for the
caller's user: the per-user key's user over HTTP (else the `X-MMAGENT-User` header or "api",
as on /v1), `--user` over stdio; one client never sees another user's memories.

Results: `ok` results as text (JSON text for structured values, also as `structuredContent`
when they are an object); artifacts as image content plus their reference; failures (bad
arguments, the tool's own error, an unknown tool) as `isError` results with a readable message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.mcp_tools import McpTool
from tools.registry import ToolContext, ToolRegistry

log = logging.getLogger(__name__)

SERVER_NAME = "mmagent"
USER_STATE = "mmagent_user"


def served_tools(registry: ToolRegistry) -> list[Any]:
    return [t for t in registry if not isinstance(t, McpTool)]


def build_server(registry_of: Callable[[], ToolRegistry], settings: Any, user_of: Callable[[Any], str]):
    """An MCP `Server` over the registry; `user_of(ctx)` says whose call it is."""
    import mcp_types as types
    from mcp.server import Server

    def listing() -> list[types.Tool]:
        return [types.Tool(name=t.name, description=t.description, input_schema=t.parameters()) for t in served_tools(registry_of())]

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listing())

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        registry = registry_of()
        tool = next((t for t in served_tools(registry) if t.name == params.name), None)
        if tool is None:
            known = ", ".join(t.name for t in served_tools(registry))
            return _error(f"unknown tool {params.name[:100]!r}; available tools: {known}")
        context = ToolContext(user_id=user_of(ctx), thread_id="mcp", settings=settings)
        result = await tool.ainvoke(params.arguments or {}, settings.limits.tool_timeout_s, context)
        if not result.ok:
            return _error(result.error or "the tool failed")
        return _success(result.result, result.artifacts, settings)

    def input_schema(name: str):
        tool = next((t for t in served_tools(registry_of()) if t.name == name), None)
        return tool.parameters() if tool is not None else None

    return Server(
        SERVER_NAME, version=_version(), instructions="mmagent's tools: calculator, document retrieval and search, image tools, memory.",
        on_list_tools=list_tools, on_call_tool=call_tool, get_tool_input_schema=input_schema,
    )


def _error(message: str):
    import mcp_types as types

    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _success(value: Any, artifacts: list[dict[str, Any]], settings: Any):
    import mcp_types as types

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    content: list[Any] = [types.TextContent(text=text)]
    for artifact in artifacts:
        image = _image_content(artifact, settings)
        if image is not None:
            content.append(image)
    structured = json.loads(json.dumps(value, default=str)) if isinstance(value, dict) else None
    return types.CallToolResult(content=content, structured_content=structured)


def _image_content(artifact: dict[str, Any], settings: Any):
    import mcp_types as types

    path = Path(artifact.get("path") or "")
    try:
        if not path.is_file() or path.stat().st_size > settings.models.max_image_bytes:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return types.ImageContent(data=base64.b64encode(data).decode(), mime_type=artifact.get("mime") or "image/png")


# ---------------------------------------------------------------- stdio: `mmagent mcp`


async def serve_stdio(settings: Any, user_id: str) -> None:
    """Serve the app's tools (with long-term memory for `user_id`) on stdin/stdout until EOF."""
    from mcp.server.stdio import stdio_server

    from agent.runner import default_tools, open_memory, with_memory_tools
    from multimodal.text_embeddings import SentenceEncoder

    memory = open_memory(settings, SentenceEncoder()) if settings.memory.long_term else None
    registry = with_memory_tools(default_tools(settings), memory)
    server = build_server(lambda: registry, settings, lambda ctx: user_id)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


# ---------------------------------------------------------------- HTTP: /mcp in `mmagent serve`


class McpEndpoint:
    """The ASGI app at /mcp: the API key check of /v1, then the SDK's streamable HTTP transport.

    The SDK is imported and its session manager started on the first /mcp request, not with
    the app: a server that nobody asks over MCP starts as fast as before."""

    def __init__(self, services_of: Callable[[], Any], settings: Any) -> None:
        self.settings = settings
        self.services_of = services_of
        self.manager: Any = None
        self._lock: asyncio.Lock | None = None
        self._stop: asyncio.Event | None = None
        self._owner: asyncio.Task | None = None

    async def _started(self) -> Any:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.manager is None:
                from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

                server = build_server(lambda: self.services_of().agent.registry, self.settings, self._user)
                manager = StreamableHTTPSessionManager(app=server, max_request_body_size=self.settings.server.max_request_bytes)
                ready, self._stop = asyncio.Event(), asyncio.Event()
                # The manager's task group is entered and left by one task of its own.
                self._owner = asyncio.create_task(self._own(manager, ready, self._stop), name="mcp-http")
                await ready.wait()
                self.manager = manager
        return self.manager

    @staticmethod
    async def _own(manager: Any, ready: asyncio.Event, stop: asyncio.Event) -> None:
        async with manager.run():
            ready.set()
            await stop.wait()

    async def aclose(self) -> None:
        if self._owner is not None and self._stop is not None:
            self._stop.set()
            try:
                await asyncio.wait_for(self._owner, 10)
            except (TimeoutError, Exception):  # noqa: BLE001 - shutting down: do not hang on a stuck session
                self._owner.cancel()

    def _user(self, ctx: Any) -> str:
        request = getattr(ctx, "request", None)
        state = getattr(request, "scope", {}).get("state", {}) if request is not None else {}
        return state.get(USER_STATE) or "api"

    async def __call__(self, scope, receive, send) -> None:
        from starlette.responses import JSONResponse

        from apps.api.auth import USER_HEADER, _checked, key_user
        from apps.api.errors import ApiError

        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            user = key_user(self.settings, headers.get("authorization", ""))
            if user is None:
                user = _checked(headers[USER_HEADER.lower()], USER_HEADER) if USER_HEADER.lower() in headers else "api"
            self.services_of()  # 503 until the lifespan has opened the agent
        except ApiError as exc:
            await JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)(scope, receive, send)
            return
        except Exception as exc:  # noqa: BLE001 - ServicesNotReady
            await JSONResponse({"error": {"message": str(exc), "type": "server_error"}}, status_code=503)(scope, receive, send)
            return
        scope.setdefault("state", {})[USER_STATE] = user
        manager = await self._started()
        await manager.handle_request(scope, receive, send)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmagent")
    except PackageNotFoundError:
        return "0"
