"""How much memory image models take: measured on the loaded model, guessed from the files on disk
before loading, and given back after unloading. Used by `ModelManager`'s per-device budgets."""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def memory_bytes(obj: Any) -> int:
    """Bytes of the tensors held by a loaded model: torch modules, diffusers pipelines, or
    simple containers of them (each tensor counted once)."""
    import torch

    seen: set[int] = set()
    total = 0

    def add_module(module: torch.nn.Module) -> None:
        nonlocal total
        for tensor in [*module.parameters(), *module.buffers()]:
            key = tensor.data_ptr() if tensor.device.type != "meta" else id(tensor)
            if key not in seen:
                seen.add(key)
                total += tensor.numel() * tensor.element_size()

    def visit(value: Any, depth: int) -> None:
        if isinstance(value, torch.nn.Module):
            add_module(value)
        elif depth > 2:
            return
        elif isinstance(value, Mapping):
            for item in value.values():
                visit(item, depth + 1)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item, depth + 1)
        elif hasattr(value, "components") and isinstance(value.components, Mapping):  # diffusers pipeline
            visit(value.components, depth + 1)
        elif hasattr(value, "__dict__"):
            visit(vars(value), depth + 1)

    visit(obj, 0)
    return total


def weights_on_disk(folder: Path) -> int:
    """Bytes of the weight files under `folder`, one format per folder (safetensors preferred,
    fp16 variants and duplicates in other formats skipped)."""
    if not folder.is_dir():
        return 0
    total = 0
    for directory in [folder, *(p for p in folder.iterdir() if p.is_dir())]:
        files = [p for p in directory.glob("*.safetensors") if ".fp16." not in p.name] or [
            p for ext in ("*.bin", "*.pt", "*.pth") for p in directory.glob(ext) if ".fp16." not in p.name
        ]
        total += sum(p.stat().st_size for p in files)
    return total


def scaled_for_dtype(disk_bytes: int, dtype: Any) -> int:
    """Published checkpoints are mostly fp32: a half-precision load takes about half."""
    import torch

    return disk_bytes // 2 if dtype in (torch.float16, torch.bfloat16) else disk_bytes


def _release_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    elif device == "mps":
        import torch

        torch.mps.empty_cache()


def _total_ram() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
