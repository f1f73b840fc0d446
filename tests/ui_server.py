"""A real `mmagent serve` process for browser and client tests, and Debian's Chromium to drive it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.processes import free_port, stop, wait_until_up

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out on a closed network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


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
        wait_until_up(proc, url + "/v1/health", timeout_s, tmp / "server.log")
        yield url
    finally:
        stop(proc, grace_s=10)
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
