"""`python -m qia_cli.llm.serve --model FILE.gguf ...`: llama-cpp-python's OpenAI-compatible server, started
with the same llama.cpp guards as qia's own planner (no weight repacking on Intel AMX CPUs, where it crashes
in every decode; worker threads that sleep when idle). Every argument goes to `llama_cpp.server` unchanged.
QIA_LLM_REPACK=auto|on|off overrides the repack choice.
"""

from __future__ import annotations

import os
import runpy

from qia_cli.llm.llama import prepare_process, repack_enabled


def main() -> None:
    prepare_process(repack=repack_enabled(os.environ.get("QIA_LLM_REPACK", "auto")))
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
