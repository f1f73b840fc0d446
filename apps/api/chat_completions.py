"""`POST /v1/chat/completions` and `GET /v1/models`: the agent as an OpenAI-compatible model.

Two modes, chosen by the request:
  * no `tools` (and no JSON `response_format`): one full agent turn with the built-in tools;
  * `tools` given: the configured model is asked directly and its tool calls go back to the
    client to run (see direct_model.py for why the graph is not used there).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from apps.api import agent_chat, direct_model
from apps.api import openai_format as fmt
from apps.api.auth import require_api_key, services, user_id_of
from apps.api.client_tools import ClientTools, ToolSchemaError, normalise_tools
from apps.api.conversations import Conversations
from apps.api.errors import ApiError, ApiRoute
from apps.api.schemas import MODEL_ID, ChatCompletionRequest

_CREATED = fmt.now()


def response_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON Schema a reply must follow, from OpenAI's `response_format` (None: free text)."""
    if not response_format or response_format.get("type") in (None, "text"):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise ApiError(400, "response_format.json_schema.schema must be a JSON Schema object", param="response_format")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ApiError(400, f"response_format.json_schema.schema is not valid: {exc.message}", param="response_format") from None
        return schema
    raise ApiError(400, f"response_format type {kind!r} is not supported (text, json_object, json_schema)", param="response_format")


def chat_router(conversations: Conversations) -> APIRouter:
    router = APIRouter(route_class=ApiRoute, dependencies=[Depends(require_api_key)], tags=["openai"])

    @router.get("/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [fmt.model_object(_CREATED)]}

    @router.get("/models/{model_id}")
    async def get_model(model_id: str) -> dict[str, Any]:
        if model_id != MODEL_ID:
            raise ApiError(404, f"the model {model_id!r} does not exist; this server serves {MODEL_ID!r}", code="model_not_found")
        return fmt.model_object(_CREATED)

    @router.post("/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        svc = services(request)
        if body.model != MODEL_ID:
            raise ApiError(
                404, f"the model {body.model!r} does not exist; this server serves {MODEL_ID!r}", param="model", code="model_not_found"
            )
        user_id = user_id_of(request, body.user)
        messages = [m.model_dump(exclude_none=True) for m in body.messages]
        schema = response_schema(body.response_format)
        options = (body.model_extra or {}).get("stream_options")
        include_usage = bool(body.stream and isinstance(options, dict) and options.get("include_usage"))
        if not body.tools and schema is None:
            if body.tool_choice not in (None, "auto", "none"):
                raise ApiError(400, "tool_choice needs tools", param="tool_choice")
            return await agent_chat.complete(
                svc, conversations, user_id=user_id, messages=messages, stream=body.stream, include_usage=include_usage
            )
        try:
            tools = normalise_tools(body.tools) if body.tools else ClientTools()
            choice = tools.choice(body.tool_choice) if body.tools else "none"
        except ToolSchemaError as exc:
            raise ApiError(400, str(exc), param=exc.param, code="invalid_tools") from None
        return await direct_model.complete(
            svc, conversations,
            user_id=user_id, messages=messages, tools=tools, tool_choice=choice, response_schema=schema,
            temperature=body.temperature, max_tokens=body.max_completion_tokens or body.max_tokens, stream=body.stream,
            include_usage=include_usage,
        )

    return router
