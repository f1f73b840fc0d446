"""The HTTP API served at `/v1` (docs/api.md).

One router per job: OpenAI-compatible chat and models (chat_completions), built-in tools
(tools), agent threads and runs (threads); errors, size limits (errors) and the API key
(auth) are shared by all of them. `api_router()` is called once per app, so per-app state
(the conversation map) lives in its closure, never in a module global.
"""

from __future__ import annotations

from fastapi import APIRouter

from apps.api.chat_completions import chat_router
from apps.api.conversations import Conversations
from apps.api.errors import ApiRoute, add_catch_all
from apps.api.moderations import moderations_router
from apps.api.threads import threads_router
from apps.api.tools import tools_router


def api_router() -> APIRouter:
    router = APIRouter(route_class=ApiRoute)

    @router.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}  # open without the API key: load balancers probe it

    parts = [chat_router(Conversations()), tools_router(), threads_router(), moderations_router()]
    for part in parts:
        router.include_router(part)
    add_catch_all(router, [router, *parts])  # last: it answers every path the others do not
    return router
