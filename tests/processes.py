"""Server processes that tests and benches start: a free port, waiting until one answers, stopping it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


ROOT = Path(__file__).resolve().parent.parent


def server_env(data_dir: Path, extra: dict[str, str], *, keep_openai: bool = False) -> dict[str, str]:
    """The environment of an `mmagent serve` a bench starts: settings from this run alone
    (no MMAGENT_* of the caller; OPENAI_* only when `keep_openai`, for an openai: backend),
    hub offline, web search off (loopback only)."""
    drop = ("MMAGENT_",) if keep_openai else ("MMAGENT_", "OPENAI_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update({
        "MMAGENT_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "MMAGENT_KNOWLEDGE__WEB_SEARCH": "false",
        "PYTHONPATH": str(ROOT), **extra,
    })
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chroma_cli() -> str | None:
    """The `chroma` command installed with chromadb (beside this Python first), or None."""
    beside = Path(sys.executable).with_name("chroma")
    return str(beside) if beside.exists() else shutil.which("chroma")


def wait_until_up(proc: subprocess.Popen, url: str, timeout_s: float, log_path: Path | None = None, what: str = "server") -> None:
    """Polls `url` until it answers 200. Raises RuntimeError, with the log's tail, when the
    process exits first or `timeout_s` passes (the process is left for the caller to stop)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during start-up: {_tail(log_path)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer {url} within {timeout_s:.0f} s: {_tail(log_path)}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen, grace_s: float = 15) -> None:
    """Terminates `proc`, and kills it when it does not exit within `grace_s`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _tail(log_path: Path | None) -> str:
    return log_path.read_text(errors="replace")[-2000:] if log_path and log_path.exists() else "(no log)"
