"""The invisible watermark on generated images and `mmagent image verify` (tiny real pipeline)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from multimodal import watermark
from tests.processes import ROOT
from tests.test_images import invoke, tiny_settings
from tests.tiny_models import build_sd_pipeline
from tools.images import image_tools
from tools.registry import ToolRegistry


def verify(path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MMAGENT_DATA_DIR": str(path.parent / "cli-data")}
    return subprocess.run([sys.executable, "-m", "apps.cli", "image", "verify", str(path), *extra], env=env, capture_output=True, text=True, timeout=120, check=False)


def jpeg(path: Path, quality: int = 80) -> Path:
    out = path.with_suffix(f".q{quality}.jpg")
    Image.open(path).convert("RGB").save(out, "JPEG", quality=quality)
    return out


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    import torch

    torch.manual_seed(0)
    return build_sd_pipeline(tmp_path_factory.mktemp("tiny-sd") / "tiny-sd")


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_sd):
    """make(size, watermark=True) -> (path, artifact); one pipeline load for the whole module."""
    import os

    from multimodal.model_manager import ModelManager

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    marked = tiny_settings(tmp_path_factory.mktemp("data"), {"diffusion": tiny_sd})
    plain = marked.model_copy(update={"safety": marked.safety.model_copy(update={"watermark": False})})
    manager = ModelManager(marked)
    registries = {True: ToolRegistry(image_tools(marked, manager)), False: ToolRegistry(image_tools(plain, manager))}

    made: dict[tuple[int, bool], tuple[Path, dict]] = {}

    def make(size: int, watermark: bool = True):
        if (size, watermark) not in made:  # CPU time is scarce: each image is made once per module
            result = invoke(registries[watermark], "generate_image", prompt="a red cat", width=size, height=size, steps=1, seed=3)
            assert result.ok, result.error
            made[size, watermark] = Path(result.artifacts[0]["path"]), result.artifacts[0]
        return made[size, watermark]

    return make


@pytest.mark.slow
def test_a_generated_image_is_marked_and_survives_jpeg_80(generated):
    path, artifact = generated(256)
    assert artifact["watermark"] == watermark.DESCRIPTION
    # the metadata already written stays: the PNG text chunk and the sidecar
    chunk = json.loads(Image.open(path).text["mmagent"])
    assert chunk["prompt"] == "a red cat" and chunk["watermark"] == watermark.DESCRIPTION
    assert json.loads(path.with_suffix(".json").read_text())["seed"] == 3

    done = verify(path)
    assert done.returncode == 0, done.stderr
    assert "carries the mmagent watermark" in done.stdout
    resaved = jpeg(path)
    done = verify(resaved, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["marked"] is True and report["matching_bits"] >= watermark.MIN_MATCHING_BITS


@pytest.mark.slow
def test_an_unmarked_image_does_not_verify(generated, tmp_path):
    path, artifact = generated(256, watermark=False)
    assert "watermark" not in artifact
    for candidate in (path, jpeg(path)):
        done = verify(candidate)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "does not carry" in done.stdout
    # nor do photos, flat colours and gradients
    for name, picture in {
        "flat": Image.new("RGB", (300, 300), (120, 130, 140)),
        "gradient": Image.linear_gradient("L").resize((320, 256)).convert("RGB"),
    }.items():
        assert not watermark.is_marked(picture), name


@pytest.mark.slow
def test_small_images_are_marked_upscale_aware(generated):
    # imwatermark wants 256x256 pixels; the tiny pipeline's 64x64 is marked through an enlargement
    path, _ = generated(64)
    assert Image.open(path).size == (64, 64)
    assert verify(path).returncode == 0


def test_marking_keeps_the_size_and_is_invisible_enough():
    import numpy as np

    base = Image.linear_gradient("L").resize((320, 256)).convert("RGB")
    marked = watermark.mark(base)
    assert marked.size == base.size and watermark.is_marked(marked)
    diff = np.abs(np.asarray(marked, dtype=float) - np.asarray(base, dtype=float))
    assert diff.mean() < 4  # a few levels out of 255 on average


def test_verify_errors_are_one_line_with_exit_2(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    truncated = tmp_path / "cut.png"
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (1, 2, 3)).save(buffer, "PNG")
    truncated.write_bytes(buffer.getvalue()[:200])
    for path, message in ((tmp_path / "missing.png", "no such file"), (tmp_path / "notes.txt", "not an image"),
                          (truncated, "corrupt or truncated"), (tmp_path, "not a regular file")):
        done = verify(path)
        assert done.returncode == 2, (path, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
        assert "Traceback" not in done.stderr
