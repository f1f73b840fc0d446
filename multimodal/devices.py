"""Which torch device to run on, and with which dtype.

`resolve_device` never raises: a preference that cannot be honoured on this machine (a config
copied from a GPU box, `cuda:1` on a one-GPU machine) degrades to the best device present with
a warning, because refusing to start is worse than running slower.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch

logger = logging.getLogger(__name__)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Devices torch can use here, best last-resort first: `cpu`, then `cuda:N`..., then `mps`."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        devices.append("mps")
    return devices


def _best_device() -> str:
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return "cuda:0"
    if _mps_available():
        return "mps"
    return "cpu"


def resolve_device(pref: str) -> str:
    """Turn a preference (`auto | cpu | cuda | cuda:N | mps`) into a device present on this machine.

    Returns a normalised name (`cpu`, `cuda:N` or `mps`). A device that is missing, or a name torch
    does not know, falls back to the best available device with a `RuntimeWarning`.
    """
    wanted = (pref or "auto").strip().lower()
    if wanted == "auto":
        return _best_device()
    if wanted == "cuda":
        wanted = "cuda:0"
    present = available_devices()
    if wanted in present:
        return wanted
    fallback = _best_device()
    message = (
        f"Device {pref!r} is not available on this machine (available: {', '.join(present)}); "
        f"using {fallback!r} instead. Set MMAGENT_DEVICE to one of the available devices to silence this."
    )
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=2)
    return fallback


def torch_dtype_for(device: str) -> torch.dtype:
    """The dtype to load weights in: half precision on CUDA (bf16 where supported), fp32 elsewhere.

    MPS gets fp32 because several ops still lack half-precision kernels there, and CPU half
    precision is both slower and less accurate than fp32.
    """
    if device.startswith("cuda") and torch.cuda.is_available():
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        with torch.cuda.device(index):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def device_report() -> dict[str, Any]:
    """What `mmagent doctor` prints about the accelerators."""
    gpus: list[dict[str, Any]] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gpus.append(
                {
                    "device": f"cuda:{i}",
                    "name": props.name,
                    "memory_gib": round(props.total_memory / 2**30, 1),
                    "capability": f"{props.major}.{props.minor}",
                }
            )
    auto = _best_device()
    return {
        "torch_version": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "mps_available": _mps_available(),
        "gpus": gpus,
        "available_devices": available_devices(),
        "auto_device": auto,
        "auto_dtype": str(torch_dtype_for(auto)).removeprefix("torch."),
    }
