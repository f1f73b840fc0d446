"""`POST /v1/moderations`: the safety layer's classifier in OpenAI's moderation format.

Request: `{"input": "text" | ["text", ...] | [{"type": "text", "text": "..."}, ...], "model": "..."}`
(the model name is echoed, any name is accepted). Response: `{"id", "model", "results": [...]}`
with one result per input: `flagged`, `categories` and `category_scores` under OpenAI's names
(`violence`, `self-harm`, `sexual/minors`, `hate`, `harassment`, `illicit`, `illicit/violent`, ...)
plus this classifier's own (`weapons`, `drugs`, `malware`, `fraud`, `injection`, `self_harm`,
`sexual_minors`), and `category_applied_input_types`. Images are not moderated (400).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from apps.api.auth import require_api_key, services
from apps.api.errors import ApiError, ApiRoute

MODEL = "mmagent-moderation"
MAX_INPUTS = 64
MAX_CHARS = 100_000

#: Our categories -> OpenAI's (an OpenAI category is flagged when any of ours that map to it is).
OPENAI_NAMES: dict[str, list[str]] = {
    "violence": ["violence"],
    "weapons": ["illicit/violent", "violence"],
    "self_harm": ["self-harm", "self-harm/intent", "self-harm/instructions"],
    "sexual_minors": ["sexual", "sexual/minors"],
    "hate": ["hate"],
    "harassment": ["harassment", "harassment/threatening"],
    "drugs": ["illicit"],
    "malware": ["illicit"],
    "fraud": ["illicit"],
}
OPENAI_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent", "self-harm",
    "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence", "violence/graphic",
)


class ModerationRequest(BaseModel):
    input: str | list[str] | list[dict[str, Any]] = Field(description="A text, a list of texts, or OpenAI's list of typed parts.")
    model: str | None = None


def texts_of(value: str | list[Any]) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    if not items:
        raise ApiError(400, "input must not be empty", param="input")
    if len(items) > MAX_INPUTS:
        raise ApiError(400, f"at most {MAX_INPUTS} inputs per request, got {len(items)}", param="input")
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            if item.get("type") != "text" or not isinstance(item.get("text"), str):
                raise ApiError(400, f"input[{i}]: only text parts ({{\"type\": \"text\", \"text\": ...}}) are moderated here", param=f"input[{i}]")
            item = item["text"]
        if len(item) > MAX_CHARS:
            raise ApiError(400, f"input[{i}] is longer than {MAX_CHARS} characters", param=f"input[{i}]")
        texts.append(item)
    return texts


def result_of(verdict: Any) -> dict[str, Any]:
    categories: dict[str, bool] = {name: False for name in OPENAI_CATEGORIES}
    scores: dict[str, float] = {name: 0.0 for name in OPENAI_CATEGORIES}
    for ours, flagged in verdict.categories.items():
        score = float(verdict.scores.get(ours, 0.0))
        for name in [ours, *OPENAI_NAMES.get(ours, [])]:
            categories[name] = categories.get(name, False) or bool(flagged)
            scores[name] = round(max(scores.get(name, 0.0), score), 4)
    return {
        "flagged": bool(verdict.flagged),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] for name in categories},
    }


def moderations_router() -> APIRouter:
    router = APIRouter(route_class=ApiRoute, dependencies=[Depends(require_api_key)], tags=["openai"])

    @router.post("/moderations")
    async def moderations(body: ModerationRequest, request: Request) -> dict[str, Any]:
        texts = texts_of(body.input)
        guard = services(request).agent.safety
        if guard is None:
            raise ApiError(503, "moderation is not available on this server")
        verdicts = await guard.check_many(texts)
        return {"id": f"modr-{uuid.uuid4().hex}", "model": body.model or MODEL, "results": [result_of(v) for v in verdicts]}

    return router
