"""Connections to external MCP servers (the official `mcp` SDK's `Client`), kept per process.

A server starts on first need (its tools are listed, or one is called), stays connected for
the life of the process, and is started again when it died: a call that finds the connection
broken reconnects once and retries. Each connection lives in an owner task of its own: the
SDK's transports are anyio task groups, which must be entered and left by the same task, and
the requests that use a connection come from many tasks (one per chat turn).

Nothing here raises at a caller for a server problem: `McpServerError` carries a sentence the
model can read (missing program, crashed, slow, refused), and `tools/mcp_tools.py` turns it
into a tool result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from pydantic import ValidationError

log = logging.getLogger(__name__)

#: Listing pages followed at most: a server whose cursor never ends cannot hang start-up.
MAX_LIST_PAGES = 50


class McpServerError(Exception):
    """An MCP server could not be reached or did not answer; the message is for the model."""


class McpConnection:
    """One configured server: start, list tools, call tools, restart, close."""

    def __init__(self, name: str, config: Any, log_dir: Path | None = None) -> None:
        self.name = name
        self.config = config  # agent.config.McpServer
        self.log_dir = log_dir
        self.tools: list[Any] = []  # mcp_types.Tool, from the last successful listing
        self.last_error: str | None = None
        self.started_at: float | None = None
        self.starts = 0
        self._client: Any = None
        self._stop: asyncio.Event | None = None
        self._owner: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def transport(self) -> str:
        return "stdio" if self.config.command else "http"

    @property
    def target(self) -> str:
        if self.config.command:
            return " ".join([self.config.command, *self.config.args])
        return self.config.url

    @property
    def up(self) -> bool:
        if self._client is None or self._owner is None or self._owner.done():
            return False
        # A stdio server that died while idle leaves the owner waiting; the SDK's dispatcher
        # has seen the end of its output by then (no public flag says so yet).
        dispatcher = getattr(self._client.session, "_dispatcher", None) if self._client._session is not None else None
        return not getattr(dispatcher, "_closed", False)

    def _for_this_loop(self) -> asyncio.Lock:
        # A CLI command runs several event loops one after the other (asyncio.run per call):
        # a connection belongs to the loop that opened it, and a new loop starts afresh.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._client, self._owner, self._stop = loop, None, None, None
            self._lock = asyncio.Lock()
        return self._lock

    async def connect(self) -> list[Any]:
        """Start the server when it is not running; its tools. Raises McpServerError."""
        async with self._for_this_loop():
            if self.up:
                return self.tools
            await self._shutdown()
            return await self._start()

    async def _start(self) -> list[Any]:
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self.starts += 1
        self._owner = asyncio.create_task(self._own(ready, self._stop), name=f"mcp:{self.name}")
        try:
            self.tools = await asyncio.wait_for(asyncio.shield(ready), self.config.start_timeout_s)
        except TimeoutError:
            await self._shutdown()
            self.last_error = f"MCP server {self.name!r} did not start within {self.config.start_timeout_s:g} s"
            raise McpServerError(self.last_error) from None
        except McpServerError as exc:
            await self._shutdown()
            self.last_error = str(exc)
            raise
        self.last_error = None
        self.started_at = time.time()
        return self.tools

    async def _own(self, ready: asyncio.Future, stop: asyncio.Event) -> None:
        from mcp import Client

        try:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(Client(self._transport(stack), read_timeout_seconds=self.config.timeout_s))
                tools = await _list_all(client)
                self._client = client
                if not ready.done():
                    ready.set_result(tools)
                await stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.set_exception(McpServerError(f"MCP server {self.name!r} was stopped while starting"))
            raise
        except BaseException as exc:  # noqa: BLE001 - anything the transport raises ends this connection
            message = f"MCP server {self.name!r} ({self.transport}: {_short(self.target)}) {_describe(exc)}"
            if not ready.done():
                ready.set_exception(McpServerError(message))
            else:
                log.warning("%s", message)
            self.last_error = message
        finally:
            self._client = None

    def _transport(self, stack: AsyncExitStack) -> Any:
        if self.config.command:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(
                command=self.config.command, args=list(self.config.args), env=dict(self.config.env) or None,
                cwd=str(self.config.cwd) if self.config.cwd else None,
            )
            return stdio_client(params, errlog=stack.enter_context(self._errlog()))
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        http = create_mcp_http_client(headers=dict(self.config.headers) or None)
        stack.push_async_callback(http.aclose)
        return streamable_http_client(self.config.url, http_client=http)

    def _errlog(self):
        # A stdio server's stderr goes to a log file of its own, not over the CLI's output.
        if self.log_dir is None:
            return open("/dev/null", "w")  # noqa: SIM115 - closed by the exit stack
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{self.name}.log", "a", encoding="utf-8")  # noqa: SIM115

    async def call(self, tool: str, arguments: dict[str, Any], timeout_s: float) -> Any:
        """`tools/call`. A server found dead before the call is started again first; one that
        dies during the call is not asked twice (the call may have had effects): the model
        reads that it crashed, and the next call starts it again."""
        await self.connect()
        client = self._client
        if client is None:
            raise McpServerError(f"MCP server {self.name!r} is not running: {self.last_error or 'it stopped while starting'}")
        try:
            return await asyncio.wait_for(client.call_tool(tool, arguments, read_timeout_seconds=timeout_s), timeout_s)
        except TimeoutError:
            raise McpServerError(f"MCP server {self.name!r} did not answer {tool} within {timeout_s:g} s") from None
        except ValidationError as exc:  # the server answered, with something that is not an MCP result
            raise McpServerError(f"MCP server {self.name!r} returned an invalid result for {tool}: {_short(str(exc), 300)}") from None
        except Exception as exc:  # noqa: BLE001 - sorted below: a refusal, or a broken connection
            if _is_protocol_error(exc):
                raise McpServerError(f"MCP server {self.name!r} refused {tool}: {_short(getattr(exc, 'message', None) or str(exc), 500)}") from None
            log.info("MCP server %s: %s failed (%s); it is restarted on the next call", self.name, tool, _describe(exc))
            async with self._for_this_loop():
                await self._shutdown()
            self.last_error = f"MCP server {self.name!r} failed during {tool}: {_describe(exc)}"
            raise McpServerError(self.last_error + " (it will be restarted for the next call)") from None

    async def read_resource(self, uri: str, timeout_s: float) -> Any:
        await self.connect()
        if self._client is None:
            raise McpServerError(f"MCP server {self.name!r} is not running")
        return await asyncio.wait_for(self._client.read_resource(uri), timeout_s)

    async def _shutdown(self) -> None:
        owner, stop = self._owner, self._stop
        self._owner = self._stop = None
        self._client = None
        if owner is None or owner.done():
            return
        stop.set()
        try:
            # The SDK bounds its own shutdown (close stdin, terminate, kill); this bounds ours.
            await asyncio.wait_for(asyncio.shield(owner), 10)
        except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001
            owner.cancel()

    async def aclose(self) -> None:
        if self._loop is asyncio.get_running_loop():
            await self._shutdown()

    def status(self) -> dict[str, Any]:
        return {
            "server": self.name, "transport": self.transport, "target": self.target, "up": self.up,
            "tools": len(self.tools), "starts": self.starts, "error": self.last_error, "ask_first": self.config.ask_first,
        }


async def _list_all(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _ in range(MAX_LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _is_protocol_error(exc: BaseException) -> bool:
    """An error answer from a live server (unknown tool, invalid params), not a lost connection."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED

    return isinstance(exc, MCPError) and exc.code != CONNECTION_CLOSED


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions[0] if exc.exceptions else exc
        return _describe(inner)
    if isinstance(exc, FileNotFoundError):
        return f"could not be started: program not found ({_short(str(exc.filename or exc), 200)})"
    if isinstance(exc, OSError):
        return f"could not be reached: {type(exc).__name__}: {_short(str(exc), 300)}"
    text = (getattr(exc, "message", None) or str(exc)).strip() or type(exc).__name__
    return f"failed: {type(exc).__name__}: {_short(text, 300)}"


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
