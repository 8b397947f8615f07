"""Pick the planner backend from settings: 'bundled', a GGUF path, or openai:BASE_URL[#MODEL]."""

from __future__ import annotations

from qia_cli.config import Settings
from qia_cli.llm.base import LLM


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
    return LlamaLLM(
        spec,
        n_ctx=settings.llm_ctx,
        n_threads=settings.llm_threads,
        n_gpu_layers=settings.llm_gpu_layers,
        repack=settings.llm_repack,
        verbose=verbose,
    )
