"""`qia config ...`: where the settings file is, what is in effect and why, and how to change it."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import typer

from qia_cli.cli import console
from qia_cli.cli.root import app
from qia_cli.errors import ModelError, QiaError, UsageError

config_app = typer.Typer(
    help=(
        "Settings: defaults < config file (TOML) < QIA_* environment < flags. "
        "`qia config show` lists every setting with the place its value came from."
    ),
    invoke_without_command=True,
)
app.add_typer(config_app, name="config")


def _complete_key(incomplete: str) -> list[str]:
    from qia_cli.config import KEYS

    return [k for k in KEYS if k.startswith(incomplete)]


def _text(value: Any) -> str:
    """A value as a person types it: true/false, nothing for unset."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _config_path() -> Path:
    from qia_cli import paths

    return paths.config_file()


@config_app.callback()
def config_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:  # `qia config`: the help, exit 0
        typer.echo(ctx.get_help())
        raise typer.Exit()


@config_app.command("path")
def path() -> None:
    """Print where the config file is (it may not exist yet; QIA_HOME moves it)."""
    typer.echo(str(_config_path()))


@config_app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    """Show every effective setting and where its value came from: default, file or env."""
    from qia_cli.config import load_settings

    rows = load_settings().describe()  # secrets come back masked
    file = _config_path()
    if as_json:
        data = {
            "config_file": str(file),
            "exists": file.exists(),
            "settings": {key: {"value": value, "source": source} for key, value, source in rows},
        }
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    console.info(f"config file: {console.safe(file)}" + ("" if file.exists() else " (not created yet)"))
    width = max(len(key) for key, _, _ in rows)
    vwidth = min(48, max(len(_text(v) or "-") for _, v, _ in rows))
    for key, value, source in rows:
        typer.echo(f"{key:<{width}}  {_text(value) or '-':<{vwidth}}  {source}")


@config_app.command("get")
def get(
    key: str = typer.Argument(..., help="A setting name (see `qia config show`).", autocompletion=_complete_key),
) -> None:
    """Print the effective value of one setting (empty when unset; secrets stay masked)."""
    from qia_cli.config import KEYS, SECRET_KEYS, load_settings

    if key not in KEYS:
        raise UsageError(f"unknown setting '{key}'", hint="known settings: " + ", ".join(KEYS))
    value = getattr(load_settings().settings, key)
    if key in SECRET_KEYS and value:
        value = "***"
    typer.echo(_text(value))


@config_app.command("set", context_settings={"ignore_unknown_options": True})  # `set search_timeout -1`: a value
def set_(
    key: str = typer.Argument(..., help="A setting name (see `qia config show`).", autocompletion=_complete_key),
    value: str = typer.Argument(..., help="The new value; it is checked before it is written."),
) -> None:
    """Validate a value and write it to the config file ('none' clears an optional setting).

    Models, folders and files are checked the way `qia models set-default` does, and local paths are
    stored absolute, so the setting works from any folder."""
    from qia_cli.config import SECRET_KEYS, coerce, env_var, set_file_value

    stored = set_file_value(key, check_meaning(key, coerce(key, value)))
    shown = "***" if key in SECRET_KEYS and stored else _text(stored) or "(unset)"
    console.info(f"{key} = {console.safe(shown)}  (in {console.safe(_config_path())})")
    _warn_env(key, env_var(key))


@config_app.command("unset")
def unset(key: str = typer.Argument(..., help="A setting name.", autocompletion=_complete_key)) -> None:
    """Remove a setting from the config file, so its default (or env) applies again."""
    from qia_cli.config import env_var, unset_file_value

    if unset_file_value(key):
        console.info(f"removed {console.safe(key)} from {console.safe(_config_path())}")
    else:
        console.info(f"{key} was not set in {console.safe(_config_path())}")
    _warn_env(key, env_var(key))


def _absolute(path: Path) -> str:
    return str(Path(os.path.abspath(path)))


def check_meaning(key: str, value: Any) -> Any:
    """What a type check cannot see: that a model, folder or file a setting names is usable now.
    Returns the value to store (local paths made absolute); raises a QiaError otherwise."""
    if value is None:
        return None
    if key == "llm":
        from qia_cli.models.describe import describe_llm

        data = describe_llm(value)
        if data["available"] is False:
            raise ModelError(
                f"llm {value}: {data['error']}",
                hint=data.get("hint") or "use 'bundled', a pulled model, a .gguf file, or openai:BASE_URL[#MODEL]",
            )
        return data["path"] if data["kind"] == "gguf" else value
    if key == "knowledge_llm":  # as --llm checks a planner: a GGUF file, or a pulled model
        if value in {"auto", "planner"}:
            return value
        from qia_cli.models.describe import describe_llm

        data = describe_llm(value)
        if data["kind"] not in {"gguf", "pulled"} or data["available"] is False:
            reason = data.get("error") or (
                f"it answers through a local GGUF, not a {data['kind']} model; `planner` asks the planner itself"
            )
            raise ModelError(
                f"knowledge_llm {value}: {reason}",
                hint=data.get("hint") or "use auto, planner, a .gguf file or a pulled model name",
            )
        return data["path"] if data["kind"] == "gguf" else value
    if key == "vae":  # as --vae checks it: full, tiny, a VAE folder (stored absolute) or a hub id
        from qia_cli.imaging.vae import check_vae

        choice = check_vae(value)
        return _absolute(Path(choice).expanduser()) if Path(choice).expanduser().is_dir() else choice
    if key == "image_model":
        from qia_cli.models.describe import describe_image

        data = describe_image(value)
        if not data["available"] and data["hint"] is None:
            raise ModelError(
                f"image model {value}: {data['error']}",
                hint="use a diffusers folder (with model_index.json) or a Hugging Face id",
            )
        if not data["available"]:
            console.warn(f"{value} is {data['error']}; get it with: {data['hint']}")
        return data["path"] if data["kind"] == "folder" else value
    if key == "scorer":
        from qia_cli.imaging.scoring import _local_folder

        folder = _local_folder(value)  # a folder without config.json, or a path that does not exist: ModelError
        return str(folder) if folder is not None else value
    if key in {"width", "height"} and value % 8:
        raise UsageError(f"invalid value for '{key}': {value} (must be a multiple of 8)", hint="e.g. 512, 768 or 1024")
    if key == "outdir":
        from qia_cli.imaging.output import check_writable

        folder = Path(value).expanduser()
        try:
            check_writable(folder)  # creates nothing
        except UsageError as exc:
            raise UsageError(exc.message, hint="choose a folder you can write to") from None
        return _absolute(folder)
    if key == "search":
        from qia_cli.search.service import make_backend

        backend = make_backend(value, timeout=1)  # an unknown backend or an unreadable fixture: UsageError
        path = getattr(backend, "path", None)
        return f"fixture:{_absolute(path)}" if path is not None else value
    if key == "llm_url":
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise UsageError(
                f"invalid value for 'llm_url': {value!r} (not an http(s) URL)", hint="e.g. http://127.0.0.1:8080/v1"
            )
    return value


def _warn_env(key: str, env: str | None) -> None:
    if env:
        console.warn(f"{env} is set in the environment and overrides the file's {key}")


def _editor() -> list[str]:
    for var in ("VISUAL", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            try:
                return shlex.split(value)
            except ValueError as exc:
                raise UsageError(
                    f"cannot read ${var} ({value!r}): {exc}", hint="fix the quoting, e.g. EDITOR=nano"
                ) from None
    for name in ("nano", "vi"):
        found = shutil.which(name)
        if found:
            return [found]
    raise UsageError("no editor found", hint="set EDITOR, e.g. EDITOR=nano qia config edit")


def _template() -> str:
    import tomli_w

    from qia_cli.config import Settings

    lines = [
        "# qia settings (TOML). Precedence: defaults < this file < QIA_* environment < flags.",
        "# Uncomment what you want to change; `qia config show` lists the effective values.",
        "",
    ]
    for key, info in Settings.model_fields.items():
        default = info.default
        value = tomli_w.dumps({key: default}).strip() if default is not None else f"{key} ="
        lines.append(f"# {value}    # {info.description}")
    return "\n".join(lines) + "\n"


def validate_file(file: Path) -> list[str]:
    """Every problem in the config file, one line each (empty when it is fine)."""
    from qia_cli.config import KEYS, coerce, read_file

    try:
        data = read_file(file)
    except QiaError as exc:
        return [exc.message]
    problems = []
    for key, value in data.items():
        if key not in KEYS:
            problems.append(f"unknown setting '{key}'")
            continue
        try:
            check_meaning(key, coerce(key, value))
        except QiaError as exc:
            problems.append(exc.message)
    return problems


@config_app.command("edit")
def edit() -> None:
    """Open the config file in $VISUAL or $EDITOR (else nano or vi), then check it."""
    from qia_cli.fsutil import atomic_write_bytes

    file = _config_path()
    command = _editor()
    if not file.exists():
        atomic_write_bytes(file, _template().encode("utf-8"), mode=0o600)
    try:
        rc = subprocess.call([*command, str(file)])
    except OSError as exc:
        raise UsageError(
            f"cannot run the editor {command[0]}: {exc.strerror or exc}",
            hint="set EDITOR to an editor that is installed",
        ) from None
    if rc != 0:
        console.warn(f"the editor exited with status {rc}")
    problems = validate_file(file)
    if problems:
        for problem in problems:
            console.error(problem)
        raise UsageError(
            f"{file} has {len(problems)} problem(s); qia will refuse to start until they are fixed",
            hint="run `qia config edit` again, or `qia config unset KEY`",
        )
    console.info(f"{console.safe(file)} is valid")
