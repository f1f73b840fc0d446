"""Who is calling: the optional API key, and the user id requests act for.

The key (`MMAGENT_API_KEY`) guards the whole `/v1` API except `/v1/health`, and `/mcp`; the UI
at `/` is not behind it (it serves the person at the machine). With the shared key the user id
is a label that keys threads, memories and files, not a proof of identity: anyone holding it may
act for any user. A per-user key (`server.api_keys`) acts for its own user only.
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
    """Dependency of every protected router; a no-op when no key is configured. A per-user key
    (`server.api_keys`) also fixes the user the request acts for (see `user_id_of`)."""
    request.state.key_user = key_user(services(request).settings, request.headers.get("authorization", ""))


def key_user(settings, authorization: str) -> str | None:
    """The user a per-user key belongs to; None for the shared key or when no key is
    configured. Raises a 401 ApiError when keys are configured and this is none of them."""
    secret = settings.api_key
    expected = secret.get_secret_value().strip() if secret is not None else ""
    per_user = {user: key.get_secret_value().strip() for user, key in settings.server.api_keys.items()}
    if not expected and not any(per_user.values()):
        return None
    scheme, _, given = authorization.partition(" ")
    # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
    given_bytes = given.strip().encode()
    if scheme.lower() == "bearer":
        if expected and secrets.compare_digest(given_bytes, expected.encode()):
            return None
        for user, key in per_user.items():
            if key and secrets.compare_digest(given_bytes, key.encode()):
                return user
    raise ApiError(
        401,
        "missing or wrong API key: send the header `Authorization: Bearer <MMAGENT_API_KEY>`",
        code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )


def user_id_of(request: Request, body_user: str | None = None) -> str:
    """A per-user key's user first; then the OpenAI `user` field, then the `X-MMAGENT-User`
    header; "api" when none applies."""
    owner = getattr(request.state, "key_user", None)
    if owner is not None:
        return owner
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
