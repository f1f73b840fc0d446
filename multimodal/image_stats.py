"""Facts about an image read from its pixels, with no model: size, orientation, file format,
colour mode and the dominant colours named after the nearest colour of a small palette.

This is what the `image_info` tool answers with, so that questions like "how wide is it?" or
"what is the main colour?" work offline, where the caption and CLIP models have no weights.
The image is opened through `multimodal.artifacts.load_image`, so the same folder, size and
decompression-bomb checks apply as for every other image tool.

Colours are compared in CIELAB (converted by LittleCMS through Pillow's ImageCms), where
distance follows perceived difference; in RGB, dark red is as close to black as to red.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

#: (English name, Chinese name, sRGB). Several shades share a name so that a dark or light
#: variant is still called by its everyday name.
PALETTE: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("black", "黑色", (0, 0, 0)),
    ("white", "白色", (255, 255, 255)),
    ("gray", "灰色", (128, 128, 128)),
    ("gray", "灰色", (64, 64, 64)),
    ("gray", "灰色", (192, 192, 192)),
    ("red", "红色", (255, 0, 0)),
    ("red", "红色", (139, 0, 0)),
    ("red", "红色", (200, 30, 40)),
    ("pink", "粉色", (255, 192, 203)),
    ("pink", "粉色", (255, 105, 180)),
    ("orange", "橙色", (255, 140, 0)),
    ("orange", "橙色", (255, 165, 0)),
    ("yellow", "黄色", (255, 255, 0)),
    ("yellow", "黄色", (255, 215, 0)),
    ("brown", "棕色", (139, 69, 19)),
    ("brown", "棕色", (101, 67, 33)),
    ("green", "绿色", (0, 128, 0)),
    ("green", "绿色", (0, 255, 0)),
    ("green", "绿色", (34, 139, 34)),
    ("cyan", "青色", (0, 255, 255)),
    ("cyan", "青色", (0, 139, 139)),
    ("blue", "蓝色", (0, 0, 255)),
    ("blue", "蓝色", (0, 0, 139)),
    ("blue", "蓝色", (30, 144, 255)),
    ("purple", "紫色", (128, 0, 128)),
    ("purple", "紫色", (148, 0, 211)),
    ("magenta", "品红色", (255, 0, 255)),
)
SAMPLE_SIDE = 128  # pixels per side the colour count works on; enough for the main colours
QUANTIZE_COLORS = 8
MIN_SHARE = 0.05  # colours covering less of the picture are noise (edges, anti-aliasing)


class NamedColor(BaseModel):
    name: str
    name_zh: str
    hex: str
    share: float  # of the picture's pixels, 0 to 1


class ImageInfo(BaseModel):
    image: str
    width: int
    height: int
    orientation: Literal["landscape", "portrait", "square"]
    aspect_ratio: float  # width / height
    format: str  # as stored: PNG, JPEG, ...
    mode: str  # as stored: RGB, RGBA, L, P, ...
    file_bytes: int
    dominant_colors: list[NamedColor]  # largest share first; transparency is shown on white


def image_info(settings: Any, ref: str) -> ImageInfo:
    """Facts about the image `ref` (artifact reference or path). Raises ToolError, through
    the artifacts checks, for anything that is not a readable image within the limits."""
    from PIL import Image

    from multimodal.artifacts import FORMATS, load_image, resolve_image

    picture = load_image(settings, ref)  # every check happens here, before any decoding
    path = resolve_image(settings, ref)
    with Image.open(path, formats=list(FORMATS)) as stored:  # the header only: format and mode as saved
        fmt, mode = stored.format or "", stored.mode
    width, height = picture.size
    return ImageInfo(
        image=str(ref).strip(), width=width, height=height, orientation=orientation(width, height),
        aspect_ratio=round(width / height, 3), format=fmt, mode=mode, file_bytes=path.stat().st_size,
        dominant_colors=dominant_colors(picture),
    )


def orientation(width: int, height: int) -> Literal["landscape", "portrait", "square"]:
    return "landscape" if width > height else "portrait" if height > width else "square"


def dominant_colors(picture: Any, top: int = 3) -> list[NamedColor]:
    """The `top` colour names covering most of an RGB picture, with their share of its pixels."""
    from PIL import Image

    sample = picture.convert("RGB")
    # NEAREST keeps real pixel colours; averaging would invent blends at every edge.
    sample.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE), Image.Resampling.NEAREST)
    quantized = sample.quantize(colors=QUANTIZE_COLORS, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    counts = quantized.getcolors(QUANTIZE_COLORS) or []
    total = sum(n for n, _ in counts)
    colors = [tuple(palette[3 * i : 3 * i + 3]) for _, i in counts]
    names = nearest_names(colors)
    merged: dict[str, dict[str, Any]] = {}
    for (n, _), rgb, (name, name_zh) in sorted(zip(counts, colors, names), key=lambda row: -row[0][0]):
        entry = merged.setdefault(name, {"name": name, "name_zh": name_zh, "hex": "#%02x%02x%02x" % rgb, "share": 0.0})
        entry["share"] += n / total
    ranked = sorted(merged.values(), key=lambda e: -e["share"])
    kept = [e for e in ranked if e["share"] >= MIN_SHARE] or ranked[:1]
    return [NamedColor(**{**e, "share": round(e["share"], 3)}) for e in kept[:top]]


def nearest_names(colors: list[tuple[int, ...]]) -> list[tuple[str, str]]:
    """(English, Chinese) palette names nearest to each sRGB colour in CIELAB."""
    if not colors:
        return []
    ours = to_lab(colors)
    reference = to_lab([rgb for _, _, rgb in PALETTE])
    distances = np.linalg.norm(ours[:, None, :] - reference[None, :, :], axis=2)
    return [PALETTE[i][:2] for i in distances.argmin(axis=1)]


def to_lab(colors: list[tuple[int, ...]]) -> np.ndarray:
    """CIELAB (L 0-100, a, b) of sRGB colours, shape (n, 3)."""
    from PIL import Image, ImageCms

    strip = Image.new("RGB", (len(colors), 1))
    strip.putdata([tuple(int(c) for c in rgb[:3]) for rgb in colors])
    transform = ImageCms.buildTransformFromOpenProfiles(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
    raw = np.asarray(ImageCms.applyTransform(strip, transform))[0]
    # Pillow's LAB mode stores L scaled to 0-255 and a, b as signed bytes.
    lightness = raw[:, 0].astype(np.float64) * 100.0 / 255.0
    ab = raw[:, 1:].view(np.int8).astype(np.float64)
    return np.column_stack([lightness, ab])
