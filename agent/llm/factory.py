"""Build the backend named by an LLM spec, and resolve `auto`.

Specs: `auto` | `bundled` | `gguf:<file.gguf>` | `hf:<repo-id-or-path>` | `openai:<model>` | `scripted:<file.jsonl>`.
"""

from __future__ import annotations

import os

from agent.config import Settings
from agent.llm.base import ChatBackend, LLMError

SPEC_HELP = "use auto, bundled, gguf:<file.gguf>, hf:<repo-or-path>, openai:<model> or scripted:<file.jsonl>"


def resolve_auto(settings: Settings) -> tuple[str, str]:
    """The spec `auto` stands for, and why (printed by `mmagent doctor`)."""
    if os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
        which = "OPENAI_BASE_URL" if os.environ.get("OPENAI_BASE_URL") else "OPENAI_API_KEY"
        return f"openai:{settings.openai_model}", f"{which} is set"
    if settings.hf_model:
        from multimodal.llm_loader import hf_model_available

        if hf_model_available(settings.hf_model):
            return f"hf:{settings.hf_model}", f"hf_model {settings.hf_model!r} is available locally"
        reason = f"hf_model {settings.hf_model!r} is not available locally, so the bundled model"
        return "bundled", reason
    return "bundled", "no OpenAI server configured and no hf_model set: the bundled offline model"


def make_backend(spec: str, settings: Settings) -> ChatBackend:
    spec = (spec or "auto").strip()
    if spec == "auto":
        spec, _ = resolve_auto(settings)
    kind, _, arg = spec.partition(":")
    if kind == "scripted":
        from agent.llm.scripted import ScriptedBackend

        if not arg:
            raise LLMError("scripted backend needs a file: --llm scripted:<file.jsonl>")
        return ScriptedBackend(arg)
    if kind == "openai":
        from agent.llm.openai_backend import OpenAIBackend

        return OpenAIBackend(arg)
    if kind == "hf":
        from agent.llm.local import LocalBackend

        if not arg:
            raise LLMError("hf backend needs a model: --llm hf:<repo-id-or-path>")
        return LocalBackend.from_spec(spec, settings)
    if (kind == "bundled" and not arg) or kind == "gguf":
        from agent.llm.gguf import GGUFBackend

        if kind == "gguf" and not arg.strip():
            raise LLMError("gguf backend needs a file: --llm gguf:<path/to/model.gguf>")
        return GGUFBackend.from_spec(spec, settings)
    raise LLMError(f"unknown LLM spec {spec!r}: {SPEC_HELP}")
