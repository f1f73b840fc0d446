"""`mmagent image verify FILE`: does an image carry the watermark mmagent puts on what it generates?

Exit status: 0 marked, 1 not marked, 2 the file cannot be read as an image (one line on stderr).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from apps.errors import one_line

NOT_READABLE = 2


@click.group("image")
def image() -> None:
    """Images: check the watermark of generated images."""


@image.command("verify")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help='Print {"file", "marked", "matching_bits", "bits"}.')
def verify(file: Path, as_json: bool) -> None:
    """Say whether FILE carries mmagent's invisible watermark (exit 0: yes, 1: no, 2: not an image)."""
    from multimodal import watermark

    picture = _open(file)
    matching = watermark.matching_bits(picture)
    marked = matching >= watermark.MIN_MATCHING_BITS
    if as_json:
        click.echo(json.dumps({"file": str(file), "marked": marked, "matching_bits": matching, "bits": watermark.BITS}))
    else:
        verdict = "carries the mmagent watermark" if marked else "does not carry the mmagent watermark"
        click.echo(f"{file}: {verdict} ({matching}/{watermark.BITS} bits match)")
    sys.exit(0 if marked else 1)


def _open(file: Path):
    """The decoded image, or one error line and exit 2 (not 1: that means "not marked")."""
    from PIL import Image, UnidentifiedImageError

    if not file.is_file():
        _fail(f"{file}: no such file" if not file.exists() else f"{file}: not a regular file")
    try:
        with Image.open(file) as picture:
            if picture.width * picture.height > 100_000_000:
                _fail(f"{file}: {picture.width}x{picture.height} pixels is too large to check")
            picture.load()
            return picture.convert("RGB")
    except UnidentifiedImageError:
        _fail(f"{file}: not an image in a format Pillow can read")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        _fail(f"{file}: the image is corrupt or truncated ({type(exc).__name__}: {exc})")


def _fail(message: str) -> None:
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(NOT_READABLE)
