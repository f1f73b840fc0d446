"""Images sent to the API: data URLs become upload artifacts; nothing is fetched.

The server never downloads a client-given URL (no server-side request forgery). Uploads go
through the same checks as the UI's (`multimodal.artifacts.save_upload`: a real, decodable
image of bounded size), and references must resolve inside the allowed folders.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from apps.api.errors import ApiError
from tools.registry import ToolError

_DATA_URL = re.compile(r"^data:(image/[A-Za-z0-9.+-]+)?(;[^,]*)?,(.*)$", re.S)
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/gif": "gif", "image/webp": "webp", "image/bmp": "bmp"}


def save_data_url(url: str, settings: Any, param: str) -> str:
    """Saves a base64 data URL as an upload; returns its artifact reference."""
    from multimodal.artifacts import StorageFull, save_upload

    match = _DATA_URL.match(url)
    if not match or not match.group(1):
        raise ApiError(400, f"{param}: images must be data:image/...;base64 URLs (the server does not fetch URLs)", param=param)
    media_type, params, payload = match.groups()
    if "base64" not in (params or ""):
        raise ApiError(400, f"{param}: only base64 data URLs are accepted", param=param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{param}: the image data is not valid base64", param=param) from None
    try:
        artifact = save_upload(settings, data, f"upload.{_EXTENSIONS.get(media_type.lower(), 'img')}")
    except StorageFull as exc:  # the server's disk, not the client's input
        raise ApiError(507, f"{param}: {exc}", param=param, code="storage_full") from None
    except ToolError as exc:
        raise ApiError(400, f"{param}: {exc}", param=param) from None
    return artifact["ref"]


def resolve_image(ref: str, settings: Any, param: str) -> str:
    """A data URL (saved), an artifact reference, or a file in the allowed folders, as a reference the tools accept."""
    from multimodal.artifacts import resolve_image as resolve

    if ref.startswith("data:"):
        return save_data_url(ref, settings, param)
    try:
        return str(resolve(settings, ref))
    except ToolError as exc:
        raise ApiError(400, f"{param}: {exc}", param=param) from None
