"""`mmagent serve`: one FastAPI process with the Gradio UI at `/` and the HTTP API at `/v1`.

The agent (backend, tools, checkpointer) is opened in the app's lifespan and shared by the UI
and the API through `app.state.services`; per-user state lives in threads and stores keyed by
user id, never in the process. Models load on first use, so the page is up in seconds.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from agent.config import Settings
from agent.runner import Agent

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What request handlers need; one per app, built in the lifespan."""

    settings: Settings
    agent: Agent
    knowledge: Any = None  # memory.knowledge.KnowledgeBase, shared with the retrieve/search tools

    async def ingest_documents(self, user_id: str, files: list[Path]) -> str:
        """Adds a visitor's documents to their own part of the knowledge base; a summary line per file."""
        import asyncio
        import shutil

        # A stable copy per user and file name: uploading the same file again is "unchanged",
        # a new version replaces the old one's chunks.
        if not user_id.strip(".") or "/" in user_id or "\\" in user_id:
            raise ValueError(f"{user_id!r} cannot name a documents folder")  # "..": a parent folder
        folder = self.settings.data_dir / "documents" / user_id
        folder.mkdir(parents=True, exist_ok=True)
        copies = []
        for file in files:
            target = folder / Path(file).name
            shutil.copyfile(file, target)
            copies.append(target)
        report = await asyncio.to_thread(self.knowledge.ingest, copies, "uploads", owner=user_id)
        lines = [f"- {Path(f.path).name}: {f.status}" + (f" ({f.chunks} chunks)" if f.chunks else "") + (f": {f.reason}" if f.reason else "")
                 for f in report.files]
        return "\n".join(lines) or "Nothing to add."

    async def knowledge_sources(self, user_id: str) -> list[dict[str, Any]]:
        import asyncio

        rows = await asyncio.to_thread(self.knowledge.sources, None, [user_id])
        return [{"source": Path(r["source"]).name, "chunks": r["chunks"]} for r in rows]


class ServicesNotReady(RuntimeError):
    """A request arrived before the lifespan finished opening the agent."""


def services_of(app: FastAPI) -> Services:
    services = getattr(app.state, "services", None)
    if services is None:
        raise ServicesNotReady("the server is still starting; try again in a moment")
    return services


def create_app(settings: Settings, *, llm: str | None = None, ui: bool = True) -> FastAPI:
    from agent.llm.factory import make_backend
    from agent.runner import default_tools, open_agent
    from apps.api import api_router

    from memory.knowledge import KnowledgeBase

    # A spec that can never work (unknown kind, missing script file) fails here, as one line
    # from the CLI: in the lifespan, uvicorn would print a traceback. Backends are lazy, so this
    # loads nothing; a model that fails to load later is a JSON error on chat, the rest stays up.
    make_backend(llm or settings.llm, settings)

    # Built here (cheap: nothing opens or loads until first use) so the UI can list the tools
    # before the lifespan runs, and shares the knowledge base with the tools.
    knowledge = KnowledgeBase(settings)
    registry = default_tools(settings, knowledge=knowledge)
    mcp_endpoint = _mcp_endpoint(settings, lambda: services_of(app))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        # asyncio.to_thread's pool; the loop shuts it down when it closes.
        workers = ThreadPoolExecutor(settings.server.worker_threads, thread_name_prefix="mmagent-worker")
        asyncio.get_running_loop().set_default_executor(workers)
        async with open_agent(settings, llm=llm, registry=registry, child_processes=settings.server.child_processes) as agent, _running(mcp_endpoint):
            app.state.services = Services(settings, agent, knowledge)
            log.info("mmagent serving with model %s", agent.backend.spec)
            yield
        app.state.services = None
        knowledge.close()

    app = FastAPI(title="mmagent", version=_version(), lifespan=lifespan)
    app.state.services = None
    if settings.rate_limits.requests_per_minute or settings.rate_limits.concurrent_runs:
        from apps.api.rate_limits import RateLimitMiddleware

        app.add_middleware(RateLimitMiddleware, settings=settings.rate_limits)
    # Routes under /v1 must be registered before the UI is mounted at "/", which catches the rest.
    app.include_router(api_router(), prefix="/v1")
    if mcp_endpoint is not None:
        from starlette.routing import Route

        app.router.routes.append(Route("/mcp", endpoint=mcp_endpoint, methods=["GET", "POST", "DELETE"]))
    if ui:
        import gradio as gr

        from apps.ui import build_ui

        blocks = build_ui(lambda: services_of(app), registry.names())
        app = gr.mount_gradio_app(
            app, blocks, path="/", allowed_paths=[str(settings.artifacts_dir.resolve())], footer_links=["api"],
        )
    return app


def _mcp_endpoint(settings: Settings, services: Any):
    """Our tools over MCP at /mcp (apps/mcp_server.py), unless `mcp.serve_http` is off."""
    if not settings.mcp.serve_http:
        return None
    from apps.mcp_server import McpEndpoint

    return McpEndpoint(services, settings)


@asynccontextmanager
async def _running(mcp_endpoint):
    try:
        yield
    finally:
        if mcp_endpoint is not None:
            await mcp_endpoint.aclose()  # its MCP sessions end with the app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmagent")
    except PackageNotFoundError:
        return "0"


#: uvicorn's default parser (httptools) buffers request headers without any limit, so one client
#: could make the server hold megabytes of headers per connection. h11 refuses (400) a request
#: head that is still incomplete beyond this size; bodies are limited per route (max_request_bytes).
HTTP_OPTIONS = {
    "http": "h11", "h11_max_incomplete_event_size": 64 * 1024,
    # Idle connections stay open longer than clients keep them (httpx and openai: 5 s, which is
    # also uvicorn's default): with equal timeouts a busy server closes a connection just as a
    # client reuses it, and that request fails (bench/load.py at 100 sessions).
    "timeout_keep_alive": 75,
}


def serve(settings: Settings, *, host: str, port: int, llm: str | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(settings, llm=llm), host=host, port=port, log_level="warning", **HTTP_OPTIONS)
