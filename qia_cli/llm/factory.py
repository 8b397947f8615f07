"""Pick the planner backend from settings: 'bundled', a GGUF path, a pulled model (a catalog name or
ORG/REPO/FILE.gguf, found in the Hugging Face cache offline), or openai:BASE_URL[#MODEL]."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qia_cli.config import Settings
from qia_cli.llm.base import LLM
from qia_cli.llm.types import ModelInfo


def make_llm(settings: Settings, *, verbose: bool = False) -> LLM:
    spec = (settings.llm or "bundled").strip()
    if spec.startswith("openai:") or (spec == "openai" and settings.llm_url):
        from qia_cli.llm.openai import OpenAILLM

        return OpenAILLM.from_spec(spec, settings)
    if spec == "fake":  # for demos and smoke tests: no model at all
        from qia_cli.llm.fake import FakeLLM

        return FakeLLM()
    from qia_cli.llm.llama import LlamaLLM

    if spec == "bundled":
        from qia_cli.llm.bundled import NAME, require_bundled

        return LlamaLLM(
            require_bundled(),
            n_ctx=settings.llm_ctx,
            n_threads=settings.llm_threads,
            n_gpu_layers=settings.llm_gpu_layers,
            repack=settings.llm_repack,
            verbose=verbose,
            name=NAME,
        )
    from qia_cli.models.spec import resolve_llm

    pulled = resolve_llm(spec)  # (cached file, name) for a pulled model; None for a local path
    return LlamaLLM(
        pulled[0] if pulled else spec,
        n_ctx=settings.llm_ctx,
        n_threads=settings.llm_threads,
        n_gpu_layers=settings.llm_gpu_layers,
        repack=settings.llm_repack,
        verbose=verbose,
        name=pulled[1] if pulled else None,
    )


def make_knowledge_llm(settings: Settings, planner: LLM, *, verbose: bool = False) -> LLM:
    """The model that answers knowledge questions ('What is the national flower of Japan?')."""
    spec = (settings.knowledge_llm or "auto").strip()
    if spec == "planner":
        return planner
    from qia_cli.llm.llama import LlamaLLM

    if spec == "auto":
        if (settings.llm or "bundled").strip() != "bundled":
            return planner  # a model the user chose knows more than the small one
        from qia_cli.llm.bundled import KNOWLEDGE_NAME, knowledge_path

        path = knowledge_path()
        if path is None:
            return planner
        return LlamaLLM(
            path,
            n_ctx=1024,
            n_threads=settings.llm_threads,
            repack=settings.llm_repack,
            verbose=verbose,
            name=KNOWLEDGE_NAME,
        )
    from qia_cli.models.spec import resolve_llm

    pulled = resolve_llm(spec)  # a pulled name works here too
    return LlamaLLM(
        pulled[0] if pulled else spec,
        n_ctx=1024,
        n_threads=settings.llm_threads,
        repack=settings.llm_repack,
        verbose=verbose,
        name=pulled[1] if pulled else None,
    )


def knowledge_info(settings: Settings, planner: Callable[[], ModelInfo]) -> ModelInfo:
    """The model make_knowledge_llm would build for `settings`, named without building, loading or unpacking
    it; `planner()` names the planner, for the settings where the planner answers knowledge questions."""
    spec = (settings.knowledge_llm or "auto").strip()
    if spec == "planner" or (spec == "auto" and (settings.llm or "bundled").strip() != "bundled"):
        return planner()
    if spec == "auto":
        from qia_cli.llm.bundled import KNOWLEDGE_NAME, knowledge_installed

        return ModelInfo(name=KNOWLEDGE_NAME, backend="llama.cpp") if knowledge_installed() else planner()
    from qia_cli.errors import QiaError
    from qia_cli.models.spec import resolve_llm

    try:
        pulled = resolve_llm(spec)
    except QiaError:  # not pulled yet: building it fails, and says so; here it is only named
        pulled = None
    if pulled is not None:
        return ModelInfo(name=pulled[1], backend="llama.cpp", path=str(pulled[0]))
    path = Path(spec).expanduser()
    return ModelInfo(name=path.name or spec, backend="llama.cpp", path=str(path))
