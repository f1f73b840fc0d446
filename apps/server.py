"""`mmagent serve`: one FastAPI process with the Gradio UI at `/` and the HTTP API at `/v1`.

The agent (backend, tools, checkpointer) is opened in the app's lifespan and shared by the UI
and the API through `app.state.services`; per-user state lives in threads and stores keyed by
user id, never in the process. Models load on first use, so the page is up in seconds.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from agent.config import Settings
from agent.runner import Agent

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What request handlers need; one per app, built in the lifespan."""

    settings: Settings
    agent: Agent


class ServicesNotReady(RuntimeError):
    """A request arrived before the lifespan finished opening the agent."""


def services_of(app: FastAPI) -> Services:
    services = getattr(app.state, "services", None)
    if services is None:
        raise ServicesNotReady("the server is still starting; try again in a moment")
    return services


def create_app(settings: Settings, *, llm: str | None = None, ui: bool = True) -> FastAPI:
    from agent.runner import default_tools, open_agent
    from apps.api import api_router

    # Built here (cheap: no model loads) so the UI can list the tools before the lifespan runs.
    registry = default_tools(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with open_agent(settings, llm=llm, registry=registry) as agent:
            app.state.services = Services(settings, agent)
            log.info("mmagent serving with model %s", agent.backend.spec)
            yield
        app.state.services = None

    app = FastAPI(title="mmagent", version=_version(), lifespan=lifespan)
    app.state.services = None
    # Routes under /v1 must be registered before the UI is mounted at "/", which catches the rest.
    app.include_router(api_router(), prefix="/v1")
    if ui:
        import gradio as gr

        from apps.ui import build_ui

        blocks = build_ui(lambda: services_of(app), registry.names())
        app = gr.mount_gradio_app(
            app, blocks, path="/", allowed_paths=[str(settings.artifacts_dir.resolve())], footer_links=["api"],
        )
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmagent")
    except PackageNotFoundError:
        return "0"


def serve(settings: Settings, *, host: str, port: int, llm: str | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(settings, llm=llm), host=host, port=port, log_level="warning")
