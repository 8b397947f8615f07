"""The planner and knowledge LLMs the settings name (read by qia_cli/llm/registry.py): 'bundled', a GGUF path, a
pulled model (a catalog name or ORG/REPO/FILE.gguf, found in the Hugging Face cache offline), or
openai:BASE_URL[#MODEL]."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qia_cli.config import Settings
from qia_cli.llm import registry
from qia_cli.llm.base import LLM
from qia_cli.llm.types import ModelInfo


def make_llm(settings: Settings, *, verbose: bool = False) -> LLM:
    return registry.build(registry.parse(settings.llm), settings, verbose=verbose)


def _planner_answers(settings: Settings, spec: str) -> bool:
    """knowledge_llm `spec` means the planner itself: 'planner', or 'auto' beside a model the user chose (it
    knows more than the small one)."""
    return spec == "planner" or (spec == "auto" and registry.parse(settings.llm).kind != "bundled")


def make_knowledge_llm(settings: Settings, planner: LLM, *, verbose: bool = False) -> LLM:
    """The model that answers knowledge questions ('What is the national flower of Japan?')."""
    spec = (settings.knowledge_llm or "auto").strip()
    if _planner_answers(settings, spec):
        return planner
    if spec == "auto":
        from qia_cli.llm.bundled import KNOWLEDGE_NAME, knowledge_path

        path = knowledge_path()
        if path is None:
            return planner
        return registry.llama(path, settings, name=KNOWLEDGE_NAME, verbose=verbose, knowledge=True)
    return registry.build(registry.gguf(spec), settings, verbose=verbose, knowledge=True)  # a pulled name works too


def knowledge_info(settings: Settings, planner: Callable[[], ModelInfo]) -> ModelInfo:
    """The model make_knowledge_llm would build for `settings`, named without building, loading or unpacking
    it; `planner()` names the planner, for the settings where the planner answers knowledge questions."""
    spec = (settings.knowledge_llm or "auto").strip()
    if _planner_answers(settings, spec):
        return planner()
    if spec == "auto":
        from qia_cli.llm.bundled import KNOWLEDGE_NAME, knowledge_installed

        return ModelInfo(name=KNOWLEDGE_NAME, backend="llama.cpp") if knowledge_installed() else planner()
    from qia_cli.errors import QiaError

    try:
        pulled = registry.resolve_pulled(spec)
    except QiaError:  # not pulled yet: building it fails, and says so; here it is only named
        pulled = None
    if pulled is not None:
        return ModelInfo(name=pulled[1], backend="llama.cpp", path=str(pulled[0]))
    path = Path(spec).expanduser()
    return ModelInfo(name=path.name or spec, backend="llama.cpp", path=str(path))
