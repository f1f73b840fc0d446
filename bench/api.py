"""HTTP API throughput: requests/s and latency at 1, 8 and 32 concurrent clients.

Starts `mmagent`'s server (scripted model, so the figures are the server's own cost: HTTP,
validation, the agent graph, checkpoints) in a subprocess, then drives it with httpx:
  * tool invoke        POST /v1/tools/calculator/invoke
  * chat (agent)       POST /v1/chat/completions, one agent turn (plan + answer, SQLite thread)
  * chat (client tools) POST /v1/chat/completions with a client tool (one model call)

    .venv/bin/python bench/api.py [--requests 200] [--levels 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.processes import free_port, stop, wait_until_up  # noqa: E402

SCRIPT = [
    {"role": "assistant", "content": "1. Answer"},
    {"role": "assistant", "content": "Hello, this is the scripted answer."},
]
CLIENT_TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}


def serve(port: int, data_dir: str, script: str) -> None:
    """The server process (`bench/api.py --serve ...`)."""
    import uvicorn

    from agent.config import Settings
    from apps.server import create_app

    settings = Settings(data_dir=Path(data_dir), memory={"long_term": False}, api_key=None)
    app = create_app(settings, llm=f"scripted:{script}", ui=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


async def load(url: str, path: str, body: dict, total: int, clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    remaining = total

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            response = await http.post(path, json=body)
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await http.post(path, json=body)  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(clients)))
        wall = time.perf_counter() - start
    return total / wall, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per level")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "DATA_DIR", "SCRIPT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.serve[2])
        return

    from apps.tasks import percentile  # nearest rank, as in `mmagent run`'s summary

    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.jsonl"
        script.write_text("\n".join(json.dumps(m) for m in SCRIPT) + "\n")
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(Path(tmp) / "data"), str(script)], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_until_up(proc, url + "/v1/models", 120)
            except RuntimeError as exc:
                raise SystemExit(f"the server did not start: {exc}") from None
            cases = [
                ("tool invoke", "/v1/tools/calculator/invoke", {"expression": "17% of 2340"}, args.requests),
                ("chat (agent turn)", "/v1/chat/completions",
                 {"model": "mmagent", "messages": [{"role": "user", "content": "hi"}]}, max(args.requests // 2, 1)),
                ("chat (client tools)", "/v1/chat/completions",
                 {"model": "mmagent", "messages": [{"role": "user", "content": "hi"}], "tools": [CLIENT_TOOL]}, args.requests),
            ]
            print(f"{os.cpu_count()} CPUs · server in a subprocess · scripted model · requests per level: see n")
            print(f"{'endpoint':22} {'clients':>7} {'n':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
            for name, path, body, total in cases:
                for clients in levels:
                    rate, latencies = asyncio.run(load(url, path, body, total, clients))
                    print(f"{name:22} {clients:>7} {total:>5} {rate:>8.1f} {statistics.median(latencies) * 1000:>8.1f} {percentile(latencies, 95) * 1000:>8.1f}")
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
