"""The one place image models are loaded, kept and unloaded.

`ModelManager` loads each model lazily on first use, on its configured device (per-model
override in `[models] devices`, else the app's `device`) in that device's dtype, and keeps the
models of each device within a memory budget: a load that would go over it first unloads the
least recently used idle models on that device. One instance per app (the tools share it);
never a module-level global, so tests and several apps in one process stay independent.

Concurrency: a per-model load lock makes concurrent first requests load once; a per-model run
lock serialises inference on one model (pipelines and `generate` keep per-call state such as
scheduler timesteps, so two calls interleaved on one object would corrupt each other); a model
that is in use, or waiting to be used, is never unloaded under its user.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from multimodal.errors import ToolError
# Memory accounting; also re-exported for the loaders and tests that import it from here.
from multimodal.model_memory import _release_memory, _total_ram, memory_bytes, scaled_for_dtype, weights_on_disk  # noqa: F401

log = logging.getLogger(__name__)

MODEL_KEYS = ("diffusion", "clip", "caption", "vqa")
_LABELS = {"diffusion": "image generation", "clip": "CLIP", "caption": "captioning", "vqa": "visual question answering"}
_TRUTHY = {"1", "true", "yes", "on"}


class ModelUnavailable(ToolError):
    """A model could not be loaded; the message names it and the setting that points elsewhere."""


@dataclass(frozen=True)
class ModelSpec:
    """What to load and where: the configured source, the resolved device and dtype."""

    key: str
    source: str
    device: str
    dtype: Any  # torch.dtype
    #: Loader-specific settings, e.g. the open_clip pretrained tag or the safety checker switch.
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return _LABELS.get(self.key, self.key)


@dataclass(frozen=True)
class ModelKind:
    """How to load one kind of model and how to tell, without loading, whether it can be."""

    load: Callable[[ModelSpec], Any]
    #: (where it would load from, available without the network); must not load weights.
    locate: Callable[[ModelSpec], tuple[str, bool]] = lambda spec: (spec.source, True)
    #: Bytes the loaded model will take, guessed before loading (None: unknown).
    estimate: Callable[[ModelSpec], int | None] = lambda spec: None


@dataclass
class _Entry:
    spec: ModelSpec
    load_lock: threading.Lock = field(default_factory=threading.Lock)
    run_lock: threading.Lock = field(default_factory=threading.Lock)
    model: Any = None
    bytes: int = 0
    users: int = 0  # callers holding or waiting for this model; >0 pins it in memory
    last_used: int = 0
    loads: int = 0


def default_kinds() -> dict[str, ModelKind]:
    from multimodal import blip, clip, diffusion

    return {
        "diffusion": ModelKind(diffusion.load_pipeline, diffusion.locate, diffusion.estimate_bytes),
        "clip": ModelKind(clip.load_clip, clip.locate, clip.estimate_bytes),
        "caption": ModelKind(blip.load_caption, blip.locate, blip.estimate_bytes),
        "vqa": ModelKind(blip.load_vqa, blip.locate, blip.estimate_bytes),
    }


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def config_hint(key: str) -> str:
    """How to point the app at a local copy of model `key`."""
    if key == "clip":
        return (
            "Point mmagent at a local copy: MMAGENT_MODELS__CLIP=/path/to/folder (open_clip_config.json + weights) "
            'or `[models] clip = "/path/to/folder"` in mmagent.toml; or keep a built-in name and set '
            "MMAGENT_MODELS__CLIP_PRETRAINED=/path/to/checkpoint.safetensors (see docs/multimodal.md)."
        )
    return (
        f"Point mmagent at a local copy: MMAGENT_MODELS__{key.upper()}=/path/to/folder "
        f'or `[models] {key} = "/path/to/folder"` in mmagent.toml (see docs/multimodal.md).'
    )


class ModelManager:
    """Lazily loaded image models with per-device LRU memory budgets. See the module docstring."""

    def __init__(self, settings: Any, kinds: Mapping[str, ModelKind] | None = None) -> None:
        self.settings = settings
        self._kinds = dict(kinds) if kinds is not None else None  # the defaults import lazily
        self._lock = threading.Lock()  # guards _entries, users, last_used and accounting
        # Loads (and the evictions that make room for them) run one at a time: two models
        # loading at once on one GPU could each fit the budget alone and overflow it together.
        self._load_gate = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._clock = 0

    # ------------------------------------------------------------------ configuration

    @property
    def kinds(self) -> dict[str, ModelKind]:
        if self._kinds is None:
            self._kinds = default_kinds()
        return self._kinds

    def keys(self) -> list[str]:
        return list(self.kinds)

    def spec(self, key: str) -> ModelSpec:
        """The configured source, device and dtype of `key` (resolving the device may warn)."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None:
            return entry.spec
        spec = self._make_spec(key)
        with self._lock:
            return self._entries.setdefault(key, _Entry(spec)).spec

    def _make_spec(self, key: str) -> ModelSpec:
        from multimodal.devices import resolve_device, torch_dtype_for

        if key not in self.kinds:
            raise KeyError(f"unknown model {key!r}; known: {', '.join(self.kinds)}")
        models = self.settings.models
        wanted = models.devices.get(key) or self.settings.device
        device = resolve_device(wanted)
        source = str(getattr(models, key, key))
        options: dict[str, Any] = {}
        if key == "clip":
            options["pretrained"] = models.clip_pretrained
        if key == "diffusion":
            options["safety_checker"] = models.safety_checker
        return ModelSpec(key, source, device, torch_dtype_for(device), options)

    def budget_bytes(self, device: str) -> int:
        """The memory budget of one device: configured, else 90% of the GPU's memory or half the RAM."""
        configured = self.settings.models.memory_budget_gb
        if configured is not None:
            return int(configured * 2**30)
        if device.startswith("cuda"):
            import torch

            index = int(device.split(":", 1)[1]) if ":" in device else 0
            return int(torch.cuda.get_device_properties(index).total_memory * 0.9)
        # CPU, and MPS (unified memory shared with everything else on the machine).
        return int(_total_ram() * 0.5)

    # ------------------------------------------------------------------ use

    @contextmanager
    def use(self, key: str) -> Iterator[Any]:
        """The loaded model `key`, held exclusively for the duration of the block."""
        entry = self._entry(key)
        with self._lock:
            entry.users += 1
        try:
            with entry.load_lock:
                if entry.model is None:
                    self._load(entry)
            with entry.run_lock:
                with self._lock:
                    self._touch(entry)
                yield entry.model
        finally:
            with self._lock:
                entry.users -= 1
                self._touch(entry)

    def get(self, key: str) -> Any:
        """Load `key` if needed and return it without holding it (for warm-up and inspection)."""
        with self.use(key) as model:
            return model

    def _entry(self, key: str) -> _Entry:
        self.spec(key)
        with self._lock:
            return self._entries[key]

    def _touch(self, entry: _Entry) -> None:
        self._clock += 1
        entry.last_used = self._clock

    def _load(self, entry: _Entry) -> None:
        spec = entry.spec
        kind = self.kinds[spec.key]
        if hub_offline():
            # Offline, a model that is not on disk cannot appear: say so plainly instead of
            # surfacing a download error from deep inside the loader.
            where, available = _safe(kind.locate, spec) or ("", True)
            if not available:
                raise ModelUnavailable(f"The {spec.label} model {spec.source!r} is not available: {where}. {config_hint(spec.key)}")
        with self._load_gate:
            estimate = entry.bytes or _safe(kind.estimate, spec) or 0
            self._make_room(spec.device, estimate, keep=entry)
            log.info("Loading the %s model %s on %s (%s)", spec.label, spec.source, spec.device, str(spec.dtype).removeprefix("torch."))
            started = time.perf_counter()
            try:
                model = kind.load(spec)
            except ModelUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - every load failure gets the same actionable message
                raise unavailable(spec, exc) from exc
            size = memory_bytes(model)
            with self._lock:
                entry.model, entry.bytes = model, size
                entry.loads += 1
                self._touch(entry)
            log.info("Loaded %s in %.1f s (%.1f MiB)", spec.source, time.perf_counter() - started, size / 2**20)
            # The real size can exceed the guess (fp32 files loaded as fp32, buffers): recheck.
            self._make_room(spec.device, 0, keep=entry)

    def _make_room(self, device: str, needed: int, keep: _Entry) -> None:
        """Unload least recently used idle models on `device` until `needed` more bytes fit."""
        budget = self.budget_bytes(device)
        victims: list[_Entry] = []
        with self._lock:
            resident = [e for e in self._entries.values() if e.model is not None and e.spec.device == device]
            used = sum(e.bytes for e in resident)
            for victim in sorted((e for e in resident if e is not keep and e.users == 0), key=lambda e: e.last_used):
                if used + needed <= budget:
                    break
                used -= victim.bytes
                victim.model = None
                victims.append(victim)
        for victim in victims:
            log.info("Unloaded the %s model %s to stay within the %.2f GiB budget on %s",
                     victim.spec.label, victim.spec.source, budget / 2**30, device)
        if victims:
            _release_memory(device)
        if used + needed > budget:
            log.warning(
                "The image models on %s need about %.2f GiB, over the %.2f GiB budget (models in use cannot be "
                "unloaded); going ahead. Raise [models] memory_budget_gb or move a model to another device.",
                device, (used + needed) / 2**30, budget / 2**30,
            )

    def unload(self, key: str) -> bool:
        """Unload `key` now unless it is in use; True when it was unloaded."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.model is None or entry.users:
                return False
            entry.model = None
        _release_memory(entry.spec.device)
        return True

    def unload_all(self) -> None:
        for key in list(self._entries):
            self.unload(key)

    # ------------------------------------------------------------------ inspection

    def loaded(self) -> list[str]:
        """Keys of the loaded models, least recently used first."""
        with self._lock:
            return [e.spec.key for e in sorted(self._entries.values(), key=lambda e: e.last_used) if e.model is not None]

    def load_count(self, key: str) -> int:
        with self._lock:
            entry = self._entries.get(key)
            return entry.loads if entry else 0

    def describe(self) -> dict[str, dict[str, Any]]:
        """For `mmagent doctor`: each model's source, where it would load from, device and
        whether it is available now, without loading anything."""
        out: dict[str, dict[str, Any]] = {}
        for key in self.kinds:
            import warnings

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                spec = self.spec(key)
            where, available = _safe(self.kinds[key].locate, spec) or ("unknown (could not inspect)", False)
            item: dict[str, Any] = {
                "model": spec.source,
                "from": where,
                "device": spec.device,
                "dtype": str(spec.dtype).removeprefix("torch."),
                "available": available,
                "loaded": spec.key in self.loaded(),
                "setting": f"MMAGENT_MODELS__{key.upper()}",
            }
            if "pretrained" in spec.options:
                item["pretrained"] = spec.options["pretrained"]
            if caught:
                item["note"] = str(caught[0].message)
            out[key] = item
        return out


def unavailable(spec: ModelSpec, exc: BaseException) -> ModelUnavailable:
    """The error a tool reports when model `spec` cannot be loaded."""
    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    if len(reason) > 300:
        reason = reason[:300] + "..."
    missing = isinstance(exc, OSError) or any(w in reason.lower() for w in ("not found", "offline", "download", "local cache"))
    why = (
        "it is not available: no local copy and the Hugging Face hub is offline (HF_HUB_OFFLINE)"
        if missing and hub_offline()
        else "it is not available (not a local folder, and it could not be downloaded)"
        if missing
        else "it failed to load"
    )
    return ModelUnavailable(f"The {spec.label} model {spec.source!r} could not be loaded: {why} ({reason}). {config_hint(spec.key)}")


def _safe(func: Callable[[ModelSpec], Any], spec: ModelSpec) -> Any:
    try:
        return func(spec)
    except Exception as exc:  # noqa: BLE001 - guesses and inspection must never fail a request
        log.debug("inspecting %s failed: %s", spec.source, exc)
        return None
