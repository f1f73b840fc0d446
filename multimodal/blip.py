"""BLIP captioning and visual question answering (transformers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multimodal import hub
from multimodal.model_manager import ModelSpec

MARKER = "config.json"
MAX_NEW_TOKENS = 40


@dataclass
class Blip:
    model: Any  # BlipForConditionalGeneration | BlipForQuestionAnswering
    processor: Any  # BlipProcessor
    device: str
    dtype: Any


def _load(spec: ModelSpec, model_class_name: str) -> Blip:
    import transformers

    source = hub.source_path(spec.source)
    kwargs = hub.pretrained_kwargs()
    processor = transformers.BlipProcessor.from_pretrained(source, **kwargs)
    model = getattr(transformers, model_class_name).from_pretrained(source, dtype=spec.dtype, **kwargs)
    model.to(spec.device).eval()
    return Blip(model, processor, spec.device, spec.dtype)


def load_caption(spec: ModelSpec) -> Blip:
    return _load(spec, "BlipForConditionalGeneration")


def load_vqa(spec: ModelSpec) -> Blip:
    return _load(spec, "BlipForQuestionAnswering")


def locate(spec: ModelSpec) -> tuple[str, bool]:
    return hub.locate(spec.source, MARKER)


def estimate_bytes(spec: ModelSpec) -> int | None:
    return hub.estimate_bytes(spec.source, MARKER, spec.dtype)


def _generate(blip: Blip, image: Any, text: str | None) -> str:
    import torch

    inputs = blip.processor(images=image, text=text, return_tensors="pt").to(blip.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(blip.dtype)
    with torch.inference_mode():
        out = blip.model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS)
    return blip.processor.decode(out[0], skip_special_tokens=True).strip()


def caption(blip: Blip, image: Any) -> str:
    return _generate(blip, image, None)


def answer(blip: Blip, image: Any, question: str) -> str:
    return _generate(blip, image, question)
