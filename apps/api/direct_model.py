"""Chat completions with client tools: the server acts as a function-calling model.

The configured ChatBackend is called once with the client's messages and its (normalised)
tools, and its reply goes back as is: text, or `tool_calls` for the client to run. The agent
graph is not used here: it would plan and run *built-in* tools, while the client asked for a
model that lets *it* run its tools; mixing the two would make replies depend on tools the
client never declared. The conversation (with the client's `tool` messages) is in each request.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse
from sse_starlette import ServerSentEvent

from agent.llm.base import ChatRequest, LLMError
from apps.api import openai_format as fmt
from apps.api.client_tools import ClientTools
from apps.api.conversations import Conversations
from apps.api.errors import ApiError
from apps.api.streaming import sse_response, tokens_then_result
from apps.server import Services

log = logging.getLogger(__name__)

NAMESPACE = "direct"


async def complete(
    services: Services,
    conversations: Conversations,
    *,
    user_id: str,
    messages: list[dict[str, Any]],
    tools: ClientTools,
    tool_choice: str,
    response_schema: dict[str, Any] | None,
    temperature: float | None,
    max_tokens: int | None,
    stream: bool,
    include_usage: bool = False,
):
    # The backend's per-conversation state (the scripted model's cursor) follows the
    # conversation across the client's round trips.
    session = conversations.claim(user_id, messages, NAMESPACE) or "api-" + uuid.uuid4().hex
    request = ChatRequest(
        messages=fmt.backend_messages(messages, tools),
        tools=tools.schemas,
        tool_choice=tool_choice,
        response_schema=response_schema,
        temperature=temperature if temperature is not None else 0.0,
        max_tokens=max_tokens or services.settings.limits.max_new_tokens,
        purpose="act",
    )
    backend = services.agent.backend
    cid, created = fmt.completion_id(), fmt.now()

    def finish(reply) -> tuple[dict[str, Any], str]:
        message = fmt.assistant_message(reply, tools)
        conversations.remember(user_id, [*messages, message], NAMESPACE, session)
        return message, "tool_calls" if reply.tool_calls else "stop"

    if not stream:
        try:
            reply = await backend.complete(request, session=session)
        except LLMError as exc:
            raise ApiError(502, f"the model failed: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a backend bug is the upstream's failure: 502, not a 500 traceback
            log.error("client-tools completion failed", exc_info=exc)
            raise ApiError(502, f"the model backend failed: {type(exc).__name__}") from None
        message, reason = finish(reply)
        return JSONResponse(fmt.completion(cid, created, message, reason, {"usage": fmt.usage_of_reply(request, reply)}))

    async def events() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(fmt.chunk(cid, created, {"role": "assistant", "content": ""}))
        async for kind, value in tokens_then_result(lambda on_token: backend.complete(request, on_token=on_token, session=session)):
            if kind == "token":
                yield ServerSentEvent(fmt.chunk(cid, created, {"content": value}))
            elif kind == "error":
                if not isinstance(value, LLMError):
                    log.error("client-tools stream failed", exc_info=value)
                text = f"the model failed: {value}" if isinstance(value, LLMError) else "internal error (see the server log)"
                yield ServerSentEvent(fmt.error_data(text, "model_error" if isinstance(value, LLMError) else "server_error"))
                yield ServerSentEvent(fmt.DONE)
                return
            else:
                message, reason = finish(value)
                for delta in fmt.tool_call_deltas(message):
                    yield ServerSentEvent(fmt.chunk(cid, created, delta))
                yield ServerSentEvent(fmt.chunk(cid, created, {}, reason))
                if include_usage:
                    yield ServerSentEvent(fmt.usage_chunk(cid, created, fmt.usage_of_reply(request, value)))
        yield ServerSentEvent(fmt.DONE)

    return sse_response(events())
