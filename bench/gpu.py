"""Throughput and peak memory of the image models, on full-size architectures with random weights.

No weights are downloaded: each model is built from its published configuration (same layers,
widths and therefore the same compute as the real checkpoint) with random weights:

* Stable Diffusion as in stabilityai/sd-turbo (SD 2.1 UNet, VAE, OpenCLIP ViT-H text encoder,
  Euler scheduler, no safety checker): images/s at 512x512 for 1 and 4 steps;
* open_clip ViT-B-32: images/s for image embeddings, batches of 32 at 224x224;
* BLIP base captioning (ViT-B/16 at 384, BERT-base decoder): captions/s, 20 new tokens, greedy.

Each figure is measured in fp32 and in half precision (fp16; bf16 too with --bf16) on CUDA, fp32
only elsewhere. On CUDA the peak GPU memory of each measurement is reported
(torch.cuda.reset_peak_memory_stats / max_memory_allocated; every timing is bracketed by
torch.cuda.synchronize).

    python bench/gpu.py                    # full size on the best device (CUDA, MPS, else CPU)
    python bench/gpu.py --quick            # narrow models at 128x128, a CPU smoke check (~1 min)
    python bench/gpu.py --device cpu --repeats 2
"""

from __future__ import annotations

import argparse
import string
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from multimodal.devices import resolve_device  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)


def quiet_libraries() -> None:
    from diffusers.utils import logging as diffusers_logging

    # Casting random-weight models with .to(dtype) makes diffusers log a note per model.
    diffusers_logging.set_verbosity_error()

# Published configurations (sd-turbo = SD 2.1 base architecture).
SD_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
)
SD_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=768,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
)
SD_TEXT = dict(
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
    max_position_embeddings=77, hidden_act="gelu", projection_dim=512,
)
# --quick: the same layer types, much narrower, so the code path runs in seconds on a CPU.
QUICK_UNET = {**SD_UNET, "block_out_channels": (32, 64, 64, 64), "attention_head_dim": (2, 4, 4, 4), "cross_attention_dim": 64,
              "layers_per_block": 1, "norm_num_groups": 16}
QUICK_VAE = {**SD_VAE, "block_out_channels": (16, 32, 32, 32), "layers_per_block": 1, "norm_num_groups": 16}
QUICK_TEXT = {**SD_TEXT, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2}
QUICK_CLIP = {"embed_dim": 64, "vision_cfg": {"image_size": 224, "layers": 2, "width": 128, "patch_size": 32},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
QUICK_BLIP = {"text_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2},
              "vision_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                                "image_size": 384, "patch_size": 16}}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device == "mps":
        torch.mps.synchronize()


def measure(device: str, run: Callable[[], Any], repeats: int) -> tuple[float, float | None]:
    """(seconds per run, peak GPU MiB) after one warm-up run."""
    run()
    sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    sync(device)
    seconds = (time.perf_counter() - started) / repeats
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.startswith("cuda") else None
    return seconds, peak


def free(device: str) -> None:
    import gc

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def tokenizer() -> Any:
    """A character-level CLIP tokenizer (no download); prompts are padded to 77 tokens anyway,
    so the text encoder does the same work as with the real vocabulary."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits:
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def bench_sd(device: str, dtype: torch.dtype, quick: bool, size: int, repeats: int) -> list[tuple[str, float, float | None]]:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**(QUICK_VAE if quick else SD_VAE)),
        text_encoder=CLIPTextModel(CLIPTextConfig(**(QUICK_TEXT if quick else SD_TEXT))),
        tokenizer=tokenizer(),
        unet=UNet2DConditionModel(**(QUICK_UNET if quick else SD_UNET)),
        scheduler=EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                         timestep_spacing="trailing", steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    ).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    rows = []
    for steps in (1, 4):
        def run(steps=steps):
            with torch.inference_mode():
                # output_type="np": time the pipeline, not the PIL conversion.
                pipe("a photo of a cat", num_inference_steps=steps, guidance_scale=0.0, width=size, height=size,
                     generator=torch.Generator("cpu").manual_seed(0), output_type="np")

        seconds, peak = measure(device, run, repeats)
        rows.append((f"SD {size}x{size}, {steps} step{'s' if steps > 1 else ''}" + (" [quick]" if quick else ""), 1 / seconds, peak))
    del pipe
    free(device)
    return rows


def bench_clip(device: str, dtype: torch.dtype, quick: bool, repeats: int, batch: int = 32) -> tuple[str, float, float | None]:
    import open_clip

    if quick:
        model = open_clip.CLIP(**QUICK_CLIP)
    else:
        model = open_clip.create_model("ViT-B-32", pretrained=None)  # the architecture, random weights
    model = model.to(device, dtype).eval()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    pixels = torch.randn(batch, 3, size, size, device=device, dtype=dtype)

    def run():
        with torch.inference_mode():
            model.encode_image(pixels, normalize=True)

    seconds, peak = measure(device, run, repeats)
    del model
    free(device)
    return (f"CLIP ViT-B-32 image embeddings (batch {batch})" + (" [quick]" if quick else ""), batch / seconds, peak)


def bench_blip(device: str, dtype: torch.dtype, quick: bool, repeats: int, batch: int = 1) -> tuple[str, float, float | None]:
    from transformers import BlipConfig, BlipForConditionalGeneration

    config = BlipConfig(**QUICK_BLIP) if quick else BlipConfig()  # the defaults are BLIP base
    model = BlipForConditionalGeneration(config).to(device, dtype).eval()
    size = config.vision_config.image_size
    pixels = torch.randn(batch, 3, size, size, device=device, dtype=dtype)

    def run():
        with torch.inference_mode():
            # min_new_tokens: random weights could stop at once; real captions run ~10-20 tokens.
            model.generate(pixel_values=pixels, max_new_tokens=20, min_new_tokens=20, do_sample=False)

    seconds, peak = measure(device, run, repeats)
    del model
    free(device)
    return (f"BLIP base captions, 20 tokens (batch {batch})" + (" [quick]" if quick else ""), batch / seconds, peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--quick", action="store_true", help="narrow models at 128x128: a smoke check for CPUs")
    parser.add_argument("--size", type=int, default=None, help="SD resolution (default 512; 128 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default 5 on GPU, 1 on CPU)")
    parser.add_argument("--bf16", action="store_true", help="also measure bfloat16 on CUDA")
    parser.add_argument("--only", choices=["sd", "clip", "blip"], action="append", help="run only these parts")
    args = parser.parse_args()

    device = resolve_device(args.device)
    quiet_libraries()
    size = args.size or (128 if args.quick else 512)
    repeats = args.repeats or (5 if device.startswith("cuda") else 1)
    dtypes = [torch.float32]
    if device.startswith("cuda"):
        dtypes.append(torch.float16)
        if args.bf16 and torch.cuda.is_bf16_supported():
            dtypes.append(torch.bfloat16)
    parts = args.only or ["sd", "clip", "blip"]
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else device
    torch.manual_seed(0)
    print(f"device={device} ({name}) torch {torch.__version__} quick={args.quick} repeats={repeats} random weights")
    print(f"{'model':48} {'dtype':9} {'per second':>11} {'peak GPU MiB':>13}")
    for dtype in dtypes:
        rows: list[tuple[str, float, float | None]] = []
        if "sd" in parts:
            rows += bench_sd(device, dtype, args.quick, size, repeats)
        if "clip" in parts:
            rows.append(bench_clip(device, dtype, args.quick, repeats))
        if "blip" in parts:
            rows.append(bench_blip(device, dtype, args.quick, repeats))
        for label, rate, peak in rows:
            shown = f"{peak:13.0f}" if peak is not None else f"{'n/a':>13}"
            print(f"{label:48} {str(dtype).removeprefix('torch.'):9} {rate:11.3f} {shown}", flush=True)


if __name__ == "__main__":
    main()
