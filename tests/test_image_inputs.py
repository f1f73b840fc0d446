"""The artifact store and image input safety: allowed folders, bad files, decompression bombs."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from agent.config import Settings
from multimodal.artifacts import artifact_info, load_image, resolve_image, save_image, save_upload
from tools.registry import ToolError


@pytest.fixture
def settings(data_dir) -> Settings:
    return Settings(data_dir=data_dir)


def png_bytes(size=(8, 6), color=(200, 30, 30), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A tiny PNG whose header claims width x height: decoding it would need gigabytes."""
    data = bytearray(png_bytes((1, 1)))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_save_image_writes_png_sidecar_and_the_artifact_convention(settings):
    artifact = save_image(settings, Image.new("RGB", (16, 8), "blue"), {"prompt": "a blue box", "seed": 3, "id": "ignored"})
    assert set(artifact) >= {"id", "ref", "kind", "mime", "path", "name"}
    assert len(artifact["id"]) == 32 and int(artifact["id"], 16) >= 0
    assert artifact["ref"] == f"artifact:{artifact['id']}" and artifact["kind"] == "image" and artifact["mime"] == "image/png"
    path = Path(artifact["path"])
    assert path.is_absolute() and path.parent == settings.artifacts_dir.resolve() and artifact["name"] == path.name
    assert artifact["prompt"] == "a blue box" and artifact["seed"] == 3 and (artifact["width"], artifact["height"]) == (16, 8)
    assert json.loads(path.with_suffix(".json").read_text()) == artifact
    with Image.open(path) as png:
        assert png.format == "PNG" and json.loads(png.text["mmagent"])["prompt"] == "a blue box"
    assert resolve_image(settings, artifact["ref"]) == path
    assert resolve_image(settings, artifact["id"]) == path
    assert resolve_image(settings, str(path)) == path
    assert artifact_info(settings, artifact["ref"]) == artifact
    json.dumps(artifact)  # plain data: it travels through graph state and the API


def test_save_upload_validates_stores_and_deduplicates(settings):
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), "green").save(buffer, format="JPEG")
    artifact = save_upload(settings, buffer.getvalue(), "../../holiday photo.jpg")
    path = Path(artifact["path"])
    assert path.parent == (settings.data_dir / "uploads").resolve() and path.suffix == ".jpg"
    assert artifact["mime"] == "image/jpeg" and artifact["kind"] == "image" and artifact["original_name"] == "holiday photo.jpg"
    assert (artifact["width"], artifact["height"]) == (20, 10)
    again = save_upload(settings, buffer.getvalue(), "copy.jpg")
    assert again["id"] == artifact["id"] and len(list(path.parent.glob("*.jpg"))) == 1
    image = load_image(settings, artifact["ref"])
    assert image.mode == "RGB" and image.size == (20, 10)


def test_transparent_images_are_flattened_onto_white(settings):
    ref = save_upload(settings, png_bytes((4, 4), (0, 0, 0, 0), mode="RGBA"), "clear.png")["ref"]
    image = load_image(settings, ref)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)


def test_extra_allowed_folders(data_dir, tmp_path):
    photos = tmp_path / "photos"
    path = write(photos / "cat.png", png_bytes())
    with pytest.raises(ToolError, match="outside the folders"):
        resolve_image(Settings(data_dir=data_dir), str(path))
    settings = Settings(data_dir=data_dir, models={"allowed_image_dirs": [str(photos)]})
    assert resolve_image(settings, str(path)) == path.resolve()
    assert resolve_image(settings, "cat.png") == path.resolve()  # relative to an allowed folder
    assert load_image(settings, str(path)).size == (8, 6)


# ------------------------------------------------------------------------------- bad input


def outside_file(tmp_path: Path) -> Path:
    return write(tmp_path / "secret" / "private.png", png_bytes())


BAD_PATHS = {
    "absolute path outside": lambda s, tmp: str(outside_file(tmp)),
    "dot-dot traversal": lambda s, tmp: str(s.artifacts_dir / ".." / ".." / "secret" / "private.png"),
    "relative traversal": lambda s, tmp: "../../secret/private.png",  # from the artifacts folder
    "relative to the working folder": lambda s, tmp: "secret/private.png",
}


@pytest.mark.parametrize("case", sorted(BAD_PATHS))
def test_paths_outside_the_allowed_folders_are_refused(settings, tmp_path, case):
    outside_file(tmp_path)
    settings.artifacts_dir.mkdir(parents=True)
    with pytest.raises(ToolError, match="outside the folders image tools may read"):
        load_image(settings, BAD_PATHS[case](settings, tmp_path))


def test_a_symlink_pointing_out_is_refused(settings, tmp_path):
    target = outside_file(tmp_path)
    link = settings.data_dir / "uploads" / ("ab" * 16 + ".png")
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    for ref in (str(link), "artifact:" + "ab" * 16):
        with pytest.raises(ToolError, match="outside|no image artifact"):
            load_image(settings, ref)


BAD_FILES = {
    "text file": (b"just some notes, not an image\n", "not an image in a supported format"),
    "empty file": (b"", "empty"),
    "truncated png": (png_bytes((64, 64), (10, 20, 30))[:-40], "corrupt or truncated"),
    "corrupt png": (png_bytes()[:33] + b"\x00garbage" * 20, "corrupt"),
    "20000x20000 png": (bomb_png(), "over the 40 MP limit"),
    "10000x5000 png": (bomb_png(10_000, 5_000), "10000x5000 pixels"),  # under PIL's own limit, over ours
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image in a supported format"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_image_files_get_a_clear_error(settings, case):
    data, message = BAD_FILES[case]
    path = write(settings.artifacts_dir / "bad.png", data)
    with pytest.raises(ToolError, match=message):
        load_image(settings, str(path))
    if data:
        with pytest.raises(ToolError, match=message):
            save_upload(settings, data, "bad.png")
    assert not (settings.data_dir / "uploads").exists() or not list((settings.data_dir / "uploads").iterdir())


def test_truncated_image_that_decodes_partly_is_refused(settings):
    # JPEG: the header is intact, the scan data stops half way.
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, format="JPEG")
    path = write(settings.artifacts_dir / "half.jpg", buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ToolError, match="truncated"):
        load_image(settings, str(path))


def test_the_pixel_limit_is_checked_before_decoding(settings, data_dir):
    path = write(settings.artifacts_dir / "big.png", png_bytes((300, 300)))
    strict = Settings(data_dir=data_dir, models={"max_image_pixels": 300 * 299})
    with pytest.raises(ToolError, match=r"300x300 pixels"):
        load_image(strict, str(path))
    assert load_image(settings, str(path)).size == (300, 300)


def test_the_byte_limit(settings, data_dir):
    small = Settings(data_dir=data_dir, models={"max_image_bytes": 1024})
    data = Image.effect_noise((64, 64), 80).convert("RGB").tobytes()
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 64), data).save(buffer, format="PNG")
    with pytest.raises(ToolError, match="max_image_bytes"):
        save_upload(small, buffer.getvalue(), "noise.png")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("artifact:" + "0" * 32, "no image artifact"),
        ("artifact:../../etc/passwd", "not a valid artifact reference"),
        ("artifact:xyz", "not a valid artifact reference"),
        ("", "no image given"),
        ("   ", "no image given"),
        ("missing.png", "not found"),
        ("bad\x00name.png", "not a valid path"),
    ],
)
def test_bad_references(settings, ref, message):
    with pytest.raises(ToolError, match=message):
        resolve_image(settings, ref)


def test_a_folder_is_not_an_image(settings):
    (settings.artifacts_dir / "sub").mkdir(parents=True)
    with pytest.raises(ToolError, match="not an image file"):
        resolve_image(settings, str(settings.artifacts_dir / "sub"))
