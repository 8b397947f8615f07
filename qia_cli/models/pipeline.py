"""Which files of a diffusers repository loading it needs: one weight format, one precision variant.

This mirrors what `DiffusionPipeline.from_pretrained(..., variant=...)` asks for (diffusers'
`variant_compatible_siblings` and `_get_ignore_patterns`) without importing diffusers (and torch):
- model_index.json and the root configs diffusers reads;
- every component folder named in model_index.json, except `safety_checker` (qia loads with
  safety_checker=None, so diffusers never reads it);
- in a folder with weights: config.json plus safetensors where every weight folder has them (else
  .bin), in the fp16 variant where the repository has one (else the plain files), with their shard
  index; never .ckpt, flax, ONNX, or the duplicate single-file checkpoints at the root.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

VARIANT = "fp16"
SKIPPED_COMPONENTS = {"safety_checker"}
ROOT_FILES = {
    "model_index.json",
    "scheduler_config.json",
    "config.json",
    "pipeline.py",
    "chat_template.jinja",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
}
_PREFIX = r"(?:diffusion_pytorch_model|pytorch_model|model|diffusion_flax_model|flax_model)"
_SHARD = r"\d{5}-of-\d{5}"
WEIGHT = re.compile(rf"^{_PREFIX}(?:\.(?P<variant>[A-Za-z0-9_]+?))?(?:-{_SHARD})?\.(?P<fmt>safetensors|bin)$")
INDEX = re.compile(rf"^{_PREFIX}\.(?P<fmt>safetensors|bin)\.index(?:\.(?P<variant>[A-Za-z0-9_]+))?\.json$")
OTHER_WEIGHTS = (".ckpt", ".pt", ".pth", ".msgpack", ".onnx", ".onnx_data", ".pb", ".h5", ".gguf")


@dataclass
class Selection:
    files: list[str] = field(default_factory=list)
    variant: str | None = None  # what from_pretrained must be told: "fp16" when fp16 files were chosen
    format: str = "safetensors"


def read_index(folder: Path) -> dict:
    try:
        data = json.loads((Path(folder) / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def components(index: dict) -> list[str]:
    """The component folders model_index.json names (those set to [null, null] included)."""
    return sorted(k for k, v in index.items() if not k.startswith("_") and isinstance(v, list))


def _weight(name: str):
    """(format, variant or None) for a weight or shard-index file name, else None."""
    match = WEIGHT.match(name) or INDEX.match(name)
    return (match.group("fmt"), match.group("variant")) if match else None


def select(paths: list[str], index: dict, skip_weights: tuple[str, ...] = ()) -> Selection:
    """The files of `paths` (repository paths) that loading the pipeline of `index` reads; of the components
    in `skip_weights` (a transformer that a GGUF file replaces) only the configs."""
    folders: dict[str, dict[str, tuple | None]] = {}  # component -> {path: (format, variant) or None}
    chosen = [p for p in paths if "/" not in p and p in ROOT_FILES]
    for path in paths:
        if "/" in path:
            comp, name = path.split("/", 1)
            folders.setdefault(comp, {})[path] = _weight(name)
    wanted = [c for c in components(index) if c not in SKIPPED_COMPONENTS and c in folders]
    weighted = [c for c in wanted if any(folders[c].values())]
    fmt = (
        "safetensors" if all(any(w and w[0] == "safetensors" for w in folders[c].values()) for c in weighted) else "bin"
    )
    has_variant = any(w and w == (fmt, VARIANT) for c in weighted for w in folders[c].values())
    for comp in wanted:
        files = folders[comp]
        if comp not in weighted:  # a scheduler, a tokenizer: everything but stray weights
            chosen += [p for p in files if not p.lower().endswith(OTHER_WEIGHTS)]
            continue
        variant = VARIANT if (fmt, VARIANT) in files.values() else None
        if comp not in skip_weights:
            chosen += [p for p, w in files.items() if w == (fmt, variant)]
        chosen += [p for p in files if p == f"{comp}/config.json"]
    return Selection(sorted(dict.fromkeys(chosen)), VARIANT if has_variant else None, fmt)


def weights_size(folder: Path, skip: tuple[str, ...] = ()) -> int:
    """Bytes of the weight files loading the pipeline at `folder` reads (per component one format, the fp16
    variant where it is there), leaving out the components in `skip`."""
    folder = Path(folder)
    total = 0
    for comp in components(read_index(folder)):
        sub = folder / comp
        if comp in skip or comp in SKIPPED_COMPONENTS or not sub.is_dir():
            continue
        groups: dict[tuple[str, str | None], int] = {}
        for path in sub.iterdir():
            kind = WEIGHT.match(path.name)
            if kind and path.is_file():
                key = (kind.group("fmt"), kind.group("variant"))
                groups[key] = groups.get(key, 0) + path.stat().st_size
        for key in (("safetensors", VARIANT), ("safetensors", None), ("bin", VARIANT), ("bin", None)):
            if key in groups:
                total += groups[key]
                break
    return total


def local_variant(folder: Path) -> str | None:
    """'fp16' when a weight folder of the pipeline at `folder` holds fp16 files and no plain ones of the
    same format (as `qia models pull` leaves it), so from_pretrained must ask for the variant; else None."""
    folder = Path(folder)
    for comp in components(read_index(folder)):
        sub = folder / comp
        if not sub.is_dir():
            continue
        by_fmt: dict[str, set] = {}
        for fmt, variant in filter(None, (_weight(p.name) for p in sub.iterdir())):
            by_fmt.setdefault(fmt, set()).add(variant)
        for variants in by_fmt.values():
            if VARIANT in variants and None not in variants:
                return VARIANT
    return None


def missing(folder: Path, paths: list[str] | None, skip_weights: tuple[str, ...] = ()) -> list[str]:
    """What loading the pipeline at `folder` lacks: against the repository's file list when known,
    else a weight file for every component folder that has a config.json (but those in `skip_weights`)."""
    folder = Path(folder)
    index = read_index(folder)
    if not index:
        return ["model_index.json"]
    if paths is not None:
        return [p for p in select(paths, index, skip_weights).files if not (folder / p).is_file()]
    lacking = []
    for comp in components(index):
        sub = folder / comp
        if comp in SKIPPED_COMPONENTS or index[comp][:1] == [None]:
            continue
        if comp in skip_weights:
            if not (sub / "config.json").is_file():
                lacking.append(f"{comp}/config.json")
            continue
        if not sub.is_dir():
            lacking.append(f"{comp}/")
        elif (sub / "config.json").is_file() and not any(_weight(p.name) and p.is_file() for p in sub.iterdir()):
            lacking.append(f"{comp}/ (weights)")
    return lacking
