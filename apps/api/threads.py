"""`POST /v1/threads/{id}/runs` (one agent turn as server-sent events), thread history, and
`POST /v1/threads/{id}/resume` (finish a run the server was killed in, same events).

Event names are the agent's event types (plan, tool_call, tool_result, reflection, token,
final) plus `error`; each event's data is the agent's event as JSON. Threads belong to the
user who created them: another user's thread answers 404, as an unknown one does, so that
thread ids cannot be probed.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sse_starlette import ServerSentEvent

from agent.llm.base import LLMError
from memory.threads import ThreadError
from apps.api.auth import require_api_key, services, user_id_of
from apps.api.errors import ApiError, ApiRoute
from apps.api.images import resolve_image
from apps.api.schemas import RunRequest
from apps.api.streaming import sse_response
from apps.errors import disk_full

log = logging.getLogger(__name__)

_THREAD_ID = re.compile(r"^[\w.:-]{1,128}$")


def _check_thread_id(thread_id: str) -> None:
    if not _THREAD_ID.match(thread_id):
        raise ApiError(400, "a thread id is 1-128 letters, digits or . _ : -", param="thread_id")


def _takes_user(method: Callable[..., Any]) -> bool:
    # Per-user thread ownership is optional in Agent: pass the user only where it is accepted.
    try:
        return "user_id" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _not_found(thread_id: str) -> ApiError:
    return ApiError(404, f"no thread {thread_id!r} for this user", code="thread_not_found")


async def thread_history(agent, thread_id: str, user_id: str) -> list[dict[str, Any]] | None:
    """The thread's messages; None when there is no such thread; 404 when it is someone else's."""
    try:
        if _takes_user(agent.history):
            return await agent.history(thread_id, user_id=user_id)
        return await agent.history(thread_id)
    except PermissionError:
        raise _not_found(thread_id) from None
    except KeyError:
        return None


def threads_router() -> APIRouter:
    router = APIRouter(route_class=ApiRoute, dependencies=[Depends(require_api_key)], tags=["threads"])

    @router.get("/threads", response_model=dict[str, Any])
    async def list_threads(request: Request) -> Response:
        agent = services(request).agent
        if not hasattr(agent, "list_threads"):
            raise ApiError(404, "listing threads is not available in this version", code="unknown_endpoint")
        threads = agent.list_threads(user_id_of(request))
        if inspect.isawaitable(threads):
            threads = await threads
        return _json({"object": "list", "data": threads})

    @router.get("/threads/{thread_id}", response_model=dict[str, Any])
    async def get_thread(thread_id: str, request: Request) -> Response:
        _check_thread_id(thread_id)
        agent = services(request).agent
        messages = await thread_history(agent, thread_id, user_id_of(request))
        if not messages:
            raise _not_found(thread_id)
        interrupted = await agent.interrupted(thread_id) if hasattr(agent, "interrupted") else False
        return _json({"id": thread_id, "object": "thread", "interrupted": interrupted, "messages": messages})

    @router.post("/threads/{thread_id}/runs")
    async def run_turn(thread_id: str, body: RunRequest, request: Request):
        _check_thread_id(thread_id)
        svc = services(request)
        agent, user_id = svc.agent, user_id_of(request)
        images = [resolve_image(ref, svc.settings, f"images.{i}") for i, ref in enumerate(body.images)]
        if body.tools is not None:
            unknown = sorted(set(body.tools) - set(agent.registry.names()))
            if unknown:
                raise ApiError(400, f"unknown tools: {', '.join(unknown)}; see GET /v1/tools", param="tools")
        # Someone else's thread is refused before the stream starts, so it is a plain 404;
        # an unknown thread is fine (the run creates it).
        await thread_history(agent, thread_id, user_id)

        events = agent.astream(body.input, thread_id=thread_id, images=images, user_id=user_id, tools=body.tools)
        return sse_response(_sse(events, thread_id), headers={"X-MMAGENT-Thread": thread_id})

    @router.post("/threads/{thread_id}/resume")
    async def resume_run(thread_id: str, request: Request):
        _check_thread_id(thread_id)
        agent, user_id = services(request).agent, user_id_of(request)
        if not hasattr(agent, "aresume"):
            raise ApiError(404, "resuming runs is not available in this version", code="unknown_endpoint")
        if not await thread_history(agent, thread_id, user_id):
            raise _not_found(thread_id)
        # Checked before the stream starts so that "nothing to resume" is a plain 409, not an event.
        if not await agent.interrupted(thread_id):
            raise ApiError(409, f"thread {thread_id!r} has no interrupted run to resume", code="not_interrupted")
        return sse_response(_sse(_resumed(agent, thread_id, user_id), thread_id), headers={"X-MMAGENT-Thread": thread_id})

    return router


async def _resumed(agent, thread_id: str, user_id: str) -> AsyncIterator[dict[str, Any]]:
    """`Agent.aresume`'s events as a stream (it reports them through a callback)."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(agent.aresume(thread_id, user_id=user_id, on_event=queue.put_nowait))
    getter: asyncio.Future | None = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
                continue
            while not queue.empty():
                yield queue.get_nowait()
            task.result()  # raises what the run raised
            return
    finally:
        for pending in (getter, task):  # the client went away: stop the run, as an unfinished /runs would
            if pending is not None and not pending.done():
                pending.cancel()


async def _sse(events: AsyncIterator[dict[str, Any]], thread_id: str) -> AsyncIterator[ServerSentEvent]:
    """The agent's events as server-sent events; failures after the stream started are `error` events."""
    try:
        async for event in events:
            if event["type"] == "final":
                event = {**event, "thread_id": thread_id}
            yield ServerSentEvent(json.dumps(event, ensure_ascii=False, default=str), event=event["type"])
            if event["type"] == "final" and event.get("error"):
                yield _error_event(f"the model failed: {event['error']}", "model_error")
    except (PermissionError, KeyError):
        yield _error_event(f"no thread {thread_id!r} for this user", "thread_not_found")
    except ThreadError as exc:  # e.g. another request resumed the run first
        yield _error_event(str(exc), "not_interrupted")
    except LLMError as exc:
        yield _error_event(f"the model failed: {exc}", "model_error")
    except Exception as exc:  # noqa: BLE001 - the stream has started: report in-stream
        if disk_full(exc):
            log.error("run on thread %s failed: disk full (%s)", thread_id, exc)
            yield _error_event(f"the server's disk is full: this turn could not be saved ({exc}); try again once space is freed", "storage_full")
            return
        log.exception("run on thread %s failed", thread_id)
        yield _error_event("internal error (see the server log)", "server_error")


def _error_event(message: str, code: str) -> ServerSentEvent:
    return ServerSentEvent(json.dumps({"type": "error", "message": message, "code": code}), event="error")


def _json(payload: dict[str, Any]) -> Response:
    # Encoded once, whatever it holds (times, ids): FastAPI's own encoder walks every message of
    # a history in Python before encoding it again, twice the work on the busiest GETs.
    return Response(json.dumps(payload, ensure_ascii=False, default=str), media_type="application/json")
