"""Text-to-image with diffusers (`AutoPipelineForText2Image`: SD 1.x/2.x, sd-turbo, SDXL...)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from multimodal import hub
from multimodal.model_manager import ModelSpec

MARKER = "model_index.json"


@dataclass
class Generated:
    image: Any  # PIL.Image.Image
    nsfw: bool
    seconds: float


def load_pipeline(spec: ModelSpec) -> Any:
    from diffusers import AutoPipelineForText2Image

    kwargs: dict[str, Any] = {"dtype": spec.dtype, **hub.pretrained_kwargs()}
    if not spec.options.get("safety_checker", True):
        kwargs["safety_checker"] = None
        kwargs["requires_safety_checker"] = False
    pipe = AutoPipelineForText2Image.from_pretrained(hub.source_path(spec.source), **kwargs)
    pipe = pipe.to(spec.device)
    # Per-step progress bars would interleave with the app's own output.
    pipe.set_progress_bar_config(disable=True)
    return pipe


def locate(spec: ModelSpec) -> tuple[str, bool]:
    return hub.locate(spec.source, MARKER)


def estimate_bytes(spec: ModelSpec) -> int | None:
    return hub.estimate_bytes(spec.source, MARKER, spec.dtype)


def default_size(pipe: Any) -> int:
    """The resolution the pipeline was trained at (512 for sd-turbo, 1024 for SDXL)."""
    sample = getattr(getattr(pipe, "unet", None), "config", None)
    size = getattr(sample, "sample_size", None)
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size * getattr(pipe, "vae_scale_factor", 8)) if size else 512


def has_safety_checker(pipe: Any) -> bool:
    return getattr(pipe, "safety_checker", None) is not None


def generate(
    pipe: Any, *, prompt: str, negative_prompt: str | None, width: int, height: int, steps: int, guidance: float, seed: int
) -> Generated:
    """One image. The noise comes from a CPU generator, so a seed gives the same image on any
    device type (GPU kernels may still differ in the last bits)."""
    import torch

    kwargs: dict[str, Any] = {
        "prompt": prompt,
        "width": width,
        "height": height,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "generator": torch.Generator(device="cpu").manual_seed(seed),
    }
    if negative_prompt:
        kwargs["negative_prompt"] = negative_prompt
    started = time.perf_counter()
    with torch.inference_mode():
        out = pipe(**kwargs)
    flagged = getattr(out, "nsfw_content_detected", None)
    return Generated(out.images[0], bool(flagged and any(flagged)), time.perf_counter() - started)
