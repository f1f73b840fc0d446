"""The image tools end to end on tiny random-weight models loaded through the product's loaders.

The models are built once per session (tests/tiny_models.py) and saved in the real formats; the
outputs are noise, so these tests check files, metadata, shapes, reproducibility and errors.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from PIL import Image

from agent.config import Settings
from multimodal.artifacts import save_upload
from multimodal.clip import similarity, tag_image
from multimodal.model_manager import ModelManager, memory_bytes
from tests.conftest import call, calls, say, write_script
from tests.tiny_models import build_all
from tools.images import image_tools, model_manager
from tools.registry import ToolRegistry


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    return build_all(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def tiny_settings(data_dir: Path, tiny_models: dict[str, Path], **models) -> Settings:
    return Settings(data_dir=data_dir, device="cpu", models={**{k: str(v) for k, v in tiny_models.items()}, **models})


@pytest.fixture
def settings(data_dir, tiny_models) -> Settings:
    return tiny_settings(data_dir, tiny_models)


@pytest.fixture
def registry(settings) -> ToolRegistry:
    return ToolRegistry(image_tools(settings))


def invoke(registry: ToolRegistry, name: str, **arguments):
    return asyncio.run(registry.ainvoke(name, arguments))


def photo(settings: Settings, color=(200, 40, 40)) -> str:
    return save_upload(settings, _png(Image.new("RGB", (48, 40), color)), "photo.png")["ref"]


def _png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------ generate_image


def test_generate_image_writes_a_png_with_its_metadata(registry, settings, tiny_models):
    result = invoke(registry, "generate_image", prompt="a red cat", width=80, height=64, steps=2, guidance=0.0, seed=7)
    assert result.ok, result.error
    [artifact] = result.artifacts
    path = Path(artifact["path"])
    assert path.parent == settings.artifacts_dir.resolve() and path.suffix == ".png"
    assert artifact["ref"] == f"artifact:{artifact['id']}" and artifact["kind"] == "image" and artifact["mime"] == "image/png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (80, 64)
    metadata = json.loads(path.with_suffix(".json").read_text())
    expected = {"prompt": "a red cat", "seed": 7, "steps": 2, "guidance": 0.0, "size": "80x64", "model": str(tiny_models["diffusion"])}
    assert {k: metadata[k] for k in expected} == expected
    assert metadata["safety_checker"] is True  # the tiny pipeline has one; it stays on by default
    assert result.result["ref"] == artifact["ref"] and result.result["seed"] == 7


def test_a_seed_reproduces_the_image(registry):
    def pixels(seed):
        result = invoke(registry, "generate_image", prompt="a blue car", width=64, height=64, steps=2, seed=seed)
        assert result.ok, result.error
        with Image.open(result.artifacts[0]["path"]) as image:
            return image.tobytes()

    first = pixels(123)
    assert pixels(123) == first
    assert pixels(124) != first


def test_without_a_seed_one_is_chosen_and_reported(registry):
    result = invoke(registry, "generate_image", prompt="a dog")
    assert result.ok, result.error
    assert isinstance(result.result["seed"], int) and result.artifacts[0]["seed"] == result.result["seed"]
    # Default size: the model's own (the tiny UNet's 16 latent pixels x VAE factor 2).
    assert (result.result["width"], result.result["height"]) == (32, 32)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"width": 100}, "multiple of 8"),
        ({"width": 2048}, "at most 1024"),
        ({"height": 32}, "greater than or equal to 64"),
        ({"steps": 51}, "at most 50"),
        ({"steps": 0}, "greater than or equal to 1"),
        ({"seed": -1}, "greater than or equal to 0"),
        ({"prompt": ""}, "at least 1 character"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_generate_image_bounds(registry, arguments, message):
    result = invoke(registry, "generate_image", **{"prompt": "a cat", **arguments})
    assert not result.ok and message in result.error and not result.artifacts


def test_the_safety_checker_can_be_turned_off_and_a_flagged_image_is_not_saved(data_dir, tiny_models):
    off = ModelManager(tiny_settings(data_dir, tiny_models, safety_checker=False))
    assert off.get("diffusion").safety_checker is None
    settings = tiny_settings(data_dir, tiny_models)
    manager = ModelManager(settings)
    registry = ToolRegistry(image_tools(settings, manager))
    checker = manager.get("diffusion").safety_checker
    checker.concept_embeds_weights.data.fill_(-1.0)  # every image now looks unsafe to it
    result = invoke(registry, "generate_image", prompt="a cat", seed=1)
    assert not result.ok and "safety checker flagged" in result.error and not result.artifacts
    assert not settings.artifacts_dir.exists() or not list(settings.artifacts_dir.glob("*.png"))


# ------------------------------------------------------------------------------ caption_image


def test_caption_and_question(registry, settings):
    ref = photo(settings)
    caption = invoke(registry, "caption_image", image=ref)
    assert caption.ok, caption.error
    assert isinstance(caption.result["caption"], str) and caption.result["image"] == ref
    answer = invoke(registry, "caption_image", image=ref, question="what color is it?")
    assert answer.ok, answer.error
    assert isinstance(answer.result["answer"], str) and answer.result["question"] == "what color is it?"
    manager = model_manager(registry)
    assert sorted(manager.loaded()) == ["caption", "vqa"]


def test_parallel_calls_load_the_model_once(registry, settings):
    ref = photo(settings)

    async def many():
        return await asyncio.gather(*(registry.ainvoke("caption_image", {"image": ref}) for _ in range(6)))

    results = asyncio.run(many())
    assert all(r.ok for r in results), [r.error for r in results]
    assert len({r.result["caption"] for r in results}) == 1  # serialised calls see identical state
    assert model_manager(registry).load_count("caption") == 1


# ------------------------------------------------------------------------------ classify / similarity


def test_classify_image_scores_every_label(registry, settings):
    result = invoke(registry, "classify_image", image=photo(settings), labels=["cat", "dog", "car", "dog "])
    assert result.ok, result.error
    scores = result.result["scores"]
    assert [s["label"] for s in scores] and sorted(s["label"] for s in scores) == ["car", "cat", "dog"]
    assert abs(sum(s["score"] for s in scores) - 1) < 1e-3
    assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
    assert result.result["best"] == scores[0]["label"] and all(-1 <= s["similarity"] <= 1 for s in scores)
    empty = invoke(registry, "classify_image", image=photo(settings), labels=[])
    assert not empty.ok and "labels" in empty.error


def test_similarity_and_tagging(registry, settings):
    manager = model_manager(registry)
    images = [Image.new("RGB", (40, 40), c) for c in ("red", "blue")]
    with manager.use("clip") as clip:
        matrix = similarity(clip, images, ["a red square", "a blue square", "a dog"])
    assert tuple(matrix.shape) == (2, 3) and float(matrix.abs().max()) <= 1.0001
    tags = tag_image(manager, photo(settings), ["cat", "dog", "car", "tree"], top_k=2)
    assert len(tags) == 2 and tags[0]["score"] >= tags[1]["score"]


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("caption_image", {"image": "/etc/passwd"}),
        ("caption_image", {"image": "artifact:" + "f" * 32}),
        ("classify_image", {"image": "../../x.png", "labels": ["a"]}),
    ],
)
def test_bad_images_are_tool_errors(registry, tool, arguments):
    result = invoke(registry, tool, **arguments)
    assert not result.ok and result.error and "Traceback" not in result.error


@pytest.mark.parametrize(
    ("key", "tool", "arguments"),
    [
        ("diffusion", "generate_image", {"prompt": "a cat"}),
        ("caption", "caption_image", {}),
        ("vqa", "caption_image", {"question": "what is it?"}),
        ("clip", "classify_image", {"labels": ["cat", "dog"]}),
    ],
)
def test_unavailable_models_name_the_model_and_the_setting(data_dir, tiny_models, key, tool, arguments):
    """The real defaults (hub ids, no network, empty cache) and a missing local folder."""
    for source in (None, str(data_dir / "no-such-model")):
        overrides = {key: Settings().models.model_dump()[key] if source is None else source}
        settings = tiny_settings(data_dir, tiny_models, **overrides)
        registry = ToolRegistry(image_tools(settings))
        if tool != "generate_image":
            arguments = {"image": photo(settings), **arguments}
        result = invoke(registry, tool, **arguments)
        assert not result.ok
        assert overrides[key] in result.error and f"MMAGENT_MODELS__{key.upper()}" in result.error, result.error
        assert f"[models] {key}" in result.error


def test_budget_for_two_real_models_unloads_the_oldest(data_dir, tiny_models):
    sizes = {}
    probe = ModelManager(tiny_settings(data_dir, tiny_models))
    for key in ("caption", "vqa", "clip"):
        sizes[key] = memory_bytes(probe.get(key))
    budget = sum(sizes.values()) - min(sizes.values()) // 2  # any two fit, all three do not
    manager = ModelManager(tiny_settings(data_dir, tiny_models, memory_budget_gb=budget / 2**30))
    for key in ("caption", "vqa", "clip"):
        manager.get(key)
    assert manager.loaded() == ["vqa", "clip"]


# ------------------------------------------------------------------------------ doctor, registry, graph


def test_doctor_lists_models_without_loading_them(settings, tiny_models, data_dir):
    from apps.doctor import _models

    models = _models(settings)
    for key, folder in tiny_models.items():
        assert models[key]["available"] is True and str(folder) in models[key]["from"]
        assert models[key]["device"] == "cpu" and models[key]["setting"] == f"MMAGENT_MODELS__{key.upper()}"
    defaults = _models(Settings(data_dir=data_dir))
    assert all(defaults[key]["available"] is False for key in ("diffusion", "clip", "caption", "vqa"))
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in defaults["clip"]["from"]
    assert str(settings.artifacts_dir.resolve()) in models["allowed_image_dirs"]


def test_the_default_registry_has_the_image_tools_and_loads_nothing(settings):
    from agent.runner import default_tools

    registry = default_tools(settings)
    assert {"generate_image", "caption_image", "classify_image"} <= set(registry.names())
    manager = model_manager(registry)
    assert manager is not None and manager.loaded() == []
    assert all(getattr(registry.get(n).func, "model_manager", None) is manager for n in ("generate_image", "caption_image"))


def test_draw_then_describe_through_the_graph(settings, tmp_path, monkeypatch):
    from agent.runner import open_agent

    fixed = uuid.UUID(int=0xC0FFEE)
    monkeypatch.setattr("multimodal.artifacts.uuid.uuid4", lambda: fixed)  # the script must know the artifact id
    ref = f"artifact:{fixed.hex}"
    script = write_script(
        tmp_path / "draw.jsonl",
        say("1. Draw a red fox with generate_image\n2. Describe the picture with caption_image\n3. Answer"),
        calls(call("generate_image", {"prompt": "a red fox in the snow", "seed": 5, "width": 64, "height": 64})),
        calls(call("caption_image", {"image": ref})),
        say(f"Here is your fox: {ref}. It shows a red fox in the snow."),
    )
    settings = settings.model_copy(update={"memory": settings.memory.model_copy(update={"long_term": False})})

    async def go():
        async with open_agent(settings, llm=f"scripted:{script}", registry=ToolRegistry(image_tools(settings)), persist=False) as agent:
            return await agent.arun("Draw a red fox in the snow, then describe it")

    result = asyncio.run(go())
    assert result.error is None
    assert [s["tool"] for s in result.steps] == ["generate_image", "caption_image"]
    assert all(s["ok"] for s in result.steps), result.steps
    [artifact] = result.artifacts
    assert artifact["ref"] == ref and Path(artifact["path"]).is_file() and artifact["prompt"] == "a red fox in the snow"
    assert isinstance(result.steps[1]["result"]["caption"], str)
    assert ref in result.answer


@pytest.mark.slow
def test_the_gpu_bench_runs_its_quick_mode_on_this_device(monkeypatch, capsys):
    import sys

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    import gpu

    monkeypatch.setattr(sys, "argv", ["gpu.py", "--quick", "--size", "64", "--repeats", "1"])
    gpu.main()
    out = capsys.readouterr().out
    for label in ("SD 64x64, 1 step", "SD 64x64, 4 steps", "CLIP ViT-B-32", "BLIP base captions"):
        assert label in out
