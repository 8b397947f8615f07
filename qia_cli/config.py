"""Settings: defaults < config file (TOML) < environment (QIA_*) < flags.

`load_settings()` returns the effective settings together with where each value came from,
so `qia config show` can tell a user why a value is what it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qia_cli import paths
from qia_cli.choices import Device, Dtype
from qia_cli.errors import QiaError, UsageError

Source = Literal["default", "file", "env", "flag"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    llm: str = Field(
        "bundled",
        description="Planner LLM: 'bundled', a GGUF path, a pulled model (catalog name or "
        "ORG/REPO/FILE.gguf), or openai:BASE_URL[#MODEL]",
    )
    llm_ctx: int | None = Field(
        None,
        ge=256,
        le=131072,
        description="Context window of a local GGUF (default: "
        "from the model: its trained context, at most 2048 below 1.2B parameters, 4096 above)",
    )
    llm_threads: int | None = Field(
        None, ge=1, le=512, description="CPU threads for llama.cpp (default: physical cores less one, at most 4)"
    )
    llm_repack: Literal["auto", "on", "off"] = Field(
        "auto", description="llama.cpp weight repacking (AMX etc.): auto = off on Intel AMX CPUs, where it crashes"
    )
    llm_gpu_layers: int = Field(0, ge=-1, description="Layers offloaded to the GPU by llama.cpp (-1 = all)")
    llm_url: str | None = Field(None, description="Base URL of an OpenAI-compatible server")
    llm_api_key: str | None = Field(None, description="API key for llm_url (never printed)")
    llm_timeout: float = Field(60.0, gt=0, le=3600, description="Seconds per request to an LLM server")
    knowledge_llm: str = Field(
        "auto",
        description="Model for knowledge questions: auto (Gemma-3-270m from the [knowledge] extra when the planner is "
        "the bundled model, else the planner), planner, or a GGUF path",
    )
    llm_gaps: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Ask the LLM for gaps the rules miss: auto = on for servers and for instruct GGUFs "
        "from 1.2B parameters (read from the file), off for smaller and base models",
    )
    image_model: str = Field("stabilityai/sd-turbo", description="Diffusers model: a Hugging Face id or a local folder")
    device: Device = Field("auto", description="Where images render")
    dtype: Dtype = Field(
        "auto", description="Render precision: auto = fp16 on a GPU, bf16 on a CPU with AMX or AVX-512 BF16, else fp32"
    )
    vae: str = Field(
        "full", description="Decoder: full (the model's VAE), tiny (faster, softer detail), or a VAE folder"
    )
    steps: int | None = Field(None, ge=1, le=500, description="Denoising steps (default: from the model family)")
    guidance: float | None = Field(None, ge=0, le=50, description="Guidance scale (default: from the model family)")
    width: int | None = Field(None, ge=8, le=4096, description="Image width (default: from the model family)")
    height: int | None = Field(None, ge=8, le=4096, description="Image height (default: from the model family)")
    outdir: str | None = Field(None, description="Folder for images (default: ./qia-out)")
    search: str = Field("ddgs", description="Search backend: ddgs, off, or fixture:PATH")
    search_timeout: float = Field(8.0, gt=0, le=120, description="Hard time budget for search per plan, seconds")
    search_ttl: float = Field(86400.0, ge=0, description="Seconds a cached search result stays fresh")
    ask: bool = Field(True, description="Ask follow-up questions on a terminal")
    remember: Literal["ask", "always", "never"] = Field(
        "ask", description="Save answers about lasting facts to memory: ask on a terminal, always, never"
    )
    rounds: int | None = Field(None, ge=0, le=10, description="Feedback rounds (default: 1 on a GPU, 0 on the CPU)")
    scorer: str = Field("openai/clip-vit-base-patch32", description="CLIP model that scores images for feedback")
    threshold: float = Field(0.22, ge=0, le=1, description="Item score below which feedback revises")
    logs: bool = Field(True, description="Record every model call in the call log (qia logs; off: qia logs off)")
    logs_max_mb: int = Field(
        100, ge=1, le=100000, description="The call log's size cap in MB: the oldest plans go when it is reached"
    )
    preview: Literal["off", "auto", "kitty", "iterm2", "sixel"] = Field(
        "off",
        description="Show each saved image in the terminal (qia generate, qia chat): off, auto (detect the "
        "terminal), or a protocol: kitty, iterm2, sixel",
    )
    ray: str | None = Field(
        None,
        pattern=r"^(local|auto|off|ray://\S+)$",
        description="Ray cluster for qia batch: local, auto, ray://HOST:PORT, or off",
    )


KEYS = tuple(Settings.model_fields)
SECRET_KEYS = {"llm_api_key"}

# Environment variables: QIA_<KEY>, plus the documented aliases.
ENV_ALIASES = {"QIA_LLM_MODEL": "llm"}


@dataclass
class Loaded:
    settings: Settings
    sources: dict[str, Source] = field(default_factory=dict)

    def describe(self) -> list[tuple[str, Any, Source]]:
        rows = []
        for key in KEYS:
            value = getattr(self.settings, key)
            if key in SECRET_KEYS and value:
                value = "***"
            rows.append((key, value, self.sources.get(key, "default")))
        return rows


def read_file(path: Path | None = None) -> dict[str, Any]:
    path = path or paths.config_file()
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"config file {path} cannot be read: {exc}", hint="fix it, or move it aside") from exc
    except RecursionError:
        raise UsageError(
            f"config file {path} cannot be read: nested too deeply", hint="fix it, or move it aside"
        ) from None


def _env_values() -> dict[str, str]:
    found: dict[str, str] = {}
    for env, key in ENV_ALIASES.items():
        if os.environ.get(env):
            found[key] = os.environ[env]
    for key in KEYS:
        env = f"QIA_{key.upper()}"
        if os.environ.get(env):
            found[key] = os.environ[env]
    return found


def coerce(key: str, value: Any) -> Any:
    """Validate one value for one key; raises UsageError naming the key."""
    if key not in KEYS:
        raise UsageError(f"unknown setting '{key}'", hint="known settings: " + ", ".join(KEYS))
    if isinstance(value, str):
        field_info = Settings.model_fields[key]
        text = value.strip()
        if text.lower() in {"", "none", "null"} and "None" in str(field_info.annotation):
            return None
        if "bool" in str(field_info.annotation):
            low = text.lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
    try:
        return Settings.model_validate({key: value}).model_dump()[key]
    except ValidationError as exc:
        msg = exc.errors()[0].get("msg", "invalid value")
        raise UsageError(f"invalid value for '{key}': {value!r} ({msg})") from None


def load_settings(flags: dict[str, Any] | None = None, config_path: Path | None = None) -> Loaded:
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    file_values = read_file(config_path)
    for key, value in file_values.items():
        if key not in KEYS:
            raise UsageError(
                f"unknown setting '{key}' in {config_path or paths.config_file()}",
                hint="run 'qia config unset " + key + "' or edit the file",
            )
        values[key] = coerce(key, value)
        sources[key] = "file"
    for key, value in _env_values().items():
        values[key] = coerce(key, value)
        sources[key] = "env"
    for key, value in (flags or {}).items():
        if value is None:
            continue
        values[key] = coerce(key, value)
        sources[key] = "flag"
    return Loaded(Settings(**values), sources)


def write_file(data: dict[str, Any], path: Path | None = None) -> Path:
    """Write the TOML atomically: temp file, fsync, rename."""
    import tomli_w

    from qia_cli.fsutil import atomic_write_bytes

    path = path or paths.config_file()
    clean = {k: v for k, v in data.items() if v is not None}
    try:
        atomic_write_bytes(path, tomli_w.dumps(clean).encode("utf-8"), mode=0o600)
    except OSError as exc:
        raise QiaError(
            f"cannot write the config file {path}: {exc.strerror or exc}",
            hint="check that QIA_HOME (or the config folder) is a folder you can write to",
        ) from None
    return path


def env_var(key: str) -> str | None:
    """The environment variable that currently overrides `key`, if any (for warnings)."""
    for env, alias in ENV_ALIASES.items():
        if alias == key and os.environ.get(env):
            return env
    env = f"QIA_{key.upper()}"
    return env if os.environ.get(env) else None


def set_file_value(key: str, value: Any, path: Path | None = None) -> Any:
    """Validate one value and write it to the config file (atomically); returns the stored value."""
    coerced = coerce(key, value)
    data = read_file(path)
    if coerced is None:
        data.pop(key, None)
    else:
        data[key] = coerced
    write_file(data, path)
    return coerced


def unset_file_value(key: str, path: Path | None = None) -> bool:
    """Remove `key` from the config file; False when it was not there. Unknown keys found in the
    file can be removed too (that is how a typo in the file is fixed)."""
    data = read_file(path)
    if key not in data:
        if key not in KEYS:
            raise UsageError(f"unknown setting '{key}'", hint="known settings: " + ", ".join(KEYS))
        return False
    del data[key]
    write_file(data, path)
    return True
