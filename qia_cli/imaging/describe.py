"""What an image model name stands for, and whether it loads offline: for `qia models`, `qia info` and
`qia config set image_model` (qia_cli/llm/describe.py does the same for planner models).

Plain dicts (they go straight to --json). Nothing is downloaded and no weights are loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qia_cli.errors import QiaError, UsageError
from qia_cli.models import cache, pipeline
from qia_cli.models.spec import parse, split_quant


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def describe_image(name: str, cached: list[cache.CachedPipeline] | None = None) -> dict[str, Any]:
    """The image model `name` names (a local pipeline folder, a Hub id, either with a GGUF transformer),
    whether it loads offline, and its family."""
    from qia_cli.imaging.families import defaults_for

    data = _describe_image(name, cached)
    data["family"] = defaults_for(name).family
    return data


def _describe_quant(name: str, qspec, cached: list[cache.CachedPipeline] | None) -> dict[str, Any]:
    """BASE+TRANSFORMER.gguf: the base pipeline (whose own transformer weights are not needed) and the file."""
    from qia_cli.imaging import quant

    base = _describe_image(qspec.base, cached, skip_weights=("transformer",))
    data = {**base, "name": name, "kind": "quant", "base": qspec.base, "transformer": None}
    try:
        gguf = quant.gguf_path(qspec, name)
    except QiaError as exc:
        return {**data, "available": False, "error": exc.message, "hint": f"qia models pull {name}"}
    data["transformer"] = str(gguf)
    data["size"] = (base.get("size") or 0) + gguf.stat().st_size
    if base.get("hint"):
        data["hint"] = f"qia models pull {name}"
    return data


def _unavailable(name: str, kind: str, path: str | None, error: str, hint: str | None = None) -> dict[str, Any]:
    """The record of an image model that cannot be loaded, and why."""
    return {"name": name, "kind": kind, "path": path, "available": False, "size": None, "error": error, "hint": hint}


def _describe_image(
    name: str, cached: list[cache.CachedPipeline] | None = None, skip_weights: tuple[str, ...] = ()
) -> dict[str, Any]:
    try:
        qspec = split_quant(name)
    except UsageError as exc:
        return _unavailable(name, "quant", None, exc.message)
    if qspec is not None:
        return _describe_quant(name, qspec, cached)
    path = Path(name).expanduser()
    if path.exists():
        index = pipeline.read_index(path) if path.is_dir() else {}
        ok = path.is_dir() and (path / "model_index.json").is_file()
        return {
            "name": name,
            "kind": "folder",
            "path": str(path.resolve()),
            "available": ok,
            "size": _folder_size(path) if ok else None,
            "pipeline": index.get("_class_name"),
            "components": sorted(k for k in index if not k.startswith("_")),
            "error": None if ok else "not a diffusers pipeline folder (no model_index.json)",
            "hint": None,
        }
    try:
        spec = parse(name)
    except UsageError as exc:  # a name with '..' or empty parts
        return _unavailable(name, "hub", None, exc.message)
    if spec is not None and spec.kind == "pipeline":
        cached = cache.scan()[1] if cached is None else cached
        hit = next((m for m in cached if m.id == name), None)
        complete = hit is not None and (
            hit.complete or not cache.pipeline_missing(name, Path(hit.snapshot), skip_weights)
        )
        if hit is not None and complete:
            return {
                "name": name,
                "kind": "hub",
                "path": hit.snapshot,
                "available": True,
                "size": hit.size,
                "pipeline": hit.pipeline,
                "components": hit.components,
                "revisions": hit.revisions,
                "variant": hit.variant,
                "error": None,
                "hint": None,
            }
        error = (
            f"only partly in the Hugging Face cache ({', '.join(hit.missing[:3])} missing)"
            if hit
            else f"not in the Hugging Face cache ({cache.hub_cache_dir()})"
        )
        return _unavailable(name, "hub", None, error, hint=f"qia models pull {name}")
    return _unavailable(name, "folder", str(path), "no such folder, and not a Hugging Face id")
