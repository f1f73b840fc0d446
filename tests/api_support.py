"""A real uvicorn server on a free loopback port, for the API tests (thread, not subprocess:
the scripted model and the settings are built in the test)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from agent.config import Settings
from tests.conftest import write_script


def api_settings(data_dir: Path, **overrides: Any) -> Settings:
    # Long-term memory is the memory engineer's subject; here it would only add start-up time.
    overrides.setdefault("memory", {"long_term": False})
    overrides.setdefault("api_key", None)  # a key in the developer's environment must not leak in
    return Settings(data_dir=data_dir, **overrides)


@contextmanager
def running(app, **options: Any) -> Iterator[str]:
    """Serve `app` until the block ends; yields the base URL (http://127.0.0.1:PORT). `options`:
    more uvicorn settings (e.g. `apps.server.HTTP_OPTIONS`, what `mmagent serve` uses)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@contextmanager
def scripted_server(tmp_path: Path, *replies: dict[str, Any], ui: bool = False, **settings: Any) -> Iterator[str]:
    from apps.server import create_app

    script = write_script(tmp_path / f"script-{time.monotonic_ns()}.jsonl", *replies)
    app = create_app(api_settings(tmp_path / "data", **settings), llm=f"scripted:{script}", ui=ui)
    with running(app) as url:
        yield url


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event name, parsed data) for each server-sent event of a finished response."""
    events, name, data = [], "message", []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if data:
                text = "\n".join(data)
                events.append((name, text if text == "[DONE]" else json.loads(text)))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    if data:
        text = "\n".join(data)
        events.append((name, text if text == "[DONE]" else json.loads(text)))
    return events
