"""Who is at this browser: a user id and the open thread, kept in the browser's own storage.

Each browser profile gets its own random user id on first visit, so two visitors never share
history or memory, and a reload keeps your chats. Nothing about visitors lives in the process.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

_ID = re.compile(r"^[0-9a-f]{32}$")


def new_id() -> str:
    return uuid.uuid4().hex


def ensure(session: dict[str, Any] | None) -> dict[str, Any]:
    """A valid session: ids made when missing or not ours (a tampered value gets fresh ones)."""
    session = dict(session or {})
    if not _ID.match(str(session.get("user_id") or "")):
        session["user_id"] = new_id()
        session["thread_id"] = None
    if not _ID.match(str(session.get("thread_id") or "")):
        session["thread_id"] = new_id()
    return session


def user_key(session: dict[str, Any]) -> str:
    """The user id the agent sees: prefixed so browser users never collide with API or CLI users."""
    return f"web-{session['user_id']}"
