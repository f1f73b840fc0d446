"""open_clip: zero-shot classification, image-text similarity, tagging images.

`[models] clip` is a built-in open_clip architecture name (weights from `clip_pretrained`: a
pretrained tag or a checkpoint file), `hf-hub:<repo>`, or a folder with open_clip_config.json
and weights (the layout of the open_clip repos on the Hugging Face hub).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multimodal import hub
from multimodal.model_manager import ModelManager, ModelSpec
from multimodal.model_memory import scaled_for_dtype, weights_on_disk

TEMPLATE = "a photo of a {}."
CONFIG_NAME = "open_clip_config.json"


@dataclass
class Clip:
    model: Any  # open_clip.CLIP
    preprocess: Any  # torchvision transform: PIL image -> tensor
    tokenizer: Any
    device: str
    dtype: Any


def _names(spec: ModelSpec) -> tuple[str, str | None]:
    """(open_clip model name, pretrained) for `create_model_and_transforms`."""
    source = spec.source.strip()
    if source.startswith("hf-hub:"):
        return source, None
    folder = Path(source.removeprefix("local-dir:")).expanduser()
    if source.startswith(("local-dir:", "/", ".", "~")) or folder.is_dir():
        return f"local-dir:{folder}", None
    return source, spec.options.get("pretrained") or None


def load_clip(spec: ModelSpec) -> Clip:
    import open_clip
    import torch

    name, pretrained = _names(spec)
    if name.startswith("local-dir:"):
        folder = Path(name.removeprefix("local-dir:"))
        if not (folder / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{folder} has no {CONFIG_NAME}")
        # open_clip only warns when the folder has no weights and returns a random model.
        if not weights_on_disk(folder):
            raise FileNotFoundError(f"{folder} has no weights (*.safetensors, *.bin, *.pt)")
    elif not name.startswith("hf-hub:") and not pretrained:
        raise FileNotFoundError(f"no weights configured for the open_clip model {name!r} (set clip_pretrained)")
    precision = "fp32"
    if spec.dtype == torch.bfloat16:
        precision = "pure_bf16"
    elif spec.dtype == torch.float16:
        precision = "pure_fp16"
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, precision=precision, device=spec.device)
    model.eval()
    return Clip(model, preprocess, open_clip.get_tokenizer(name), spec.device, spec.dtype)


def locate(spec: ModelSpec) -> tuple[str, bool]:
    name, pretrained = _names(spec)
    if name.startswith("local-dir:"):
        folder = Path(name.removeprefix("local-dir:"))
        ok = (folder / CONFIG_NAME).is_file() and weights_on_disk(folder) > 0
        return f"local folder {folder}" + ("" if ok else f" (missing, or no {CONFIG_NAME} and weights in it)"), ok
    if name.startswith("hf-hub:"):
        return hub.locate(name.removeprefix("hf-hub:"), CONFIG_NAME)
    if pretrained and Path(pretrained).expanduser().is_file():
        return f"checkpoint file {Path(pretrained).expanduser().resolve()}", True
    cfg = _pretrained_table().get_pretrained_cfg(name, pretrained or "")
    repo_file = cfg.get("hf_hub", "")
    if not repo_file:
        return f"open_clip {name} with pretrained {pretrained!r}: unknown model or tag", False
    if repo_file.endswith("/"):
        repo, filename = repo_file.rstrip("/"), "open_clip_pytorch_model.bin"
    else:
        repo, filename = repo_file.rsplit("/", 1)
    for candidate in (filename.replace(".bin", ".safetensors"), filename):
        where, ok = hub.locate(repo, candidate)
        if ok:
            return where, True
    return where, False


def _pretrained_table() -> Any:
    """open_clip's table of pretrained weights (tag -> hub repo), for `mmagent doctor`.

    `import open_clip` takes seconds (torchvision, every model family); the table is plain data
    in `open_clip/pretrained.py`, so it is imported on its own under a private package name.
    """
    import importlib
    import importlib.util
    import sys
    import types

    if "open_clip" in sys.modules:
        return sys.modules["open_clip"]
    alias = "_mmagent_open_clip_tables"
    if alias not in sys.modules:
        spec = importlib.util.find_spec("open_clip")
        package = types.ModuleType(alias)
        package.__path__ = list(spec.submodule_search_locations or [])
        sys.modules[alias] = package
    try:
        return importlib.import_module(f"{alias}.pretrained")
    except Exception:  # noqa: BLE001 - a layout change in open_clip: pay for the full import
        import open_clip

        return open_clip


def estimate_bytes(spec: ModelSpec) -> int | None:
    name, pretrained = _names(spec)
    if name.startswith("local-dir:"):
        size = weights_on_disk(Path(name.removeprefix("local-dir:")))
    elif pretrained and Path(pretrained).expanduser().is_file():
        size = Path(pretrained).expanduser().stat().st_size
    else:
        return None
    return scaled_for_dtype(size, spec.dtype) if size else None


def similarity(clip: Clip, images: list[Any], texts: list[str]) -> Any:
    """Cosine similarity of each image with each text: a (len(images), len(texts)) tensor."""
    import torch

    pixels = torch.stack([clip.preprocess(image) for image in images]).to(clip.device, clip.dtype)
    tokens = clip.tokenizer(texts).to(clip.device)
    with torch.inference_mode():
        image_features = clip.model.encode_image(pixels, normalize=True)
        text_features = clip.model.encode_text(tokens, normalize=True)
    return (image_features @ text_features.T).float().cpu()


def zero_shot(clip: Clip, image: Any, labels: list[str]) -> list[dict[str, Any]]:
    """Each label's probability (softmax over the labels, CLIP's zero-shot recipe) and raw
    cosine similarity, best first."""
    import torch

    cosine = similarity(clip, [image], [TEMPLATE.format(label) for label in labels])[0]
    scale = float(clip.model.logit_scale.detach().exp()) if hasattr(clip.model, "logit_scale") else 100.0
    probs = torch.softmax(cosine * scale, dim=0)
    scores = [
        {"label": label, "score": round(float(p), 4), "similarity": round(float(c), 4)}
        for label, p, c in zip(labels, probs, cosine)
    ]
    return sorted(scores, key=lambda s: s["score"], reverse=True)


def tag_image(manager: ModelManager, image: str, labels: list[str], top_k: int = 3, min_score: float = 0.0) -> list[dict[str, Any]]:
    """The best `top_k` of `labels` for an image (artifact ref, upload or allowed path), e.g. to
    tag an upload. Raises ToolError for a bad image or an unavailable model."""
    from multimodal.artifacts import load_image

    picture = load_image(manager.settings, image)
    with manager.use("clip") as clip:
        scores = zero_shot(clip, picture, labels)
    return [s for s in scores[:top_k] if s["score"] >= min_score]
