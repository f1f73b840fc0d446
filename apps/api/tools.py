"""`GET /v1/tools` and `POST /v1/tools/{name}/invoke`: the tools (built-in, and those of the
configured MCP servers, which name their `server`), without the agent.

Status codes: 200 `{"ok": true, ...}` when the tool ran; 422 `{"ok": false}` when the
arguments do not fit the tool's schema (nothing ran); 200 `{"ok": false}` when the tool ran
and reported a failure (e.g. division by zero) — the call itself worked, as with the CLI's
`mmagent tools call --json`; 404 for an unknown tool. Tools never raise, so never a 500.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from apps.api.auth import require_api_key, services, user_id_of
from apps.api.errors import ApiError, ToolApiRoute, json_object
from tools.mcp_tools import listing
from tools.registry import Tool, ToolContext, ToolError

THREAD_HEADER = "X-MMAGENT-Thread"
_THREAD_ID = re.compile(r"^[\w.:-]{1,128}$")


async def _tool(request: Request, name: str) -> Tool:
    agent = services(request).agent
    if name not in agent.registry:
        await agent.ready_tools()  # an MCP server's tool, and the server not started yet
    try:
        return agent.registry.get(name)
    except ToolError as exc:
        raise ApiError(404, str(exc), code="unknown_tool") from None


def tools_router() -> APIRouter:
    router = APIRouter(route_class=ToolApiRoute, dependencies=[Depends(require_api_key)], tags=["tools"])

    @router.get("/tools")
    async def list_tools(request: Request) -> dict[str, Any]:
        agent = services(request).agent
        await agent.ready_tools()  # MCP servers start on first need; a server that is down is left out
        return {"object": "list", "data": listing(agent.registry)}

    @router.get("/tools/{name}")
    async def get_tool(name: str, request: Request) -> dict[str, Any]:
        return (await _tool(request, name)).openai_schema()

    @router.post("/tools/{name}/invoke")
    async def invoke_tool(name: str, request: Request) -> Any:
        svc = services(request)
        tool = await _tool(request, name)
        arguments = json_object(await request.body(), what="the tool arguments (request body)")
        try:
            tool.validate(arguments)
        except ToolError as exc:
            raise ApiError(422, str(exc)) from None
        thread_id = request.headers.get(THREAD_HEADER, "api")
        if not _THREAD_ID.match(thread_id):
            raise ApiError(400, f"{THREAD_HEADER} must be 1-128 letters, digits or . _ : -")
        context = ToolContext(user_id=user_id_of(request), thread_id=thread_id, settings=svc.settings)
        result = await tool.ainvoke(arguments, svc.settings.limits.tool_timeout_s, context)
        payload = {"ok": True, "result": result.result} if result.ok else {"ok": False, "error": result.error}
        if result.ok and result.data is not None:
            payload["data"] = result.data  # structured fields, e.g. the calculator's value and exact form
        payload["artifacts"] = result.artifacts
        # default=str: a tool may return values JSON does not know (paths, decimals).
        return Response(json.dumps(payload, ensure_ascii=False, default=str), media_type="application/json")

    return router
