"""Image artifacts: saving generated images and uploads, and opening images safely.

An artifact is a plain dict (it travels through graph state, the API and the UI):

    {"id": "<32 hex>", "ref": "artifact:<id>", "kind": "image", "mime": "image/png",
     "path": "<absolute path>", "name": "<file name>", ...metadata}

Generated images live in `settings.artifacts_dir/<id>.png`, uploads in `data_dir/uploads/<id>.<ext>`
(id = the first 32 hex digits of the upload's sha256, so the same upload is stored once); each
has a `<id>.json` sidecar with the artifact dict.

Images are read only from the artifacts folder, the uploads folder and `[models] allowed_image_dirs`,
after resolving `..` and symlinks. An image is checked before it is decoded: file size, a
whitelist of formats (no exotic decoders), and width x height against `max_image_pixels`, so a
decompression bomb is refused from its header instead of filling memory.

Writes are atomic (a temp file, then a rename) and all-or-nothing per artifact: when the disk is
full (`StorageFull`) or the folder cannot be written, the temp file and anything this save
already wrote are removed, and the error names the folder.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from multimodal.errors import ToolError

ARTIFACT_PREFIX = "artifact:"
_ID = re.compile(r"[0-9a-f]{32}")
#: PIL format -> (file extension, mime type). Only these decoders are ever tried.
FORMATS = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tiff", "image/tiff"),
}
_CORE_KEYS = ("id", "ref", "kind", "mime", "path", "name")
_FULL = (errno.ENOSPC, errno.EDQUOT)


class StorageFull(ToolError):
    """No space left where artifacts are written; nothing of the artifact was kept. The API
    answers it with 507 (the server's condition, not the client's fault)."""


def uploads_dir(settings: Any) -> Path:
    return Path(settings.data_dir) / "uploads"


def allowed_dirs(settings: Any) -> list[Path]:
    """The folders images may be read from, resolved (symlinks followed)."""
    roots = [Path(settings.artifacts_dir), uploads_dir(settings), *settings.models.allowed_image_dirs]
    out: list[Path] = []
    for root in roots:
        resolved = Path(root).expanduser().resolve()
        if resolved not in out:
            out.append(resolved)
    return out


# ---------------------------------------------------------------------------------- saving


def save_image(settings: Any, image: Any, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save a PIL image as a PNG artifact; `metadata` (JSON-ready values) goes into the artifact
    dict, its JSON sidecar and a text chunk of the PNG itself."""
    from PIL.PngImagePlugin import PngInfo

    folder = Path(settings.artifacts_dir)
    _make_folder(folder)
    artifact_id = uuid.uuid4().hex
    path = (folder / f"{artifact_id}.png").resolve()
    extra = {k: v for k, v in (metadata or {}).items() if k not in _CORE_KEYS}
    artifact = {
        **_core(artifact_id, "image/png", path),
        "width": image.width,
        "height": image.height,
        "created_at": _now(),
        **extra,
    }
    info = PngInfo()
    info.add_text("mmagent", json.dumps(extra, ensure_ascii=False, default=str))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    _write_atomic(path, buffer.getvalue())
    _write_sidecar(path, artifact, remove_on_failure=True)
    return artifact


def save_upload(settings: Any, data: bytes, filename: str) -> dict[str, Any]:
    """Validate uploaded bytes as an image (fully decoded, within the limits) and store them
    under `data_dir/uploads`; returns the artifact dict. Raises ToolError for anything else."""
    name = _display_name(filename)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ToolError(f"upload {name!r}: expected the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ToolError(f"upload {name!r} is empty")
    _check_bytes(settings, len(data), f"upload {name!r}")
    image, fmt = _decode(io.BytesIO(data), f"upload {name!r}", settings.models.max_image_pixels)
    ext, mime = FORMATS[fmt]
    folder = uploads_dir(settings)
    _make_folder(folder)
    artifact_id = hashlib.sha256(data).hexdigest()[:32]
    path = (folder / f"{artifact_id}.{ext}").resolve()
    new = not path.is_file()
    if new:
        _write_atomic(path, data)
    artifact = {
        **_core(artifact_id, mime, path),
        "original_name": name,
        "width": image.width,
        "height": image.height,
        "bytes": len(data),
        "created_at": _now(),
    }
    # The same upload stored earlier stays, whatever happens to its new sidecar.
    _write_sidecar(path, artifact, remove_on_failure=new)
    return artifact


def artifact_info(settings: Any, ref: str) -> dict[str, Any]:
    """The artifact dict of `artifact:<id>` (or a bare id), from its sidecar."""
    path = resolve_image(settings, ref)
    sidecar = path.with_suffix(".json")
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return _core(path.stem, FORMATS.get(path.suffix.lstrip(".").upper(), ("", "application/octet-stream"))[1], path)


# ---------------------------------------------------------------------------------- reading


def resolve_image(settings: Any, ref_or_path: str) -> Path:
    """An image reference as a real file inside the allowed folders.

    Accepts `artifact:<id>`, a bare 32-hex id, or a path (absolute; relative to the working
    directory or to an allowed folder). `..` and symlinks are resolved before the check, so
    neither can lead outside. Raises ToolError with what to do instead.
    """
    if not isinstance(ref_or_path, (str, os.PathLike)):
        raise ToolError(f"an image reference must be a string, got {type(ref_or_path).__name__}")
    text = str(ref_or_path).strip()
    if not text:
        raise ToolError("no image given: pass an artifact reference (artifact:<id>), an uploaded image, or a file path")
    if "\x00" in text or len(text) > 4096:
        raise ToolError("the image reference is not a valid path")
    roots = allowed_dirs(settings)
    lowered = text.lower()
    if lowered.startswith(ARTIFACT_PREFIX) or _ID.fullmatch(lowered):
        return _find_artifact(settings, lowered.removeprefix(ARTIFACT_PREFIX).strip(), text, roots)
    raw = Path(text.removeprefix("file://")).expanduser()
    candidates = [raw] if raw.is_absolute() else [Path.cwd() / raw, *(root / raw for root in roots)]
    for candidate in candidates:
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            continue
        if _inside(real, roots):
            return _regular_file(real, text)
    # One message whether or not the file exists outside: otherwise the error would tell a
    # caller which files exist anywhere on the server.
    raise ToolError(
        f"image {_shown(text)} not found: image tools read only artifacts (artifact:<id>) and files inside "
        f"{', '.join(map(str, roots))}; anything outside the folders image tools may read is refused, whether it exists or not. "
        "Upload the image instead, or add its folder to [models] allowed_image_dirs (MMAGENT_MODELS__ALLOWED_IMAGE_DIRS)."
    )


def load_image(settings: Any, ref_or_path: str) -> Any:
    """Resolve, check and decode an image; returns an RGB PIL image (EXIF rotation applied,
    transparency flattened onto white). Raises ToolError for anything that is not a sound image
    within the limits."""
    path = resolve_image(settings, ref_or_path)
    label = f"image {_shown(str(ref_or_path).strip())}"
    size = path.stat().st_size
    if size == 0:
        raise ToolError(f"{label} is an empty file")
    _check_bytes(settings, size, label)
    with path.open("rb") as fp:
        image, _ = _decode(fp, label, settings.models.max_image_pixels)
    return image


def _decode(fp: BinaryIO, label: str, max_pixels: int) -> tuple[Any, str]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    supported = ", ".join(FORMATS)
    try:
        image = Image.open(fp, formats=list(FORMATS))  # reads the header only
    except UnidentifiedImageError:
        raise ToolError(f"{label} is not an image in a supported format ({supported})") from None
    except Image.DecompressionBombError as exc:  # PIL's own, higher limit, hit while reading the header
        raise ToolError(f"{label} is over the {max_pixels / 1e6:g} MP limit ([models] max_image_pixels): {exc}; it was not decoded") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ToolError(f"{label} is corrupt and cannot be read ({type(exc).__name__}: {exc})") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ToolError(f"{label} has an invalid size {width}x{height}")
    if width * height > max_pixels:
        raise ToolError(
            f"{label} is {width}x{height} pixels ({width * height / 1e6:.0f} MP), over the {max_pixels / 1e6:g} MP limit "
            "([models] max_image_pixels); it was not decoded. Use a smaller image."
        )
    fmt = image.format or ""
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _flatten(image)
    except Image.DecompressionBombError as exc:
        raise ToolError(f"{label} is over the {max_pixels / 1e6:g} MP limit ([models] max_image_pixels): {exc}; it was not decoded") from None
    except MemoryError:
        raise ToolError(f"{label} is too large to decode in the memory available") from None
    except Exception as exc:  # noqa: BLE001 - decoders fail in many ways on damaged files (OSError, zlib.error, SyntaxError...)
        raise ToolError(f"{label} is corrupt or truncated and cannot be decoded ({type(exc).__name__}: {exc})") from None
    return image, fmt


def _flatten(image: Any) -> Any:
    """RGB, with any transparency composited onto white (what a viewer shows)."""
    from PIL import Image

    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


# ---------------------------------------------------------------------------------- helpers


def _core(artifact_id: str, mime: str, path: Path) -> dict[str, Any]:
    return {"id": artifact_id, "ref": ARTIFACT_PREFIX + artifact_id, "kind": "image", "mime": mime, "path": str(path), "name": path.name}


def _find_artifact(settings: Any, artifact_id: str, text: str, roots: list[Path]) -> Path:
    if not _ID.fullmatch(artifact_id):
        raise ToolError(f"{_shown(text)} is not a valid artifact reference (expected artifact:<32 hex digits>)")
    for folder in (Path(settings.artifacts_dir), uploads_dir(settings)):
        for candidate in sorted(folder.glob(f"{artifact_id}.*")) if folder.is_dir() else []:
            if candidate.suffix.lower() in (".json", ".tmp"):
                continue
            try:
                real = candidate.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if _inside(real, roots):
                return _regular_file(real, text)
    raise ToolError(f"no image artifact {ARTIFACT_PREFIX}{artifact_id}; use a reference exactly as a tool or upload reported it")


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _regular_file(path: Path, text: str) -> Path:
    if not path.is_file():
        raise ToolError(f"image {_shown(text)} is a folder or special file, not an image file")
    return path


def _shown(text: str, limit: int = 200) -> str:
    """`text` quoted for an error message: escaped, and cut short (references can be 4096 characters)."""
    quoted = repr(text)
    return quoted if len(quoted) <= limit else quoted[: limit - 2] + "…" + quoted[-1]


def _check_bytes(settings: Any, size: int, label: str) -> None:
    limit = settings.models.max_image_bytes
    if size > limit:
        raise ToolError(f"{label} is {size / 2**20:.1f} MiB, over the {limit / 2**20:g} MiB limit ([models] max_image_bytes)")


def _display_name(filename: str) -> str:
    name = Path(str(filename or "upload").replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable())[:200]
    return name or "upload"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise _write_error(exc, path.parent) from None
    finally:
        tmp.unlink(missing_ok=True)


def _write_sidecar(path: Path, artifact: dict[str, Any], *, remove_on_failure: bool) -> None:
    try:
        _write_atomic(path.with_suffix(".json"), json.dumps(artifact, ensure_ascii=False, indent=2, default=str).encode())
    except ToolError:
        if remove_on_failure:  # an image without its sidecar would be half an artifact
            path.unlink(missing_ok=True)
        raise


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(exc, folder) from None


def _write_error(exc: OSError, folder: Path) -> ToolError:
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL:
        return StorageFull(f"the disk is full: cannot save the image in {folder} ({reason}); free some space there and try again")
    return ToolError(f"cannot save the image in {folder} ({reason})")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def save_image_bytes(settings: Any, data: bytes, metadata: dict[str, Any] | None = None, label: str = "image") -> dict[str, Any]:
    """Encoded image bytes from elsewhere (an MCP tool's result) checked like an upload, then
    saved as a PNG artifact. Raises ToolError when they are not an acceptable image."""
    _check_bytes(settings, len(data), label)
    image, _ = _decode(io.BytesIO(data), label, settings.models.max_image_pixels)
    return save_image(settings, image, metadata)
