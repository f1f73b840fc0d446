"""MCP servers for the tests: the SDK-written fixture server (stdio, or HTTP in a subprocess)
and the `mcp-server-time` package from PyPI, as `[mcp.servers.NAME]` settings."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.processes import ROOT, free_port, stop

FIXTURE = str(Path(__file__).with_name("mcp_fixture_server.py"))


def fixture_stdio(**extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [FIXTURE], **extra}


def time_server(**extra: Any) -> dict[str, Any]:
    """`mcp-server-time` (a real server package from the registry; it needs no network)."""
    return {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"], **extra}


def mmagent_stdio(data_dir: Path, user: str = "local") -> dict[str, Any]:
    """Our own `mmagent mcp`, as a client would configure it (this worktree's code)."""
    env = {"PYTHONPATH": str(ROOT), "MMAGENT_DATA_DIR": str(data_dir), "MMAGENT_KNOWLEDGE__WEB_SEARCH": "false", "HF_HUB_OFFLINE": "1"}
    return {"command": sys.executable, "args": ["-m", "apps.cli", "mcp", "--user", user], "env": env, "cwd": str(ROOT)}


@contextmanager
def fixture_http(tmp_path: Path) -> Iterator[str]:
    """The fixture server over streamable HTTP in its own process; yields its /mcp URL."""
    port = free_port()
    log = open(tmp_path / f"fixture-http-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, FIXTURE, "http", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(proc, port, 30)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(proc, 5)
        log.close()


def wait_for_port(proc: subprocess.Popen, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the MCP fixture server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the MCP fixture server did not listen on {port} within {timeout_s:g} s")
