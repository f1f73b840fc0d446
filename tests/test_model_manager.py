"""The model manager on stand-in models: lazy loads, LRU memory budget, locks, devices, errors."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from agent.config import Settings
from multimodal.devices import resolve_device
from multimodal.model_manager import ModelKind, ModelManager, ModelUnavailable, memory_bytes

FLOATS = 1000  # each stand-in model holds 1000 float32 = 4000 bytes


def settings_with(budget_bytes: int | None = None, **models) -> Settings:
    budget = {"memory_budget_gb": budget_bytes / 2**30} if budget_bytes else {}
    return Settings(device="cpu", models={**budget, **models})


class Recorder:
    """Stand-in loaders that record what was loaded and what was resident at each load."""

    def __init__(self, manager_ref: list[ModelManager] | None = None, delay: float = 0.0, estimate: int | None = None) -> None:
        self.calls: list[str] = []
        self.resident_at_load: dict[str, list[str]] = {}
        self.delay = delay
        self.estimate = estimate
        self.manager_ref = manager_ref or []
        self.lock = threading.Lock()

    def kind(self) -> ModelKind:
        def load(spec):
            with self.lock:
                self.calls.append(spec.key)
            if self.manager_ref:
                self.resident_at_load[spec.key] = self.manager_ref[0].loaded()
            time.sleep(self.delay)
            return torch.nn.Linear(FLOATS, 1, bias=False)

        return ModelKind(load, estimate=lambda spec: self.estimate)


def manager_for(settings: Settings, recorder: Recorder, keys=("a", "b", "c")) -> ModelManager:
    manager = ModelManager(settings, {key: recorder.kind() for key in keys})
    recorder.manager_ref.append(manager)
    return manager


def test_nothing_loads_until_first_use():
    recorder = Recorder()
    manager = manager_for(settings_with(), recorder)
    assert manager.loaded() == [] and recorder.calls == []
    with manager.use("a") as model:
        assert isinstance(model, torch.nn.Linear)
    assert manager.loaded() == ["a"] and recorder.calls == ["a"]
    manager.get("a")
    assert recorder.calls == ["a"]  # loaded once, reused


def test_budget_for_two_unloads_the_oldest_of_three():
    recorder = Recorder()
    manager = manager_for(settings_with(budget_bytes=2 * FLOATS * 4 + 100), recorder)
    for key in ("a", "b", "c"):
        manager.get(key)
    assert manager.loaded() == ["b", "c"]
    # The least *recently used* goes, not the first loaded: touch b, then load a again.
    manager.get("b")
    manager.get("a")
    assert manager.loaded() == ["b", "a"]
    assert recorder.calls == ["a", "b", "c", "a"]


def test_the_estimate_makes_room_before_the_load():
    recorder = Recorder(estimate=FLOATS * 4)
    manager = manager_for(settings_with(budget_bytes=2 * FLOATS * 4 + 100), recorder)
    manager.get("a")
    manager.get("b")
    manager.get("c")
    # a was unloaded before c's loader ran, so the two never had to coexist.
    assert recorder.resident_at_load["c"] == ["b"]


def test_a_model_in_use_is_never_unloaded(caplog):
    recorder = Recorder()
    manager = manager_for(settings_with(budget_bytes=FLOATS * 4 + 100), recorder)
    with manager.use("a") as held:
        manager.get("b")  # over budget, but a is in use: kept, with a warning
        assert "a" in manager.loaded()
        assert held.weight.shape == (1, FLOATS)
    assert "over the" in caplog.text
    manager.get("c")
    assert manager.loaded() == ["c"]


def test_parallel_first_requests_load_once_and_inference_is_serialised():
    recorder = Recorder(delay=0.3)
    manager = manager_for(settings_with(), recorder)
    active, peak = 0, 0
    guard = threading.Lock()

    def infer(_):
        nonlocal active, peak
        with manager.use("a"):
            with guard:
                active += 1
                peak = max(peak, active)
            time.sleep(0.01)
            with guard:
                active -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(infer, range(16)))
    assert recorder.calls == ["a"] and manager.load_count("a") == 1
    assert peak == 1


def test_different_models_run_at_the_same_time():
    recorder = Recorder()
    manager = manager_for(settings_with(), recorder)
    both = threading.Barrier(2, timeout=5)

    def hold(key):
        with manager.use(key):
            both.wait()  # deadlocks (BrokenBarrierError) if the two uses were serialised

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(hold, ["a", "b"]))


def test_a_failed_load_is_a_clear_error_and_is_retried():
    attempts = []

    def load(spec):
        attempts.append(spec.key)
        raise OSError("no such file: config.json")

    manager = ModelManager(settings_with(), {"caption": ModelKind(load)})
    for _ in range(2):
        with pytest.raises(ModelUnavailable) as err:
            manager.get("caption")
        message = str(err.value)
        assert "Salesforce/blip-image-captioning-base" in message
        assert "MMAGENT_MODELS__CAPTION" in message and "[models] caption" in message
    assert attempts == ["caption", "caption"] and manager.loaded() == []


def test_device_override_and_missing_device_fall_back_with_a_warning():
    settings = settings_with(devices={"caption": "cuda:1", "clip": "cpu"})
    manager = ModelManager(settings, {"caption": ModelKind(lambda s: None), "clip": ModelKind(lambda s: None)})
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has a cuda:1")
    with pytest.warns(RuntimeWarning, match="cuda:1"):
        spec = manager.spec("caption")
    assert spec.device == resolve_device("auto")  # the best device present
    clip = manager.spec("clip")
    assert clip.device == "cpu" and clip.dtype == torch.float32


def test_unknown_device_key_is_a_config_error():
    with pytest.raises(Exception, match="devices"):
        Settings(models={"devices": {"painter": "cpu"}})


def test_budget_is_configurable_and_defaults_to_half_the_ram_on_cpu():
    assert ModelManager(settings_with(budget_bytes=2**30)).budget_bytes("cpu") == 2**30
    auto = ModelManager(settings_with()).budget_bytes("cpu")
    assert 2**28 < auto < 2**44


def test_memory_bytes_counts_shared_tensors_once():
    layer = torch.nn.Linear(10, 10)
    holder = {"one": layer, "two": [layer], "other": torch.nn.Linear(10, 1, bias=False)}
    assert memory_bytes(holder) == (110 + 10) * 4


def test_unload_frees_and_reloads_on_next_use():
    recorder = Recorder()
    manager = manager_for(settings_with(), recorder)
    manager.get("a")
    assert manager.unload("a") and manager.loaded() == []
    manager.get("a")
    assert recorder.calls == ["a", "a"]
