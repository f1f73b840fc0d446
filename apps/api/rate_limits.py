"""Per-key rate limits on `/v1` (settings `[rate_limits]`, docs/api.md): requests per minute, and
agent runs at the same time. Beyond either: 429 with `Retry-After` and the API's JSON error body.

The key is the bearer token (hashed; so one API key is one budget however many users it acts
for), else the client address. `/v1/health` is never limited (load balancers probe it).

A pure ASGI middleware rather than a route dependency: a run's slot must stay taken until its
streamed response has ended, which is when the ASGI call returns.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import OrderedDict, deque
from typing import Any

from agent.config import RateLimits
from apps.api.errors import ApiError

WINDOW_S = 60.0
#: What counts as an agent run: chat completions and thread runs/resumes.
RUN_PATHS = re.compile(r"^/v1/(chat/completions|threads/[^/]+/(runs|resume))/?$")


class Limiter:
    """Sliding one-minute windows and run counters per key, in this process (not shared by
    several server processes: each one enforces its own limits)."""

    def __init__(self, settings: RateLimits, clock=time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._runs: dict[str, int] = {}

    def admit(self, key: str) -> float | None:
        """Record a request; None when it may go on, else the seconds until it could."""
        limit = self.settings.requests_per_minute
        if limit is None:
            return None
        now = self.clock()
        hits = self._hits.pop(key, None) or deque()
        self._hits[key] = hits  # most recently seen last
        while hits and hits[0] <= now - WINDOW_S:
            hits.popleft()
        while len(self._hits) > self.settings.max_keys:
            self._hits.popitem(last=False)
        if len(hits) >= limit:
            return hits[0] + WINDOW_S - now
        hits.append(now)
        return None

    def start_run(self, key: str) -> bool:
        limit = self.settings.concurrent_runs
        if limit is not None and self._runs.get(key, 0) >= limit:
            return False
        self._runs[key] = self._runs.get(key, 0) + 1
        return True

    def end_run(self, key: str) -> None:
        left = self._runs.get(key, 0) - 1
        if left > 0:
            self._runs[key] = left
        else:
            self._runs.pop(key, None)


def client_key(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return "key:" + hashlib.sha256(token.strip().encode("latin-1")).hexdigest()[:16]
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"


class RateLimitMiddleware:
    def __init__(self, app: Any, settings: RateLimits) -> None:
        self.app = app
        self.limiter = Limiter(settings)

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/v1/") or path.rstrip("/") == "/v1/health":
            await self.app(scope, receive, send)
            return
        key = client_key(scope)
        wait = self.limiter.admit(key)
        if wait is not None:
            limit = self.limiter.settings.requests_per_minute
            await _refuse(send, path, math.ceil(max(wait, 1)), f"rate limit reached: {limit} requests per minute for this key; retry after the number of seconds in Retry-After")
            return
        is_run = scope.get("method") == "POST" and RUN_PATHS.match(path) is not None
        if not is_run:
            await self.app(scope, receive, send)
            return
        if not self.limiter.start_run(key):
            limit = self.limiter.settings.concurrent_runs
            await _refuse(send, path, 1, f"too many runs at once: at most {limit} agent runs at the same time for this key; retry when one has finished")
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.end_run(key)


async def _refuse(send, path: str, retry_after: int, message: str) -> None:
    error = ApiError(429, message, type="rate_limit_error", code="rate_limit_exceeded")
    body = json.dumps(error.body("tool" if path.startswith("/v1/tools") else "openai")).encode()
    await send({
        "type": "http.response.start", "status": 429,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"retry-after", str(retry_after).encode())],
    })
    await send({"type": "http.response.body", "body": body})
