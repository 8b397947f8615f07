"""One row per image model family: defaults, negative-prompt support, the text encoder's token budget and
the scheduler the model card recommends. No torch import here.

A family is found from the pipeline folder's `model_index.json` (`_class_name`, and a component's config
where the class alone does not tell), from the repository or folder name, or both. The values come from the
public model cards (and, where a card gives none, from the diffusers pipeline's own defaults); none of these
models was run here (no GPU and no weights): see the README's "Image model families".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

NegativeUse = Literal["guidance", "true_cfg", "never"]

CLIP_TOKENS = 77
# The planner's word budget per encoder budget. 90 words for CLIP's 77 tokens is qia's long-standing cap
# (compose.MAX_PROMPT_WORDS); for the long encoders about 0.75 English words per token, rounded down.
CLIP_WORDS = 90


def words_for(tokens: int) -> int:
    """The planner's word budget for an encoder that reads `tokens` tokens."""
    return CLIP_WORDS if tokens <= CLIP_TOKENS else int(tokens * 0.75) // 10 * 10


@dataclass(frozen=True)
class FamilyDefaults:
    steps: int
    guidance: float
    width: int
    height: int
    family: str = "unknown"
    # Where the family's classifier-free guidance goes: None = guidance_scale (SD, SD3, Sana, Z-Image; FLUX's
    # distilled guidance); a number = true_cfg_scale (Qwen-Image), with --guidance setting it.
    true_cfg_scale: float | None = None
    # When a negative prompt has an effect: "guidance" = with guidance > 1 (an unconditional pass);
    # "true_cfg" = through true_cfg_scale > 1; "never" = guidance-distilled models that have no negative pass.
    negative: NegativeUse = "guidance"
    encoder: str = "CLIP"  # the text encoder that reads the whole prompt
    max_tokens: int = CLIP_TOKENS  # how many tokens of the prompt it reads
    # The pipeline argument the long encoder reads when a CLIP encoder sits beside it ("prompt_2" for FLUX.1's
    # T5, "prompt_3" for SD3's T5); None when one encoder reads `prompt`.
    long_prompt_arg: str | None = None
    scheduler: str = ""  # the scheduler class the card uses (the pipeline folder ships it)
    pipeline: str = ""  # the diffusers pipeline class

    @property
    def prompt_words(self) -> int:
        """The planner's word budget for this family's text encoder."""
        return words_for(self.max_tokens)

    @property
    def label(self) -> str:
        """'flux.1-schnell (T5, 256 tokens)'."""
        return f"{self.family} ({self.encoder}, {self.max_tokens} tokens)"

    def as_dict(self) -> dict:
        return {
            "family": self.family,
            "steps": self.steps,
            "guidance": self.guidance,
            "true_cfg_scale": self.true_cfg_scale,
            "size": f"{self.width}x{self.height}",
            "negative_prompt": self.negative,
            "encoder": self.encoder,
            "max_tokens": self.max_tokens,
            "prompt_words": self.prompt_words,
            "scheduler": self.scheduler,
            "pipeline": self.pipeline,
        }


_EULER = "EulerDiscreteScheduler"
_FLOW = "FlowMatchEulerDiscreteScheduler"

# -- Stable Diffusion 1, 2 and XL (CLIP, 77 tokens) --------------------------------------------------------
# sd-turbo / sdxl-turbo: the model cards use 1 step at guidance 0.0 (adversarial distillation;
# more steps barely help and guidance > 0 hurts). At guidance 0 there is no unconditional
# pass, so a negative prompt has no effect.
SD_TURBO = FamilyDefaults(1, 0.0, 512, 512, "sd-turbo", scheduler=_EULER, pipeline="StableDiffusionPipeline")
SDXL_TURBO = FamilyDefaults(1, 0.0, 512, 512, "sdxl-turbo", scheduler=_EULER, pipeline="StableDiffusionXLPipeline")
SD1 = FamilyDefaults(25, 7.5, 512, 512, "sd1", scheduler="PNDMScheduler", pipeline="StableDiffusionPipeline")
# stable-diffusion-2 / 2-1 (768 v-prediction)
SD2 = FamilyDefaults(25, 7.5, 768, 768, "sd2", scheduler=_EULER, pipeline="StableDiffusionPipeline")
SD2_BASE = FamilyDefaults(25, 7.5, 512, 512, "sd2-base", scheduler=_EULER, pipeline="StableDiffusionPipeline")
SDXL = FamilyDefaults(30, 5.0, 1024, 1024, "sdxl", scheduler=_EULER, pipeline="StableDiffusionXLPipeline")
UNKNOWN = FamilyDefaults(25, 7.0, 512, 512, "unknown")

# -- FLUX.1 (CLIP-L pooled + T5-XXL; guidance-distilled: no negative pass) --------------------------------
# schnell: "1-4 steps, guidance_scale 0, max_sequence_length at most 256" (card and diffusers docs).
FLUX1_SCHNELL = FamilyDefaults(
    4, 0.0, 1024, 1024, "flux.1-schnell", None, "never", "T5", 256, "prompt_2", _FLOW, "FluxPipeline"
)
# dev: guidance 3.5 and max_sequence_length 512 (card); 28 steps, diffusers' FluxPipeline default (the card's
# example uses 50: quality gains past about 28 are small).
FLUX1_DEV = FamilyDefaults(
    28, 3.5, 1024, 1024, "flux.1-dev", None, "never", "T5", 512, "prompt_2", _FLOW, "FluxPipeline"
)
# -- FLUX.2 -----------------------------------------------------------------------------------------------
# klein 4B/9B (distilled): 4 steps at guidance 1.0, 1024 px, Qwen3 text encoder (512 tokens). The base
# (undistilled) klein: 50 steps at guidance 4.0, with "" as its only negative (no negative prompt argument).
FLUX2_KLEIN = FamilyDefaults(
    4, 1.0, 1024, 1024, "flux.2-klein", None, "never", "Qwen3", 512, None, _FLOW, "Flux2KleinPipeline"
)
FLUX2_KLEIN_BASE = replace(FLUX2_KLEIN, steps=50, guidance=4.0, family="flux.2-klein-base")
# FLUX.2 dev: 50 steps at guidance 4 (card), Mistral Small 3.1 text encoder.
FLUX2_DEV = FamilyDefaults(
    50, 4.0, 1024, 1024, "flux.2-dev", None, "never", "Mistral", 512, None, _FLOW, "Flux2Pipeline"
)

# -- Stable Diffusion 3 / 3.5 (CLIP-L + CLIP-G + T5-XXL, 256 T5 tokens by default; real CFG) --------------
_SD3 = FamilyDefaults(
    28, 7.0, 1024, 1024, "sd3", None, "guidance", "T5", 256, "prompt_3", _FLOW, "StableDiffusion3Pipeline"
)
SD3 = _SD3  # stable-diffusion-3-medium: 28 steps, guidance 7.0
SD35_LARGE = replace(_SD3, steps=28, guidance=3.5, family="sd3.5-large")
SD35_LARGE_TURBO = replace(_SD3, steps=4, guidance=0.0, family="sd3.5-large-turbo")
SD35_MEDIUM = replace(_SD3, steps=40, guidance=4.5, family="sd3.5-medium")

# -- Qwen-Image (Qwen2.5-VL 7B; CFG through true_cfg_scale with a negative prompt, " " when none) ---------
# Card: 50 steps, true_cfg_scale 4.0, 1328x1328 for 1:1; the pipeline reads up to 512 tokens by default.
QWEN_IMAGE = FamilyDefaults(
    50, 4.0, 1328, 1328, "qwen-image", 4.0, "true_cfg", "Qwen2.5-VL", 512, None, _FLOW, "QwenImagePipeline"
)
# -- Z-Image-Turbo (Qwen3 4B): 9 steps (8 DiT forwards) at guidance 0.0, 1024 px (card) --------------------
Z_IMAGE_TURBO = FamilyDefaults(
    9, 0.0, 1024, 1024, "z-image-turbo", None, "guidance", "Qwen3", 512, None, _FLOW, "ZImagePipeline"
)
# -- Sana (Gemma-2 2B, 300 tokens): 20 steps at guidance 4.5, 1024 px (card) -------------------------------
SANA = FamilyDefaults(
    20, 4.5, 1024, 1024, "sana", None, "guidance", "Gemma-2", 300, None, "DPMSolverMultistepScheduler", "SanaPipeline"
)

FAMILIES: tuple[FamilyDefaults, ...] = (
    SD_TURBO,
    SDXL_TURBO,
    SD1,
    SD2,
    SD2_BASE,
    SDXL,
    FLUX1_SCHNELL,
    FLUX1_DEV,
    FLUX2_KLEIN,
    FLUX2_KLEIN_BASE,
    FLUX2_DEV,
    SD3,
    SD35_LARGE,
    SD35_LARGE_TURBO,
    SD35_MEDIUM,
    QWEN_IMAGE,
    Z_IMAGE_TURBO,
    SANA,
    UNKNOWN,
)


def by_family(name: str) -> FamilyDefaults | None:
    """The row named `name` ('flux.1-schnell'), or None."""
    return next((f for f in FAMILIES if f.family == name), None)


def negative_applies(family: FamilyDefaults, guidance: float, true_cfg_scale: float | None = None) -> bool:
    """Whether a negative prompt changes the image at these settings."""
    if family.negative == "true_cfg":
        return (true_cfg_scale if true_cfg_scale is not None else guidance) > 1
    return family.negative == "guidance" and guidance > 1


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _by_name(name: str) -> FamilyDefaults | None:
    """The family a repository or folder name says (the newer families first: 'z-image-turbo' is no sd-turbo)."""
    n = _norm(name)
    return _new_by_name(n) or _sd_by_name(n)


def _new_by_name(n: str) -> FamilyDefaults | None:
    flat = n.replace(".", "").replace("-", "")
    if "flux2" in flat or "flux.2" in n:
        if "klein" in n:
            return FLUX2_KLEIN_BASE if "base" in n else FLUX2_KLEIN
        return FLUX2_DEV
    if "flux" in n:
        if "schnell" in n:
            return FLUX1_SCHNELL
        if "dev" in n:
            return FLUX1_DEV
        return None
    if "stablediffusion35" in flat or "sd35" in flat:
        if "turbo" in n:
            return SD35_LARGE_TURBO
        return SD35_MEDIUM if "medium" in n else SD35_LARGE
    if "stablediffusion3" in flat or re.search(r"(^|[/-])sd3([-.]|$)", n):
        return SD3
    if "qwen-image" in n or "qwenimage" in flat:
        return QWEN_IMAGE
    if "z-image" in n or "zimage" in flat:
        return Z_IMAGE_TURBO
    if "sana" in n:
        return _sana_sized(n)
    return None


def _sana_sized(n: str) -> FamilyDefaults:
    for tag, side in (("4kpx", 4096), ("2kpx", 2048), ("512px", 512)):
        if tag in n:
            return replace(SANA, width=side, height=side)
    return SANA


def _sd_by_name(n: str) -> FamilyDefaults | None:
    if "sdxl-turbo" in n or ("xl" in n and "turbo" in n):
        return SDXL_TURBO
    if "turbo" in n:
        return SD_TURBO
    if "sdxl" in n or "stable-diffusion-xl" in n or "-xl-" in n or n.endswith("-xl"):
        return SDXL
    if "stable-diffusion-2" in n or "sd2" in n or "sd-2" in n:
        return SD2_BASE if "base" in n else SD2
    if "stable-diffusion-v1" in n or "stable-diffusion-1" in n or "sd-1" in n or "sd1" in n:
        return SD1
    return None


def _flux(folder: Path, named: FamilyDefaults | None) -> FamilyDefaults:
    if named in (FLUX1_SCHNELL, FLUX1_DEV):
        return named
    # schnell is timestep-distilled and has no guidance embedding; dev has one
    guided = _read_json(folder / "transformer" / "config.json").get("guidance_embeds")
    return FLUX1_DEV if guided else FLUX1_SCHNELL


def _sd3(folder: Path, named: FamilyDefaults | None) -> FamilyDefaults:
    if named in (SD3, SD35_LARGE, SD35_LARGE_TURBO, SD35_MEDIUM):
        return named
    config = _read_json(folder / "transformer" / "config.json")
    if config.get("dual_attention_layers"):
        return SD35_MEDIUM  # MMDiT-X: the 3.5 medium transformer
    if config.get("num_layers") == 38:
        return SD35_LARGE
    return SD3


def _by_class(cls: str, folder: Path, named: FamilyDefaults | None, index: dict) -> FamilyDefaults | None:
    if cls.startswith("Flux2Klein"):
        if named in (FLUX2_KLEIN, FLUX2_KLEIN_BASE):
            return named
        return FLUX2_KLEIN if index.get("is_distilled", True) else FLUX2_KLEIN_BASE
    if cls.startswith("Flux2"):
        return FLUX2_DEV
    if cls.startswith("Flux"):
        return _flux(folder, named)
    if cls.startswith("StableDiffusion3"):
        return _sd3(folder, named)
    if cls.startswith("QwenImage"):
        return QWEN_IMAGE
    if cls.startswith("ZImage"):
        return Z_IMAGE_TURBO
    if cls.startswith("Sana"):
        return named if named is not None and named.family == "sana" else SANA
    return None


def _native_size(folder: Path, row: FamilyDefaults) -> FamilyDefaults:
    """`row` at the size the pipeline's VAE was made for, when its config says one smaller than the family's
    (a small or test pipeline; the released VAEs say 1024 or nothing)."""
    side = _read_json(folder / "vae" / "config.json").get("sample_size")
    if isinstance(side, int) and 16 <= side < min(row.width, row.height):
        side -= side % 16  # the transformer families pack 2x2 latents of an 8x VAE
        return replace(row, width=side, height=side)
    return row


def _local(folder: Path, name: str | None = None) -> FamilyDefaults:
    index = _read_json(folder / "model_index.json")
    cls = str(index.get("_class_name", ""))
    named = _by_name(name or folder.name)
    found = _by_class(cls, folder, named, index)
    if found is not None:
        return _native_size(folder, found)
    if named is not None:
        return named
    if "XL" in cls:
        return SDXL
    if cls.startswith("StableDiffusion"):
        # Size from the UNet's latent size times the VAE's downscale (96*8=768 for SD2, 64*8=512 for SD1).
        unet = _read_json(folder / "unet" / "config.json")
        vae = _read_json(folder / "vae" / "config.json")
        sample = unet.get("sample_size")
        scale = 2 ** max(len(vae.get("block_out_channels", [0, 0, 0, 0])) - 1, 0)
        if isinstance(sample, int) and sample > 0:
            side = max(sample * scale, 64)
            return FamilyDefaults(SD1.steps, SD1.guidance, side, side, "sd", pipeline=cls)
        return SD1
    return UNKNOWN


def base_of(model: str) -> str:
    """The pipeline part of a model spec: 'BASE+TRANSFORMER.gguf' -> 'BASE' (see imaging/quant.py)."""
    text = str(model).strip()
    if "+" in text and not Path(text).expanduser().exists():
        return text.split("+", 1)[0]
    return text


def defaults_for(model_id_or_path: str) -> FamilyDefaults:
    """Defaults for a hub id ("stabilityai/sd-turbo"), a local pipeline folder, or either with a GGUF
    transformer ("BASE+TRANSFORMER.gguf"): the folder (or the cached snapshot of a hub id) says its class."""
    text = base_of(model_id_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return _local(path)
    named = _by_name(text)
    if named is not None:
        return named
    from qia_cli.models.cache import pipeline_snapshot

    try:
        snapshot = pipeline_snapshot(text) if text.count("/") == 1 else None
    except (OSError, ValueError):
        snapshot = None
    return _local(snapshot, text) if snapshot is not None else UNKNOWN
