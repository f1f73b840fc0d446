"""OpenAI's chat-completion wire format: response objects, stream chunks, message mapping."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from apps.api.client_tools import ClientTools
from apps.api.schemas import MODEL_ID
from agent.llm.base import ChatReply

DONE = "[DONE]"


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


def assistant_message(reply: ChatReply, tools: ClientTools) -> dict[str, Any]:
    """The model's reply as an OpenAI assistant message, with the client's own tool names."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": tools.client_name(call.name),
                    # Invalid JSON from the model goes back verbatim: the client decides what to do.
                    "arguments": reply.raw_tool_arguments.get(call.id)
                    or json.dumps(call.arguments, ensure_ascii=False),
                },
            }
            for call in reply.tool_calls
        ]
    return message


NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def completion(cid: str, created: int, message: dict[str, Any], finish_reason: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": MODEL_ID,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if extra:
        body.update(extra)
    return body


def chunk(cid: str, created: int, delta: dict[str, Any], finish_reason: str | None = None) -> str:
    return json.dumps(
        {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL_ID,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        },
        ensure_ascii=False,
    )


def usage_chunk(cid: str, created: int, usage: dict[str, int]) -> str:
    """The last chunk of a stream whose request asked `stream_options.include_usage` (OpenAI's shape)."""
    return json.dumps(
        {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
         "system_fingerprint": None, "choices": [], "usage": usage},
        ensure_ascii=False,
    )


def usage_of_reply(request: Any, reply: Any) -> dict[str, int]:
    """OpenAI's `usage` of one backend call (the backend's count, else an estimate)."""
    from agent.llm.base import usage_of

    prompt, completion, _ = usage_of(request, reply)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def tool_call_deltas(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Each tool call as one delta (id, name and the whole arguments string at once)."""
    return [{"tool_calls": [{"index": i, **call}]} for i, call in enumerate(message.get("tool_calls") or [])]


def error_data(message: str, type_: str = "model_error") -> str:
    # OpenAI sends errors inside the stream this way; its client raises APIError on them.
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": None}}, ensure_ascii=False)


def model_object(created: int) -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": created, "owned_by": "mmagent"}


def backend_messages(messages: list[dict[str, Any]], tools: ClientTools) -> list[dict[str, Any]]:
    """The client's messages for a ChatBackend: OpenAI format, tool names made safe."""
    out = []
    for m in messages:
        item: dict[str, Any] = {"role": "system" if m["role"] == "developer" else m["role"], "content": m.get("content")}
        if m.get("tool_calls"):
            item["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {
                        "name": tools.safe_name(c["function"]["name"]),
                        "arguments": a if isinstance(a := c["function"].get("arguments", "{}"), str) else json.dumps(a, ensure_ascii=False),
                    },
                }
                for c in m["tool_calls"]
            ]
        if m.get("tool_call_id"):
            item["tool_call_id"] = m["tool_call_id"]
        if m.get("name"):
            item["name"] = tools.safe_name(m["name"]) if m["role"] == "tool" else m["name"]
        out.append(item)
    return out
