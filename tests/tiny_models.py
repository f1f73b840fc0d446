"""Tiny random-weight image models saved in the real on-disk formats, for tests.

No weights can be downloaded here, so the tests build miniature versions of the real
architectures from configs and save them the way the real checkpoints are published: a
diffusers pipeline folder (model_index.json + components), transformers BLIP folders, and an
open_clip folder (open_clip_config.json + open_clip_model.safetensors). The product then loads
them through its ordinary loaders. The outputs are noise; only shapes and plumbing are tested.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

#: A tiny word list shared by the BLIP tokenizer (words) and the CLIP tokenizer (characters).
WORDS = ["a", "an", "the", "photo", "of", "cat", "dog", "red", "blue", "car", "what", "color", "is", "it", "?", "yes", "no"]


def build_all(root: Path) -> dict[str, Path]:
    """Build every tiny model under `root`; returns {model key: folder}."""
    torch.manual_seed(0)
    return {
        "diffusion": build_sd_pipeline(root / "tiny-sd"),
        "clip": build_open_clip(root / "tiny-open-clip"),
        "caption": build_blip(root / "tiny-blip-caption", vqa=False),
        "vqa": build_blip(root / "tiny-blip-vqa", vqa=True),
    }


def _clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    # Byte-level BPE without merges: every word splits into characters, the last one marked
    # with "</w>". Characters outside the vocabulary map to the unknown token.
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    tokenizer.save_pretrained(folder)
    return tokenizer, len(vocab)


def build_sd_pipeline(folder: Path) -> Path:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    tokenizer, vocab_size = _clip_tokenizer(folder / "tokenizer")
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4, sample_size=32,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                       max_position_embeddings=16, projection_dim=16, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    )
    # A real (tiny) safety checker: the product must keep it on by default. Its concept
    # thresholds start at 1, which a cosine similarity never exceeds, so nothing is flagged.
    safety_checker = StableDiffusionSafetyChecker(
        CLIPConfig(
            text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 64,
                         "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
            vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                           "image_size": 32, "patch_size": 8},
            projection_dim=16,
        )
    )
    feature_extractor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing", steps_offset=1)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=safety_checker, feature_extractor=feature_extractor, requires_safety_checker=True,
    )
    pipe.save_pretrained(folder)
    return folder


def build_open_clip(folder: Path) -> Path:
    import open_clip
    from safetensors.torch import save_model

    config = {
        "model_cfg": {
            "embed_dim": 16,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
        },
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
    }
    folder.mkdir(parents=True, exist_ok=True)
    model = open_clip.CLIP(**config["model_cfg"])
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    save_model(model, str(folder / "open_clip_model.safetensors"))
    return folder


def build_blip(folder: Path, vqa: bool) -> Path:
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipForQuestionAnswering,
        BlipImageProcessor,
        BlipProcessor,
    )

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]", model_max_length=64)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    text = {
        "vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "encoder_hidden_size": 32, "max_position_embeddings": 64,
        "bos_token_id": vocab["[DEC]"], "pad_token_id": vocab["[PAD]"], "sep_token_id": vocab["[SEP]"], "eos_token_id": vocab["[SEP]"],
    }
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 8}
    config = BlipConfig(text_config=text, vision_config=vision, projection_dim=32)
    model = (BlipForQuestionAnswering if vqa else BlipForConditionalGeneration)(config)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
