"""Who is calling: the optional API key, and the user id requests act for.

The key (`MMAGENT_API_KEY`) guards the whole `/v1` API except `/v1/health`; the UI at `/` is
not behind it (it serves the person at the machine). The user id is a label that keys threads,
memories and files, not a proof of identity: anyone holding the key may act for any user.
"""

from __future__ import annotations

import re
import secrets

from fastapi import Request

from apps.api.errors import ApiError
from apps.server import Services, ServicesNotReady, services_of

DEFAULT_USER = "api"
USER_HEADER = "X-MMAGENT-User"
# Not dots alone: user ids name per-user folders, and "." or ".." would name a parent.
_USER_ID = re.compile(r"^(?!\.+$)[\w.@:+\-]{1,128}$")


def services(request: Request) -> Services:
    try:
        return services_of(request.app)
    except ServicesNotReady as exc:
        raise ApiError(503, str(exc)) from None


async def require_api_key(request: Request) -> None:
    """Dependency of every protected router; a no-op when no key is configured."""
    secret = services(request).settings.api_key
    expected = secret.get_secret_value().strip() if secret is not None else ""
    if not expected:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected.encode()):
        raise ApiError(
            401,
            "missing or wrong API key: send the header `Authorization: Bearer <MMAGENT_API_KEY>`",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )


def user_id_of(request: Request, body_user: str | None = None) -> str:
    """The OpenAI `user` field wins over the `X-MMAGENT-User` header; "api" when neither is sent."""
    if body_user is not None:
        return _checked(body_user, "user")
    header = request.headers.get(USER_HEADER)
    if header is not None:
        return _checked(header, USER_HEADER)
    return DEFAULT_USER


def _checked(value: str, param: str) -> str:
    value = value.strip()
    if not _USER_ID.match(value):
        raise ApiError(400, f"{param} must be 1-128 letters, digits or . _ @ : + - (not dots alone)", param=param)
    return value
