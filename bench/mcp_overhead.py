"""What an MCP tool call costs over a local call of the same tool.

The same tool (our calculator on a small expression) is called N times three ways, the way the
agent calls tools (`ToolRegistry.ainvoke`, argument validation included):
  local        the registry's own calculator, in this process;
  mcp stdio    the calculator of `mmagent mcp` (our MCP server, a subprocess), through this
               process's MCP client (tools/mcp_tools.py), as `[mcp.servers.mm]` would;
  mcp http     the calculator at /mcp of an `mmagent serve` app (a subprocess), likewise.
Prints median and p95 per way and the overhead over local (difference of medians and p95s).

    python bench/mcp_overhead.py [--calls 300] [--expression "17% * 2340"]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config import Settings  # noqa: E402
from tests.mcp_support import mmagent_stdio  # noqa: E402
from tests.processes import ROOT, free_port, server_env, stop, wait_until_up  # noqa: E402
from tools.calculator import calculator_tool  # noqa: E402
from tools.mcp_tools import McpHub  # noqa: E402
from tools.registry import ToolRegistry  # noqa: E402

SERVE = """
import sys, uvicorn
from agent.config import Settings
from apps.server import create_app
settings = Settings(memory={"long_term": False}, knowledge={"web_search": False})
uvicorn.run(create_app(settings, llm="scripted:" + sys.argv[2], ui=False), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


async def timed(registry: ToolRegistry, name: str, arguments: dict, n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        result = await registry.ainvoke(name, arguments)
        if not result.ok:
            raise SystemExit(f"{name} failed: {result.error}")
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        await registry.ainvoke(name, arguments)
        seconds.append(time.perf_counter() - start)
    return seconds


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


async def over_mcp(settings: Settings, arguments: dict, n: int) -> list[float]:
    """Timed calls of our calculator through the MCP server `mm` that `settings` configures."""
    hub, registry = McpHub(settings), ToolRegistry()
    try:
        errors = await hub.attach(registry)
        if errors["mm"]:
            raise SystemExit(errors["mm"])
        return await timed(registry, "mm__calculator", arguments, n)
    finally:
        await hub.aclose()


async def measure(n: int, expression: str, work: Path) -> dict[str, list[float]]:
    arguments = {"expression": expression}
    out = {"local": await timed(ToolRegistry([calculator_tool()]), "calculator", arguments, n)}

    out["mcp stdio"] = await over_mcp(Settings(data_dir=work / "client", mcp={"servers": {"mm": mmagent_stdio(work / "stdio-data")}}), arguments, n)

    port = free_port()
    script = work / "script.jsonl"
    script.write_text('{"role": "assistant", "content": "unused"}\n')
    log = open(work / "serve.log", "w")  # noqa: SIM115
    env = server_env(work / "http-data", {})
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(port), str(script)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(proc, f"http://127.0.0.1:{port}/v1/health", 120, work / "serve.log", "mmagent serve")
        http = Settings(data_dir=work / "client", mcp={"servers": {"mm": {"url": f"http://127.0.0.1:{port}/mcp"}}})
        out["mcp http"] = await over_mcp(http, arguments, n)
    finally:
        stop(proc, 10)
        log.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--expression", default="17% * 2340")
    args = parser.parse_args()
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(measure(args.calls, args.expression, Path(tmp)))
    local = results["local"]
    print(f"calculator({args.expression!r}), {args.calls} calls each, ms per call")
    print(f"{'way':<10} {'median':>8} {'p95':>8} {'overhead median':>16} {'overhead p95':>13}")
    for way, values in results.items():
        med, top = statistics.median(values) * 1e3, p95(values) * 1e3
        extra = "" if way == "local" else f"{med - statistics.median(local) * 1e3:>16.2f} {top - p95(local) * 1e3:>13.2f}"
        print(f"{way:<10} {med:>8.2f} {top:>8.2f} {extra}")


if __name__ == "__main__":
    main()
