"""Per-user folders. platformdirs by default; QIA_HOME overrides every one of them, and a `root` passed in
(a benchmark's empty home per item) overrides both, without touching the environment."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

APP = "qia"


def home() -> Path | None:
    value = os.environ.get("QIA_HOME", "").strip()
    return Path(value).expanduser() if value else None


def _dir(kind: str, root: Path | None = None) -> Path:
    root = root if root is not None else home()
    if root is not None:
        return root / kind
    import platformdirs

    getter = {
        "config": platformdirs.user_config_dir,
        "data": platformdirs.user_data_dir,
        "cache": platformdirs.user_cache_dir,
    }[kind]
    return Path(getter(APP, appauthor=False))


def config_dir() -> Path:
    return _dir("config")


def data_dir(root: Path | None = None) -> Path:
    return _dir("data", root)


def cache_dir() -> Path:
    return _dir("cache")


def config_file() -> Path:
    return config_dir() / "config.toml"


def memory_file(root: Path | None = None) -> Path:
    return data_dir(root) / "memory.json"


def calibration_file(root: Path | None = None) -> Path:
    """Per-model thresholds measured by `qia bench calibrate`."""
    return data_dir(root) / "calibration.json"


def history_file() -> Path:
    return data_dir() / "chat_history"


def calllog_file() -> Path:
    """The SQLite log of every model call (`qia logs`)."""
    return data_dir() / "calls.db"


def search_cache_dir() -> Path:
    return cache_dir() / "search"


def models_dir() -> Path:
    """Models qia unpacks itself (the knowledge extra's Gemma GGUF); pulled models stay in the Hugging Face cache."""
    return cache_dir() / "models"


def default_outdir() -> Path:
    """Images go to the current folder's qia-out/ unless configured otherwise."""
    return Path.cwd() / "qia-out"


def all_paths() -> dict[str, str]:
    return {
        "config_file": str(config_file()),
        "data_dir": str(data_dir()),
        "cache_dir": str(cache_dir()),
        "memory_file": str(memory_file()),
        "history_file": str(history_file()),
        "call_log": str(calllog_file()),
        "search_cache": str(search_cache_dir()),
        "models_cache": str(models_dir()),
    }


def _user_home_forms() -> list[str]:
    """The home folder as written in text: as HOME says, resolved, and JSON-escaped (Windows)."""
    try:
        home_dir = Path.home()
    except RuntimeError:  # no HOME and no passwd entry
        return []
    forms: set[str] = set()
    for folder in {str(home_dir), os.path.realpath(home_dir)}:
        if len(Path(folder).parts) >= 2:  # never "/": that would rewrite every path
            forms |= {folder.rstrip("/\\"), json.dumps(folder.rstrip("/\\"))[1:-1]}
    return sorted(forms, key=len, reverse=True)


def home_relative(text: str) -> str:
    """`text` with every path under the home folder written as ~/... (for what leaves the machine: PNG
    metadata and sidecars), so an image never carries the user name. Hub ids and relative paths stay."""
    for form in _user_home_forms():
        if form in text:
            text = re.sub(rf"(?<![\w.~/\\-]){re.escape(form)}(?![\w.-])", "~", text)
    return text
