"""The invisible watermark on generated images, with the `invisible-watermark` package (imwatermark).

Method, chosen by measurement (bench/watermark.py; docs/safety.md has the figures): the
DWT-DCT-SVD embedder on the U (chroma) channel at scale 48, carrying a fixed 64-bit mark. Its
`dwtDct` sibling (the Stable Diffusion scripts' choice) came out of a JPEG re-save at quality 80
with 19-25 of 64 bits right on our test images, no better than chance; marking the Y channel
survives JPEG too but leaves visible damage (PSNR ~17-23 dB). An image counts as marked when at
least `MIN_MATCHING_BITS` of the 64 decoded bits match; unmarked photos, model outputs, flat
colours and their JPEG copies matched at most 37.

imwatermark refuses images under 256x256 pixels. Smaller ones (the tiny test pipeline's, or a
64x64 request) are marked "upscale-aware": enlarged by a whole factor with nearest-neighbour
copies, marked, and reduced back by averaging; `verify` enlarges by the same factor (it follows
from the size) before decoding. That mark survives lossless saves; JPEG survival needs the
256x256 the library asks for.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

METHOD = "dwtDctSvd"
SCALES = [0, 48, 0]  # Y, U, V: U only (imwatermark reads the first two entries)
PAYLOAD: bytes = hashlib.sha256(b"mmagent invisible watermark v1").digest()[:8]
BITS = len(PAYLOAD) * 8
MIN_MATCHING_BITS = 52
MIN_PIXELS = 256 * 256  # imwatermark's own lower limit
DESCRIPTION = f"invisible-watermark {METHOD} (U channel, scale {SCALES[1]}), 64-bit mmagent mark"


def _bits() -> list[int]:
    import numpy as np

    return np.unpackbits(np.frombuffer(PAYLOAD, dtype=np.uint8)).astype(int).tolist()


def _factor(width: int, height: int) -> int:
    """The whole enlargement that brings an image to imwatermark's minimum (1: none needed)."""
    return max(1, math.ceil(math.sqrt(MIN_PIXELS / (width * height))))


def _embedder(bits: list[int]) -> Any:
    from imwatermark.dwtDctSvd import EmbedDwtDctSvd

    # The embedder class itself (what WatermarkEncoder.encode calls after its 256x256 check),
    # so that the enlargement below can serve smaller images.
    return EmbedDwtDctSvd(bits, wmLen=len(bits), scales=SCALES)


def _to_bgr(image: Any) -> Any:
    import numpy as np

    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def _from_bgr(array: Any) -> Any:
    import numpy as np
    from PIL import Image

    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8)[:, :, ::-1].copy(), "RGB")


def mark(image: Any) -> Any:
    """A copy of the PIL image carrying our mark (RGB; the size is unchanged)."""
    from PIL import Image

    image = image.convert("RGB")
    width, height = image.size
    k = _factor(width, height)
    work = image.resize((width * k, height * k), Image.NEAREST) if k > 1 else image
    marked = _from_bgr(_embedder(_bits()).encode(_to_bgr(work)))
    return marked.resize((width, height), Image.BOX) if k > 1 else marked


def matching_bits(image: Any) -> int:
    """How many of the 64 mark bits the image carries (about 32 for an unmarked one)."""
    from PIL import Image

    image = image.convert("RGB")
    width, height = image.size
    k = _factor(width, height)
    work = image.resize((width * k, height * k), Image.NEAREST) if k > 1 else image
    decoded = _embedder([0] * BITS).decode(_to_bgr(work))
    return int(sum(int(bool(d)) == b for d, b in zip(decoded, _bits())))


def is_marked(image: Any) -> bool:
    return matching_bits(image) >= MIN_MATCHING_BITS
