"""Uniform JSON errors and the request size limit for every `/v1` route.

Both live in `ApiRoute`, the route class of the API routers (FastAPI's documented hook for
custom request handling), rather than in app-wide exception handlers: the API is one router
mounted into an app that also serves the Gradio UI, and the UI's own error pages must stay
as they are. Bad input of any kind ends here as a 4xx with a JSON body, never a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Literal

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from apps.errors import one_line

log = logging.getLogger(__name__)

#: OpenAI clients parse `{"error": {...}}`; the tool endpoints answer `{"ok": false, "error": "..."}`.
ErrorStyle = Literal["openai", "tool"]

DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    502: "model_error",
    503: "server_starting",
}


class ApiError(Exception):
    """A failure to report to the client as JSON with this status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,  # noqa: A002 - the OpenAI field name
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
        self.param = param
        self.code = code
        self.headers = headers

    def body(self, style: ErrorStyle = "openai") -> dict[str, Any]:
        if style == "tool":
            return {"ok": False, "error": self.message}
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self, style: ErrorStyle = "openai") -> JSONResponse:
        return JSONResponse(self.body(style), status_code=self.status, headers=self.headers)


def from_validation(exc: RequestValidationError) -> ApiError:
    """FastAPI's validation errors as one readable 400, naming the first bad field as `param`."""
    errors = list(exc.errors())
    if not errors:
        return ApiError(400, "invalid request")
    parts, param = [], None
    for err in errors[:5]:
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "path", "query", "header"):
            loc = loc[1:]
        where = ".".join(loc)
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "")
            return ApiError(400, f"the request body is not valid JSON ({detail})".replace(" ()", ""), code="invalid_json")
        if err.get("type") == "missing" and not where:
            return ApiError(400, "the request needs a JSON body", code="missing_body")
        if not where and err.get("type") in ("model_attributes_type", "dict_type", "model_type"):
            return ApiError(400, "the request body must be a JSON object (with Content-Type: application/json)", code="invalid_json")
        param = param or where or None
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return ApiError(400, one_line("; ".join(parts) + more, 1000), param=param)


class LimitedRequest(Request):
    """A request whose body is read at most `max_bytes` far (chunked uploads have no Content-Length)."""

    def __init__(self, scope, receive, max_bytes: int) -> None:
        super().__init__(scope, receive)
        self.max_bytes = max_bytes

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            chunks, size = [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > self.max_bytes:
                    # An HTTPException, because FastAPI turns any other error here into a 400.
                    raise HTTPException(413, too_large(self.max_bytes).message)
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is larger than {limit} bytes (settings: server.max_request_bytes)", code="request_too_large")


def _max_bytes(request: Request) -> int:
    services = getattr(request.app.state, "services", None)
    return services.settings.server.max_request_bytes if services is not None else DEFAULT_MAX_REQUEST_BYTES


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        raise ApiError(400, "the Content-Length header is not a number") from None
    if size > limit:
        raise too_large(limit)


def _from_http(exc: HTTPException) -> ApiError:
    if exc.status_code == 413:
        return ApiError(413, str(exc.detail), code="request_too_large")
    if exc.status_code == 400 and "parsing the body" in str(exc.detail):  # e.g. bytes that are not UTF-8
        return ApiError(400, "the request body could not be read as UTF-8 JSON", code="invalid_json")
    return ApiError(exc.status_code, str(exc.detail), headers=exc.headers)


class ApiRoute(APIRoute):
    """Route class for `/v1`: size limit first, then every failure as JSON in `error_style`."""

    error_style: ClassVar[ErrorStyle] = "openai"

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        style = self.error_style

        async def route_handler(request: Request) -> Response:
            from apps.server import ServicesNotReady

            try:
                limit = _max_bytes(request)
                _check_declared_length(request, limit)
                return await handler(LimitedRequest(request.scope, request.receive, limit))
            except ApiError as exc:
                return exc.response(style)
            except RequestValidationError as exc:
                return from_validation(exc).response(style)
            except HTTPException as exc:
                return _from_http(exc).response(style)
            except ServicesNotReady as exc:
                return ApiError(503, str(exc)).response(style)
            except Exception:  # a bug, not bad input: log it, answer JSON without internals
                log.exception("unhandled error in %s %s", request.method, request.url.path)
                return ApiError(500, "internal error (see the server log)", type="server_error").response(style)

        return route_handler


class ToolApiRoute(ApiRoute):
    error_style: ClassVar[ErrorStyle] = "tool"


def add_catch_all(router: APIRouter, known: list[APIRouter]) -> None:
    """The last `/v1` route: unknown paths get a JSON 404, known paths with a wrong method a 405
    (without it the UI mounted at "/" would answer them with its own page)."""
    routes = [r for sub in known for r in sub.routes if isinstance(r, APIRoute)]

    async def catch_all(request: Request, path: str) -> None:
        relative = "/" + path
        allowed = sorted({m for r in routes if r.path_regex.match(relative) for m in (r.methods or ())})
        if allowed:
            raise ApiError(
                405, f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        raise ApiError(404, f"no such endpoint: {request.method} {request.url.path} (see /docs for the API)", code="unknown_endpoint")

    router.add_api_route(
        "/{path:path}", catch_all, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"],
        include_in_schema=False,
    )


def json_object(raw: bytes, *, what: str = "the request body") -> dict[str, Any]:
    """Parse a body that must be a JSON object (an empty body is `{}`)."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"{what} is not valid JSON ({exc})", code="invalid_json") from None
    except RecursionError:  # [[[[... thousands deep
        raise ApiError(400, f"{what} is nested too deeply", code="invalid_json") from None
    except ValueError as exc:  # e.g. an integer literal over Python's 4300-digit limit
        raise ApiError(400, f"{what} is not valid JSON ({one_line(str(exc), 200)})", code="invalid_json") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"{what} must be a JSON object, got {type(value).__name__}")
    return value
