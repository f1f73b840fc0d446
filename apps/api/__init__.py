"""The HTTP API served at `/v1`."""

from __future__ import annotations

from fastapi import APIRouter


def api_router() -> APIRouter:
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return router
