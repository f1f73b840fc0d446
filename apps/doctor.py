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
        "models": _models(settings),
    }


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
