"""llama-cpp-python backend: any local GGUF, grammar-constrained output, loaded once per process."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from qia_cli.agent.types import ModelInfo
from qia_cli.errors import ModelError
from qia_cli.llm.base import Completion
from qia_cli.llm.gguf_meta import GGUFError
from qia_cli.llm.profile import read_profile

GGUF_MAGIC = b"GGUF"
# One line of answer, then a newline (which is also a stop string, so it never reaches the text).
LINE_GRAMMAR = 'root ::= [^\\n]+ "\\n"'

_models: dict[tuple, Any] = {}
_loads = 0
_lock = threading.RLock()


def check_gguf(path: Path) -> Path:
    """A clear error for a missing file, a folder, or a file that is not GGUF."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"model file not found: {path}", hint="pass --llm PATH to a .gguf file, or unset QIA_LLM_MODEL")
    if not path.is_file():
        raise ModelError(f"model path is not a file: {path}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"model file cannot be read: {path}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelError(f"not a GGUF model file: {path}", hint="qia plans with llama.cpp models in GGUF format")
    return path


def load_count() -> int:
    return _loads


@contextlib.contextmanager
def _quiet(enabled: bool):
    """Silence llama.cpp's C-level stderr chatter unless verbose."""
    if not enabled:
        yield
        return
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)
        os.close(devnull)


class LlamaLLM:
    """A GGUF model through llama-cpp-python. The weights load lazily, once per process."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        verbose: bool = False,
        name: str | None = None,
    ) -> None:
        self.path = check_gguf(Path(path))
        try:  # the header only: size, chat template, trained context (qia_cli/llm/profile.py)
            self.profile = read_profile(self.path)
        except GGUFError as exc:
            raise ModelError(f"cannot read the GGUF header of {self.path}: {exc}") from None
        self.n_ctx = n_ctx or self.profile.auto_ctx or 2048
        self.n_threads = n_threads or os.cpu_count() or 2
        self.n_gpu_layers = n_gpu_layers
        self.verbose = verbose
        self.info = ModelInfo(name=name or self.path.name, backend="llama.cpp", path=str(self.path), profile=self.profile)
        self._key = (str(self.path), self.n_ctx, n_gpu_layers)
        self._grammars: dict[str, Any] = {}

    @property
    def model(self):
        global _loads
        with _lock:
            if self._key not in _models:
                with _quiet(not self.verbose):
                    try:
                        from llama_cpp import Llama, LlamaRAMCache
                    except ImportError as exc:  # pragma: no cover - depends on the install
                        raise ModelError(f"llama-cpp-python is not installed or broken: {exc}") from None
                    try:
                        llm = Llama(
                            model_path=str(self.path),
                            n_ctx=self.n_ctx,
                            n_threads=self.n_threads,
                            n_gpu_layers=self.n_gpu_layers,
                            verbose=self.verbose,
                        )
                    except (ValueError, RuntimeError) as exc:
                        raise ModelError(f"llama.cpp could not load {self.path}: {exc}") from None
                    # Reuse the KV state of shared prompt prefixes (the fixed few-shot headers) across calls.
                    llm.set_cache(LlamaRAMCache(capacity_bytes=256 << 20))
                _models[self._key] = llm
                _loads += 1
            return _models[self._key]

    def _grammar(self, key: str, build):
        if key not in self._grammars:
            from llama_cpp import LlamaGrammar

            with _quiet(not self.verbose):
                self._grammars[key] = build(LlamaGrammar)
        return self._grammars[key]

    def complete(self, prompt: str, *, max_tokens: int = 24, stop: list[str] | None = None) -> Completion:
        grammar = self._grammar("line", lambda G: G.from_string(LINE_GRAMMAR, verbose=False))
        with _lock, _quiet(not self.verbose):
            out = self.model.create_completion(
                prompt,
                max_tokens=max_tokens,
                temperature=0.0,
                top_k=1,
                stop=stop or ["\n"],
                grammar=grammar,
            )
        choice = out["choices"][0]
        return Completion(
            text=choice["text"].strip(),
            finish_reason=choice.get("finish_reason"),
            tokens=out.get("usage", {}).get("completion_tokens", 0),
        )

    def json(self, messages: list[dict[str, str]], schema: dict[str, Any], *, max_tokens: int = 256) -> Completion:
        key = json.dumps(schema, sort_keys=True)
        grammar = self._grammar(key, lambda G: G.from_json_schema(key, verbose=False))
        with _lock, _quiet(not self.verbose):
            if self.profile.kind == "base":  # no chat template to follow: one plain completion prompt
                prompt = "\n\n".join(m["content"] for m in messages) + "\n"
                out = self.model.create_completion(prompt, temperature=0.0, top_k=1, max_tokens=max_tokens,
                                                   grammar=grammar)
            else:
                out = self.model.create_chat_completion(
                    messages=messages,
                    temperature=0.0,
                    top_k=1,
                    max_tokens=max_tokens,
                    grammar=grammar,
                )
        choice = out["choices"][0]
        text = choice["text"] if "text" in choice else choice["message"].get("content")
        return Completion(
            text=(text or "").strip(),
            finish_reason=choice.get("finish_reason"),
            tokens=out.get("usage", {}).get("completion_tokens", 0),
        )

    def close(self) -> None:
        """Free the weights (and VRAM) so the diffusion pipeline does not compete with them."""
        with _lock:
            llm = _models.pop(self._key, None)
        if llm is not None:
            with contextlib.suppress(Exception):
                llm.close()
