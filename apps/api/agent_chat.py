"""Chat completions without client tools: one agent turn (plan, built-in tools, answer).

The last user message is the turn's request. The earlier messages are the thread the server
continues when it recognises them (see conversations.py), or are folded into the request.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse
from sse_starlette import ServerSentEvent

from apps.api import openai_format as fmt
from apps.api.conversations import Conversations, fold, last_assistant_index, text_of
from apps.api.errors import ApiError
from apps.api.images import save_data_url
from apps.api.streaming import sse_response
from apps.server import Services

log = logging.getLogger(__name__)

NAMESPACE = "agent"
THREAD_HEADER = "X-MMAGENT-Thread"


def turn_input(services: Services, conversations: Conversations, user_id: str, messages: list[dict[str, Any]]):
    """(thread id, request text, image paths) for this turn."""
    end = last_assistant_index(messages)
    new = messages[end + 1 :]
    for i, m in enumerate(new, end + 1):
        if m["role"] == "tool":
            raise ApiError(400, "tool messages need the `tools` that produced the calls; send the tools again", param=f"messages.{i}")
    users = [(i, m) for i, m in enumerate(new, end + 1) if m["role"] == "user"]
    if not users:
        raise ApiError(400, "the conversation must end with a user message", param=f"messages.{len(messages) - 1}")
    request = "\n\n".join(text_of(m["content"]).strip() for _, m in users if text_of(m["content"]).strip())
    if not request:
        raise ApiError(400, "the user message has no text", param=f"messages.{users[-1][0]}.content")
    images = []
    for i, m in users:
        if isinstance(m["content"], list):
            for j, part in enumerate(m["content"]):
                if part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url", "")
                    images.append(save_data_url(url, services.settings, f"messages.{i}.content.{j}.image_url"))
    thread = conversations.claim(user_id, messages, NAMESPACE)
    instructions = [m for m in new if m["role"] != "user"]
    earlier = instructions if thread else [*messages[: end + 1], *instructions]
    return thread or "chat-" + uuid.uuid4().hex, fold(earlier, request), images


def _extra(thread_id: str, final: dict[str, Any]) -> dict[str, Any]:
    # Extra top-level fields are ignored by OpenAI clients; ours can read the agent's work.
    return {"mmagent": {"thread_id": thread_id, **{k: final.get(k) for k in ("plan", "steps", "artifacts")},
                        "citations": final.get("citations") or []}}


async def complete(
    services: Services, conversations: Conversations, *, user_id: str, messages: list[dict[str, Any]], stream: bool,
    include_usage: bool = False,
):
    thread_id, request, images = turn_input(services, conversations, user_id, messages)
    agent = services.agent
    cid, created = fmt.completion_id(), fmt.now()
    headers = {THREAD_HEADER: thread_id}

    def remember(answer: str) -> None:
        conversations.remember(user_id, [*messages, {"role": "assistant", "content": answer}], NAMESPACE, thread_id)

    if not stream:
        final: dict[str, Any] | None = None
        async for event in agent.astream(request, thread_id=thread_id, images=images, user_id=user_id):
            if event["type"] == "final":
                final = event
        if final is None:
            raise RuntimeError("the agent run ended without a final answer")
        if final.get("error"):
            raise ApiError(502, f"the model failed: {final['error']}")
        remember(final["answer"])
        message = {"role": "assistant", "content": final["answer"], "refusal": None}
        extra = {"usage": final.get("usage") or fmt.NO_USAGE, **_extra(thread_id, final)}
        return JSONResponse(fmt.completion(cid, created, message, "stop", extra), headers=headers)

    # Text from an act step is held until the step ends: if tool calls follow, it was the
    # model thinking aloud, not the answer. Respond-step tokens are the answer and go out live,
    # except for models whose answers the agent rewrites (grounding weak models' answers).
    live = agent.backend.chooses_tools

    async def events() -> AsyncIterator[ServerSentEvent]:
        sent, held = "", []
        yield ServerSentEvent(fmt.chunk(cid, created, {"role": "assistant", "content": ""}))
        try:
            async for event in agent.astream(request, thread_id=thread_id, images=images, user_id=user_id):
                kind = event["type"]
                if kind == "token" and event.get("node") == "respond" and live:
                    sent += event["text"]
                    yield ServerSentEvent(fmt.chunk(cid, created, {"content": event["text"]}))
                elif kind == "token":
                    held.append(event["text"])
                elif kind == "tool_call":
                    held.clear()
                elif kind == "final":
                    if event.get("error"):
                        yield ServerSentEvent(fmt.error_data(f"the model failed: {event['error']}"))
                        break
                    answer = event["answer"]
                    # The final answer may add notes (failed tools, files) after the streamed text.
                    rest = answer[len(sent) :] if answer.startswith(sent) else "\n\n" + answer
                    if rest:
                        yield ServerSentEvent(fmt.chunk(cid, created, {"content": rest}))
                    remember(answer)
                    yield ServerSentEvent(fmt.chunk(cid, created, {}, "stop"))
                    if include_usage:
                        yield ServerSentEvent(fmt.usage_chunk(cid, created, event.get("usage") or fmt.NO_USAGE))
        except Exception:  # noqa: BLE001 - the response has started: report in-stream
            log.exception("agent chat stream failed")
            yield ServerSentEvent(fmt.error_data("internal error (see the server log)", "server_error"))
        yield ServerSentEvent(fmt.DONE)

    return sse_response(events(), headers=headers)
