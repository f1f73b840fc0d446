"""`mmagent doctor`: what would run, where, and why."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agent.config import Settings


def report(settings: Settings) -> dict[str, dict[str, Any]]:
    from agent.llm.factory import resolve_auto
    from agent.runner import default_tools
    from multimodal.devices import device_report

    if settings.llm == "auto":
        spec, reason = resolve_auto(settings)
        llm = {"setting": "auto", "chosen": spec, "why": reason}
    else:
        llm = {"setting": settings.llm, "chosen": settings.llm, "why": "set explicitly (--llm, MMAGENT_LLM or config file)"}
    config_file = Path(os.environ.get("MMAGENT_CONFIG", "mmagent.toml"))
    return {
        "llm": llm,
        "devices": device_report(),
        "data": {
            "data_dir": str(settings.data_dir.resolve()),
            "writable": _writable(settings.data_dir),
            "config_file": f"{config_file} ({'found' if config_file.is_file() else 'not found'})",
        },
        "tools": {tool.name: tool.description.splitlines()[0] for tool in default_tools(settings)},
        "mcp": _mcp(settings),
        "tracing": _tracing(settings),
        "models": _models(settings),
    }


def _mcp(settings: Settings) -> dict[str, Any]:
    """Each configured MCP server, started now to see whether it is up, and its tools."""
    import asyncio

    from agent.runner import open_tools
    from tools.registry import ToolRegistry

    if not settings.mcp.servers:
        return {"servers": "none configured ([mcp.servers.NAME] in mmagent.toml)", "serving": _serving(settings)}

    async def probe() -> dict[str, Any]:
        async with open_tools(settings, ToolRegistry()) as (registry, hub, errors):
            out: dict[str, Any] = {}
            for status in hub.status():
                name = status["server"]
                if not settings.mcp.servers[name].enabled:
                    continue
                tools = [t.name for t in registry if getattr(t, "server", None) == name]
                state = f"up, {len(tools)} tools ({', '.join(tools)})" if errors.get(name) is None else f"DOWN: {errors[name]}"
                out[name] = f"{status['transport']} {status['target']}: {state}" + (" [ask first]" if status["ask_first"] else "")
            for name, config in settings.mcp.servers.items():
                if not config.enabled:
                    out[name] = "disabled"
            return out

    return {**asyncio.run(probe()), "serving": _serving(settings)}


def _serving(settings: Settings) -> str:
    http = "and at /mcp in `mmagent serve`" if settings.mcp.serve_http else "(/mcp is off: mcp.serve_http = false)"
    return f"our tools over stdio with `mmagent mcp` {http}"


def _tracing(settings: Settings) -> dict[str, Any]:
    if not settings.tracing.enabled:
        return {"enabled": False}
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    where = f"OTLP to {endpoint}" if endpoint else f"JSON per run under {(settings.data_dir / 'traces').resolve()}"
    return {"enabled": True, "export": where}


def _models(settings: Settings) -> dict[str, Any]:
    """Each image model: its source, where it would load from, device and availability (nothing is loaded)."""
    from multimodal.artifacts import allowed_dirs
    from multimodal.model_manager import ModelManager

    manager = ModelManager(settings)
    out: dict[str, Any] = dict(manager.describe())
    budget = settings.models.memory_budget_gb
    out["memory_budget"] = f"{budget:g} GiB per device" if budget else "auto: 90% of GPU memory, half the RAM on CPU"
    out["allowed_image_dirs"] = [str(p) for p in allowed_dirs(settings)]
    return out


def _writable(path: Path) -> bool:
    probe = path if path.exists() else path.parent
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK)
