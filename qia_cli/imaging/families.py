"""Default steps, guidance and size per model family (no torch import here)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FamilyDefaults:
    steps: int
    guidance: float
    width: int
    height: int
    family: str = "unknown"


# sd-turbo / sdxl-turbo: the model cards use 1 step at guidance 0.0 (adversarial distillation;
# more steps barely help and guidance > 0 hurts). At guidance 0 there is no unconditional
# pass, so a negative prompt has no effect.
SD_TURBO = FamilyDefaults(1, 0.0, 512, 512, "sd-turbo")
SDXL_TURBO = FamilyDefaults(1, 0.0, 512, 512, "sdxl-turbo")
SD1 = FamilyDefaults(25, 7.5, 512, 512, "sd1")
SD2 = FamilyDefaults(25, 7.5, 768, 768, "sd2")  # stable-diffusion-2 / 2-1 (768 v-prediction)
SD2_BASE = FamilyDefaults(25, 7.5, 512, 512, "sd2-base")
SDXL = FamilyDefaults(30, 5.0, 1024, 1024, "sdxl")
UNKNOWN = FamilyDefaults(25, 7.0, 512, 512, "unknown")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _by_name(name: str) -> FamilyDefaults | None:
    n = name.lower().replace("_", "-")
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


def _local(folder: Path) -> FamilyDefaults:
    index = _read_json(folder / "model_index.json")
    cls = str(index.get("_class_name", ""))
    named = _by_name(folder.name)
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
            return FamilyDefaults(SD1.steps, SD1.guidance, side, side, "sd")
        return SD1
    return UNKNOWN


def defaults_for(model_id_or_path: str) -> FamilyDefaults:
    """Defaults for a hub id ("stabilityai/sd-turbo") or a local pipeline folder."""
    text = str(model_id_or_path).strip()
    path = Path(text).expanduser()
    if path.is_dir():
        return _local(path)
    return _by_name(text) or UNKNOWN
