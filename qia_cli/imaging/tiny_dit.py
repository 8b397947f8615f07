"""Tiny random-weight pipelines of the transformer families (FLUX.1, SD3, Qwen-Image, Z-Image) for tests and
demos, built from configs with no download, and a tiny GGUF of a transformer.

Each has the real pipeline class, component classes and tokenizer kinds of its family at toy sizes (well
under 2 MB), so a folder loads through `from_pretrained` and renders through qia like the real model, only
with random pixels. The tokenizers read whole words from a small English vocabulary (`WORDS`), one token a
word, and spell any other word letter by letter; the long encoders read 512 tokens, as the real ones do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qia_cli.imaging.tiny import clip_parts

TINY_DIT_SIDE = 64

WORDS = """a an the and with of in on at by for to from under over near behind beside into
red orange yellow green blue purple pink white black grey brown golden silver dark bright pale
cat dog bird horse fox bear owl fish cow sheep rabbit tiger lion wolf deer mouse corgi puppy kitten
house tree bicycle wall sky night day sun moon star cloud rain snow river lake sea mountain hill forest
field garden flower rose street city road bridge tower lighthouse castle boat car train window door
table chair cup book lamp hat coat dress shoe poster sign text letters birthday party cake candle
painting photo drawing watercolor oil sketch portrait landscape style light shadow morning evening
dusk dawn winter summer spring autumn warm cold soft sharp wide close view detailed simple old new
small big tall long short round happy quiet calm busy little young man woman child people friend
three legged wearing holding sitting standing leaning walking running flying sleeping""".split()


def _t5_tokenizer(max_length: int = 512):
    """A T5 tokenizer (Unigram, as the real one) whose vocabulary is WORDS plus the letters and digits."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -1.0) for w in WORDS]
    vocab += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789.,'\"!?-"]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=max_length)


QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# A minimal Qwen chat template: what Z-Image and FLUX.2 klein call apply_chat_template with.
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _qwen_tokenizer(max_length: int = 1024):
    """A Qwen2 tokenizer (byte-level BPE, as the real one), trained here on sentences of WORDS."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=QWEN_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [" ".join(WORDS[i : i + 12]) for i in range(0, len(WORDS), 12)] * 4
    bpe.train_from_iterator(lines + ["system user assistant Describe the image"], trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, model_max_length=max_length)  # type: ignore[arg-type]  # the BPE model takes pairs
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIALS[1:]})
    tokenizer.chat_template = QWEN_TEMPLATE
    return tokenizer


def _t5_encoder(tokenizer, d_model: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=d_model,
            d_kv=8,
            d_ff=d_model * 2,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
        )
    )


def _vae_kl(latent_channels: int, **extra):
    """An AutoencoderKL with 4 blocks (8x downscale, as the real ones)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=latent_channels,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=TINY_DIT_SIDE,
        **extra,
    )


def _flux(guided: bool):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    clip_tok, clip = clip_parts(32)
    t5_tok = _t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=guided,  # dev has a guidance embedding, schnell none
        axes_dims_rope=[4, 4, 8],
    )
    vae = _vae_kl(4, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        vae=vae,
        text_encoder=clip,
        tokenizer=clip_tok,
        text_encoder_2=_t5_encoder(t5_tok, 32),
        tokenizer_2=t5_tok,
        transformer=transformer,
    )


def _sd3():
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tok_l, clip_l = clip_parts(32, projection=32)
    tok_g, clip_g = clip_parts(32, projection=32)
    t5_tok = _t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=TINY_DIT_SIDE // 8,
        patch_size=2,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=64,  # T5's width; the two CLIPs (32 + 32) are padded to it
        pooled_projection_dim=64,  # the two CLIP projections side by side
        out_channels=4,
    )
    vae = _vae_kl(4, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=clip_l,
        tokenizer=tok_l,
        text_encoder_2=clip_g,
        tokenizer_2=tok_g,
        text_encoder_3=_t5_encoder(t5_tok, 64),
        tokenizer_3=t5_tok,
    )


def _qwen_image():
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = _qwen_tokenizer()
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,  # 4 latent channels packed 2x2
        out_channels=4,
        num_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    vae = AutoencoderKLQwenImage(
        base_dim=8,
        z_dim=4,
        dim_mult=[1, 2, 2, 2],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],  # 8x spatial, as the real one
        latents_mean=[0.0] * 4,
        latents_std=[1.0] * 4,
    )
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 2048,
        },
        vision_config={"depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16,
        vocab_size=len(tokenizer),
    )
    return QwenImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        vae=vae,
        text_encoder=Qwen2_5_VLForConditionalGeneration(config),
        tokenizer=tokenizer,
        transformer=transformer,
    )


def _z_image():
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    tokenizer = _qwen_tokenizer()
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=1,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        cap_feat_dim=16,
        axes_dims=[8, 4, 4],
        axes_lens=[1024, 128, 128],
    )
    vae = _vae_kl(16, shift_factor=0.1159, scaling_factor=0.3611)
    text_encoder = Qwen3Model(
        Qwen3Config(
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
            vocab_size=len(tokenizer),
            max_position_embeddings=1024,
        )
    )
    return ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )


BUILDERS: dict[str, Callable[[], Any]] = {
    "flux.1-schnell": lambda: _flux(guided=False),
    "flux.1-dev": lambda: _flux(guided=True),
    "sd3": _sd3,
    "qwen-image": _qwen_image,
    "z-image-turbo": _z_image,
}


def build_tiny_dit(family: str, folder: Path, *, seed: int = 0, verbose: bool = False) -> Path:
    """Build and save_pretrained the tiny pipeline of `family` (a key of BUILDERS) into `folder`."""
    import torch

    from qia_cli.imaging.pipeline import set_verbose

    set_verbose(verbose)
    torch.manual_seed(seed)
    pipe = BUILDERS[family]()
    folder = Path(folder)
    pipe.save_pretrained(folder)
    return folder


def write_tiny_gguf(pipeline_folder: Path, out: Path) -> Path:
    """The pipeline's transformer as a GGUF file: 2-D weights whose rows are a multiple of 32 in Q8_0, the
    rest in F32, under diffusers' parameter names (what `from_single_file` loads without conversion)."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    weights = sorted((Path(pipeline_folder) / "transformer").glob("*.safetensors"))
    state: dict[str, Any] = {}
    for file in weights:
        state.update(load_file(str(file)))
    writer = gguf.GGUFWriter(str(out), arch="qia-tiny")
    for name, array in state.items():
        data = np.asarray(array, dtype=np.float32)
        if data.ndim == 2 and data.shape[1] % 32 == 0:
            writer.add_tensor(
                name,
                gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0),
                raw_dtype=gguf.GGMLQuantizationType.Q8_0,
            )
        else:
            writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out)
