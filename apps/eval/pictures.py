"""The test pictures of the `images` suite: drawn with PIL at set-up, so every fact a task asks
about (size, orientation, format, mode, colours) is known exactly and nothing binary lives in
the repository."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Picture:
    name: str  # file name; the format follows the extension
    size: tuple[int, int]
    mode: str
    draw: Callable[[Image.Image], None]
    background: str | tuple[int, ...] = "white"


def _nothing(image: Image.Image) -> None:
    """A solid picture: the background is all there is."""


def _circle(image: Image.Image) -> None:
    w, h = image.size
    ImageDraw.Draw(image).ellipse([w * 0.05, h * 0.05, w * 0.95, h * 0.95], fill="yellow")


def _stripes(image: Image.Image) -> None:
    w, h = image.size
    draw = ImageDraw.Draw(image)
    for i, colour in enumerate(("black", "red", "yellow")):
        draw.rectangle([i * w // 3, 0, (i + 1) * w // 3 - 1, h - 1], fill=colour)


def _text(image: Image.Image) -> None:
    draw = ImageDraw.Draw(image)
    draw.text((20, 30), "HELLO EVAL", fill="black", font_size=40)


def _half_transparent(image: Image.Image) -> None:
    w, h = image.size
    ImageDraw.Draw(image).rectangle([0, 0, w // 2 - 1, h - 1], fill=(128, 0, 128, 255))


PICTURES: tuple[Picture, ...] = (
    Picture("red-square.png", (64, 64), "RGB", _nothing, "red"),
    Picture("blue-wide.png", (320, 120), "RGB", _nothing, (30, 60, 200)),
    Picture("green-tall.png", (90, 240), "RGB", _nothing, (0, 128, 0)),
    Picture("yellow-circle.png", (200, 200), "RGB", _circle),
    Picture("stripes.png", (300, 200), "RGB", _stripes),
    Picture("hello-text.png", (400, 100), "RGB", _text),
    Picture("purple-half.png", (128, 64), "RGBA", _half_transparent, (0, 0, 0, 0)),
    Picture("orange.jpg", (150, 100), "RGB", _nothing, (255, 140, 0)),
)


def draw_pictures(folder: Path) -> list[Path]:
    """Draw every picture into `folder` (again each time: a few milliseconds, and a picture
    edited by hand cannot skew a run)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for picture in PICTURES:
        image = Image.new(picture.mode, picture.size, picture.background)
        picture.draw(image)
        path = folder / picture.name
        image.save(path, quality=95)  # JPEG uses it; PNG ignores it
        paths.append(path)
    return paths
