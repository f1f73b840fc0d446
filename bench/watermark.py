"""The image watermark: how often a marked image verifies (PNG, JPEG at quality 80 and 60), how
often an unmarked one does (false positives), the matching bits, and seconds per mark/verify.

    python bench/watermark.py [--seeds 4] [--photos DIR]

Images: outputs of the tiny test diffusion pipeline (tests/tiny_models.py: noise-like, the hard
case for a DCT mark) at 64, 256 and 512 pixels, the photos that ship with Gradio (or --photos),
whole and resized to 256, and flat colours and gradients.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def images(seeds: int, photos: Path | None) -> dict[str, list]:
    import torch
    from diffusers import StableDiffusionPipeline
    from PIL import Image

    from tests.tiny_models import build_sd_pipeline

    groups: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        pipe = StableDiffusionPipeline.from_pretrained(build_sd_pipeline(Path(folder) / "sd"), safety_checker=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        for size in (64, 256, 512):
            groups[f"tiny {size}"] = [
                pipe("a cat", width=size, height=size, num_inference_steps=1, guidance_scale=0.0, generator=torch.Generator().manual_seed(s)).images[0]
                for s in range(seeds)
            ]
    if photos is None:
        import gradio

        photos = Path(gradio.__file__).parent / "media_assets" / "images"
    found = sorted(photos.glob("*.jpg"))[:8] if photos.is_dir() else []
    groups["photos"] = [Image.open(p).convert("RGB") for p in found]
    groups["photos 256"] = [p.resize((256, 256)) for p in groups["photos"]]
    flat = [Image.new("RGB", (320, 256), c) for c in ((0, 0, 0), (255, 255, 255), (120, 130, 140))]
    gradients = [Image.linear_gradient("L").resize((320, 256)).convert("RGB"), Image.radial_gradient("L").resize((300, 300)).convert("RGB")]
    groups["flat/gradient"] = flat + gradients
    return {k: v for k, v in groups.items() if v}


def jpeg(image, quality: int):
    from PIL import Image

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--photos", type=Path)
    args = parser.parse_args()

    from multimodal import watermark

    need = watermark.MIN_MATCHING_BITS
    print(f"mark: {watermark.DESCRIPTION}; marked = at least {need}/{watermark.BITS} bits match")
    print(f"{'images':<14} {'n':>3} {'png':>6} {'jpg80':>6} {'jpg60':>6} {'min bits png/80/60':>19} {'unmarked FP':>12} {'max bits unmarked':>18} {'mark s':>7} {'verify s':>9}")
    for name, group in images(args.seeds, args.photos).items():
        ok = {"png": 0, 80: 0, 60: 0}
        low = {"png": 64, 80: 64, 60: 64}
        false_pos, worst_unmarked, mark_s, verify_s = 0, 0, 0.0, 0.0
        for image in group:
            started = time.perf_counter()
            marked = watermark.mark(image)
            mark_s += time.perf_counter() - started
            for key, candidate in (("png", marked), (80, jpeg(marked, 80)), (60, jpeg(marked, 60))):
                started = time.perf_counter()
                bits = watermark.matching_bits(candidate)
                verify_s += time.perf_counter() - started
                ok[key] += bits >= need
                low[key] = min(low[key], bits)
            for candidate in (image, jpeg(image, 80)):
                bits = watermark.matching_bits(candidate)
                false_pos += bits >= need
                worst_unmarked = max(worst_unmarked, bits)
        n = len(group)
        print(
            f"{name:<14} {n:>3} {ok['png']:>3}/{n:<2} {ok[80]:>3}/{n:<2} {ok[60]:>3}/{n:<2} {low['png']:>8}/{low[80]}/{low[60]:<8} "
            f"{false_pos:>7}/{2 * n:<4} {worst_unmarked:>18} {mark_s / n:>7.3f} {verify_s / (3 * n):>9.3f}"
        )


if __name__ == "__main__":
    main()
