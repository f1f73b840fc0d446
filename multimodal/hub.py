"""Where a Hugging Face style model would load from, checked without the network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multimodal.model_manager import hub_offline
from multimodal.model_memory import scaled_for_dtype, weights_on_disk


def local_folder(source: str) -> Path | None:
    """The folder `source` names when it is a local path (existing or not), else None (a repo id)."""
    path = Path(source).expanduser()
    if path.is_dir() or path.is_absolute() or source.startswith((".", "~")) or source.count("/") != 1:
        return path
    return None


def locate(source: str, marker: str) -> tuple[str, bool]:
    """(where the model would come from, loadable now) for a repo id or a folder holding `marker`
    (config.json for transformers models, model_index.json for diffusers pipelines)."""
    folder = local_folder(source)
    if folder is not None:
        if (folder / marker).is_file():
            return f"local folder {folder.resolve()}", True
        return f"local folder {folder} (missing, or no {marker} in it)", False
    cached = _cached_file(source, marker)
    if cached is not None:
        return f"Hugging Face cache ({Path(cached).parent})", True
    if hub_offline():
        return f"Hugging Face hub {source}: not in the local cache, and HF_HUB_OFFLINE is set", False
    return f"Hugging Face hub {source}: not downloaded yet (downloads on first use)", False


def estimate_bytes(source: str, marker: str, dtype: Any) -> int | None:
    """Memory the model will take once loaded, from its weight files (None: not on disk yet)."""
    folder = local_folder(source)
    if folder is None:
        cached = _cached_file(source, marker)
        folder = Path(cached).parent if cached else None
    size = weights_on_disk(folder) if folder is not None else 0
    return scaled_for_dtype(size, dtype) if size else None


def pretrained_kwargs() -> dict[str, Any]:
    """Keyword arguments for `from_pretrained`: never wait on the network when it is off."""
    return {"local_files_only": True} if hub_offline() else {}


def source_path(source: str) -> str:
    folder = local_folder(source)
    return str(folder) if folder is not None else source


def _cached_file(repo_id: str, filename: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # noqa: BLE001 - a malformed id is simply not cached
        return None
    return found if isinstance(found, str) else None
