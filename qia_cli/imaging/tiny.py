"""A tiny random-weight Stable Diffusion pipeline for tests, benchmarks and demos (no download)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

TINY_SIDE = 64  # default image size of the tiny pipeline (UNet sample 8 x VAE scale 8)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode map (what CLIP's BPE works on)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _write_tokenizer_files(folder: Path) -> tuple[Path, Path, dict[str, int]]:
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    merges = ["e r</w>", "t h", "th e</w>", "a n", "i n", "o n</w>", "r e", "e d</w>"]
    for merge in merges:
        tokens.append(merge.replace(" ", ""))
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_file, merges_file, vocab


def build_tiny_pipeline(folder: Path, *, seed: int = 0, verbose: bool = False) -> Path:
    """Build and save_pretrained a tiny StableDiffusionPipeline into `folder` (~4.5 MB); returns it."""
    import torch

    from qia_cli.imaging.pipeline import set_verbose

    set_verbose(verbose)
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=TINY_SIDE // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8, 16, 16),  # 4 blocks: 8x downscale, like real SD
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=TINY_SIDE,
    )
    tokenizer, text_encoder = clip_parts(32)
    pipe = assemble_pipeline(vae, text_encoder, tokenizer, unet)
    pipe.save_pretrained(folder)  # type: ignore[attr-defined]  # diffusers' stubs miss the mixin's method
    return folder


def clip_parts(hidden: int = 32, projection: int | None = None):
    """A tiny CLIP tokenizer and text encoder (with a projection when `projection` is set)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="qia-tiny-tok-") as tmp:
        vocab_file, merges_file, vocab = _write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)
    eos = vocab["<|endoftext|>"]
    config = CLIPTextConfig(
        vocab_size=1000,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=eos,
        pad_token_id=eos,
        projection_dim=projection or hidden,
    )
    model = CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)
    return tokenizer, model


def assemble_pipeline(vae, text_encoder, tokenizer, unet):
    """A StableDiffusionPipeline from its parts, with sd-turbo's scheduler settings and no safety checker."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing", steps_offset=1
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_tiny_clip(folder: Path, *, seed: int = 0, verbose: bool = False) -> Path:
    """Build and save_pretrained a tiny random-weight CLIP scorer (model, tokenizer, PIL image processor)."""
    import torch

    from qia_cli.imaging.pipeline import set_verbose
    from qia_cli.imaging.scoring import _image_processor_class

    set_verbose(verbose)
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="qia-tiny-tok-") as tmp:
        vocab_file, merges_file, vocab = _write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)
    eos = vocab["<|endoftext|>"]
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = CLIPConfig(
        text_config={
            **layers,
            "vocab_size": 1000,
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={**layers, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor = _image_processor_class()(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor.save_pretrained(folder)
    return folder


def build_tiny_vae(folder: Path, *, seed: int = 0, latent_channels: int = 4, verbose: bool = False) -> Path:
    """Build and save_pretrained a tiny random-weight AutoencoderTiny (the TAESD design, 8x upscale, ~60 KB)
    that fits the tiny pipeline (and any SD 1/2 pipeline); returns `folder`."""
    import torch

    from qia_cli.imaging.pipeline import set_verbose

    set_verbose(verbose)
    from diffusers import AutoencoderTiny

    folder = Path(folder)
    torch.manual_seed(seed)
    vae = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),  # 4 blocks: 3 upsamplings of 2x = 8x, like TAESD
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=latent_channels,
    )
    vae.save_pretrained(folder)  # type: ignore[attr-defined]  # diffusers' stubs miss the mixin's method
    return folder
