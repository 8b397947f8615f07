"""Which VAE decodes the latents: the pipeline's own ("full"), a tiny one for its family ("tiny"), or a folder.

A tiny autoencoder (diffusers' `AutoencoderTiny`, the TAESD weights) decodes a 512 px image in a fraction of
the full VAE's time on a CPU, at the cost of fine detail: textures, small text and faces come out softer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qia_cli.errors import ModelError, UsageError, first_line

CHOICES = ("full", "tiny")
# The public TAESD weights in diffusers format, per model family (see families.py for the names).
TINY_BY_FAMILY = {
    "sd1": "madebyollin/taesd",
    "sd2": "madebyollin/taesd",
    "sd2-base": "madebyollin/taesd",
    "sd-turbo": "madebyollin/taesd",
    "sd": "madebyollin/taesd",
    "sdxl": "madebyollin/taesdxl",
    "sdxl-turbo": "madebyollin/taesdxl",
}
_CLASSES = ("AutoencoderTiny", "AutoencoderKL")


def check_vae(vae: str | None) -> str:
    """'full', 'tiny', a diffusers VAE folder (config.json naming a VAE class) or something shaped like a
    hub id; else UsageError or ModelError (no torch)."""
    text = (vae or "full").strip()
    if text.lower() in CHOICES:
        return text.lower()
    from qia_cli.models.spec import is_repo_id

    folder = Path(text).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ModelError(f"VAE {text} is a file, not a diffusers VAE folder")
        _class_name(folder, text)
        return text
    if is_repo_id(text):
        return text
    raise UsageError(
        f"unknown VAE '{vae}'", hint="use full, tiny, a folder with an AutoencoderTiny, or a Hugging Face id"
    )


def vae_source(vae: str | None, family: str, model: str) -> str | None:
    """None for the pipeline's own VAE; else the folder or hub id to load."""
    choice = check_vae(vae)
    if choice == "full":
        return None
    if choice == "tiny":
        source = TINY_BY_FAMILY.get(family)
        if source is None:
            raise ModelError(
                f"no tiny VAE is known for model {model} (family {family})",
                hint="pass --vae FOLDER with an AutoencoderTiny made for it, or --vae full",
            )
        return source
    return choice


def _class_name(folder: Path, vae: str) -> str:
    if not (folder / "config.json").is_file():
        raise ModelError(f"VAE {vae} is not a diffusers VAE folder (no config.json)")
    try:
        name = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("_class_name", "")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"VAE {vae} has an unreadable config.json: {exc}") from None
    if name not in _CLASSES:
        raise ModelError(f"VAE {vae} is a {name or 'model of unknown class'}, not one of: " + ", ".join(_CLASSES))
    return name


def load_vae(source: str, dtype: Any) -> Any:
    """Load an AutoencoderTiny (or AutoencoderKL) from a folder or the HF cache; ModelError when it can't."""
    import diffusers

    from qia_cli.imaging.hub import go_offline, hub_reachable

    folder = Path(source).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise ModelError(f"VAE {source} is a file, not a diffusers VAE folder")
        cls = getattr(diffusers, _class_name(folder, source))
        try:
            return cls.from_pretrained(str(folder.resolve()), torch_dtype=dtype, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot load VAE {source}: {first_line(exc)}") from exc
    try:
        return diffusers.AutoencoderTiny.from_pretrained(source, torch_dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as cached_exc:
        if not hub_reachable():
            go_offline()
            raise ModelError(
                f"VAE {source} is not in the Hugging Face cache and the hub cannot be reached",
                hint=f"on a connected machine run `hf download {source}`, or pass --vae /path/to/folder",
            ) from cached_exc
    try:
        return diffusers.AutoencoderTiny.from_pretrained(source, torch_dtype=dtype)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot load VAE {source}: {first_line(exc)}") from exc


def swap_vae(pipe: Any, vae: Any, source: str) -> None:
    """Put `vae` in place of the pipeline's own; its latent channels must match."""
    old = getattr(pipe, "vae", None)
    if old is None:
        raise ModelError(f"this pipeline ({type(pipe).__name__}) has no VAE to replace with {source}")
    want, got = old.config.get("latent_channels"), vae.config.get("latent_channels")
    if want is not None and got != want:
        raise ModelError(
            f"VAE {source} decodes {got} latent channels; this model makes {want}",
            hint="use a VAE made for this model family, or --vae full",
        )
    if _scale(vae) != _scale(old):
        raise ModelError(
            f"VAE {source} upscales latents {_scale(vae)}x; this model's VAE does {_scale(old)}x",
            hint="use a VAE made for this model family, or --vae full",
        )
    pipe.vae = vae


def _scale(vae: Any) -> int:
    """How many pixels one latent covers per side (8 for every SD-family VAE)."""
    blocks = len(vae.config.get("block_out_channels") or [0] * 4)
    return int(vae.config.get("upsampling_scaling_factor", 2)) ** max(blocks - 1, 0)
