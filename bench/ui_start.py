"""Seconds from starting the server to the first page, mmagent vs a bare Gradio ChatInterface.

Both are started the same way: a fresh Python process serving with uvicorn on loopback, timed
from process start until `GET /` returns the page (mmagent: `mmagent serve`, with the UI and the
API in one process and the default model spec, which loads lazily). Repeated runs; medians.
With `--reply`, mmagent is also timed to its first chat reply (`POST /v1/chat/completions`
right after the page is up; it loads the model), so a faster page cannot hide a slower reply.

    python bench/ui_start.py [--runs 3] [--llm auto] [--reply]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.processes import free_port  # noqa: E402
from tests.ui_server import mmagent_command  # noqa: E402

BARE_GRADIO = """
import sys, gradio as gr, uvicorn
from fastapi import FastAPI
demo = gr.ChatInterface(lambda message, history: message)
app = gr.mount_gradio_app(FastAPI(), demo, path="/")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def time_to_page(command: list[str], port: int, cwd: Path, env: dict[str, str], timeout_s: float = 180,
                 reply: bool = False) -> tuple[float, float | None]:
    """Seconds from process start to the first page, and (with `reply`) to the first chat reply."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page_s = None
        while time.perf_counter() - start < timeout_s:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {proc.returncode}")
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                if page.status_code == 200 and "<html" in page.text.lower():
                    page_s = time.perf_counter() - start
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        if page_s is None:
            raise RuntimeError("no page within the time limit")
        if not reply:
            return page_s, None
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=timeout_s,
                            json={"model": "mmagent", "messages": [{"role": "user", "content": "What is 2+3?"}]})
        answer.raise_for_status()
        return page_s, time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--llm", default="auto", help="the model spec mmagent serves (loads lazily, so it should not matter)")
    parser.add_argument("--reply", action="store_true", help="also time mmagent to its first chat reply")
    args = parser.parse_args()

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    ours, bare, replies = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        env["MMAGENT_DATA_DIR"] = str(Path(tmp) / "data")
        for _ in range(args.runs):
            port = free_port()
            page_s, reply_s = time_to_page([*mmagent_command(), "serve", "--port", str(port), "--llm", args.llm], port, Path(tmp), env,
                                           reply=args.reply)
            ours.append(page_s)
            if reply_s is not None:
                replies.append(reply_s)
            port = free_port()
            bare.append(time_to_page([sys.executable, "-c", BARE_GRADIO, str(port)], port, Path(tmp), env)[0])
    m_ours, m_bare = statistics.median(ours), statistics.median(bare)
    print(f"runs: {args.runs}  (median seconds from process start to the first page)")
    print(f"mmagent serve (UI + API, llm={args.llm}): {m_ours:.2f} s   all: {', '.join(f'{t:.2f}' for t in ours)}")
    print(f"bare gradio ChatInterface:               {m_bare:.2f} s   all: {', '.join(f'{t:.2f}' for t in bare)}")
    print(f"ratio mmagent / bare: {m_ours / m_bare:.2f}")
    if replies:
        print(f"mmagent first chat reply (from process start): {statistics.median(replies):.2f} s   "
              f"all: {', '.join(f'{t:.2f}' for t in replies)}")


if __name__ == "__main__":
    main()
