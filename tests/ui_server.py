"""A real `mmagent serve` process for browser and client tests, and Debian's Chromium to drive it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out on a closed network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mmagent_command() -> list[str]:
    script = Path(sys.executable).parent / "mmagent"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from apps.cli import main; main()"]


@contextmanager
def running_server(tmp: Path, llm: str, extra_env: dict[str, str] | None = None, timeout_s: float = 90):
    """Starts `mmagent serve` on a free loopback port; yields its base URL; stops it."""
    port = free_port()
    env = {**os.environ, "MMAGENT_DATA_DIR": str(tmp / "data"), "HF_HUB_OFFLINE": "1", **(extra_env or {})}
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [*mmagent_command(), "serve", "--port", str(port), "--llm", llm], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not come up")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# Module scope: Playwright's sync API keeps an event loop running in this thread until it stops,
# and asyncio.run() in later test modules would fail beside it.
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
