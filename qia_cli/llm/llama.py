"""llama-cpp-python backend: any local GGUF, grammar-constrained output, loaded once and kept by its LlamaLLM."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from qia_cli import cpu
from qia_cli.errors import ModelError
from qia_cli.llm.base import Completion, cleaned
from qia_cli.llm.gguf_meta import GGUFError
from qia_cli.llm.profile import read_profile
from qia_cli.llm.types import ModelInfo

GGUF_MAGIC = b"GGUF"

# One llama.cpp call at a time in this process, whichever model makes it (and one load or free).
_lock = threading.RLock()


def check_gguf(path: Path) -> Path:
    """A clear error for a missing file, a folder, or a file that is not GGUF."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(
            f"model file not found: {path}", hint="pass --llm PATH to a .gguf file, or unset QIA_LLM_MODEL"
        )
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


def repack_enabled(setting: str = "auto", cpuinfo: Path = cpu.CPUINFO) -> bool:
    """Whether llama.cpp may repack weights into its extra CPU buffer types (AMX and friends).

    llama.cpp's AMX matmul segfaults in every decode on Intel AMX CPUs (ggml-org/llama.cpp#20824), so
    `auto` turns repacking off there; elsewhere it stays on (llama.cpp's own default)."""
    if setting == "on":
        return True
    if setting == "off":
        return False
    return not cpu.has_amx(cpuinfo)


def prepare_process(*, repack: bool) -> None:
    """Make every llama.cpp model this process loads from now on safe and polite.

    - Repacking off: `use_extra_bufts = False` in the model parameters. llama-cpp-python builds those from
      `llama_model_default_params()` inside `Llama.__init__` and takes no keyword for this field, so the
      default-params function is wrapped (once; a version without the field is left alone).
    - Worker threads that sleep when idle: OpenMP's passive wait policy, unless the user set one. llama.cpp's
      threads otherwise spin, and fight any busy neighbour for the cores. It must be set before
      llama_cpp loads libgomp, which is why this runs before the import.
    """
    ours = "OMP_WAIT_POLICY" not in os.environ
    if ours:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        import llama_cpp.llama_cpp as lib  # loads libgomp, which reads the policy now
    finally:
        if ours:  # child processes keep the default; a torch that shares this libgomp waits passively too (no measurable cost)
            os.environ.pop("OMP_WAIT_POLICY", None)

    original = getattr(lib.llama_model_default_params, "_qia_original", lib.llama_model_default_params)
    if repack:
        lib.llama_model_default_params = original
        return
    fields = {name for name, *_ in getattr(lib.llama_model_params, "_fields_", [])}
    if "use_extra_bufts" not in fields:  # older llama-cpp-python: no AMX repacking to turn off
        return

    def default_params():
        params = original()
        params.use_extra_bufts = False
        return params

    default_params._qia_original = original  # type: ignore[attr-defined]
    lib.llama_model_default_params = default_params


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
    """A GGUF model through llama-cpp-python. The weights load lazily on first use and stay with this object
    until `close()` (a later call loads them again)."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        repack: str = "auto",
        verbose: bool = False,
        name: str | None = None,
    ) -> None:
        self.path = check_gguf(Path(path))
        try:  # the header only: size, chat template, trained context (qia_cli/llm/profile.py)
            self.profile = read_profile(self.path)
        except GGUFError as exc:
            raise ModelError(f"cannot read the GGUF header of {self.path}: {exc}") from None
        self.n_ctx = n_ctx or self.profile.auto_ctx or 2048
        self.n_threads = n_threads or cpu.default_llm_threads()
        self.n_gpu_layers = n_gpu_layers
        self.repack = repack_enabled(repack)
        self.verbose = verbose
        self.info = ModelInfo(
            name=name or self.path.name, backend="llama.cpp", path=str(self.path), profile=self.profile
        )
        self._grammars: dict[str, Any] = {}
        self._llama: Any = None  # the loaded llama_cpp.Llama
        self.loads = 0  # how many times the weights were loaded (once, unless closed in between)

    @property
    def model(self):
        with _lock:
            if self._llama is None:
                with _quiet(not self.verbose):
                    try:
                        prepare_process(repack=self.repack)
                        from llama_cpp import Llama, LlamaRAMCache
                    except ImportError as exc:  # pragma: no cover - depends on the install
                        raise ModelError(f"llama-cpp-python is not installed or broken: {exc}") from None
                    try:
                        llm = Llama(
                            model_path=str(self.path),
                            n_ctx=self.n_ctx,
                            n_threads=self.n_threads,
                            n_threads_batch=self.n_threads,  # its own default is every core
                            n_gpu_layers=self.n_gpu_layers,
                            verbose=self.verbose,
                        )
                    except (ValueError, RuntimeError) as exc:
                        raise ModelError(f"llama.cpp could not load {self.path}: {exc}") from None
                    # Reuse the KV state of shared prompt prefixes (the fixed few-shot headers) across calls.
                    llm.set_cache(LlamaRAMCache(capacity_bytes=256 << 20))
                self._llama = llm
                self.loads += 1
            return self._llama

    def _grammar(self, key: str, build):
        if key not in self._grammars:
            from llama_cpp import LlamaGrammar

            with _quiet(not self.verbose):
                self._grammars[key] = build(LlamaGrammar)
        return self._grammars[key]

    def complete(self, prompt: str, *, max_tokens: int = 24, stop: list[str] | None = None) -> Completion:
        """Greedy decoding, token by token, so that the model's confidence comes with the answer.

        llama-cpp-python returns log-probabilities only for models loaded with `logits_all`, which keeps the
        logits of every prompt token (hundreds of MB for a large vocabulary). Here only the last token's
        logits are read after each step. The KV cache of the longest shared prefix (the few-shot header) is
        reused across calls."""
        stops = stop or ["\n"]
        with _lock, _quiet(not self.verbose):
            llm = self.model
            text, logprobs, finish = _greedy(llm, prompt, max_tokens, stops)
        mean = sum(logprobs) / len(logprobs) if logprobs else None
        return cleaned(
            Completion(
                text=text.strip(),
                finish_reason=finish,
                tokens=len(logprobs),
                logprob=mean,
                min_logprob=min(logprobs) if logprobs else None,
            )
        )

    def json(self, messages: list[dict[str, str]], schema: dict[str, Any], *, max_tokens: int = 256) -> Completion:
        key = json.dumps(schema, sort_keys=True)
        grammar = self._grammar(key, lambda G: G.from_json_schema(key, verbose=False))
        with _lock, _quiet(not self.verbose):
            if self.profile.kind == "base":  # no chat template to follow: one plain completion prompt
                prompt = "\n\n".join(m["content"] for m in messages) + "\n"
                out = self.model.create_completion(
                    prompt, temperature=0.0, top_k=1, max_tokens=max_tokens, grammar=grammar
                )
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
        return cleaned(
            Completion(
                text=(text or "").strip(),
                finish_reason=choice.get("finish_reason"),
                tokens=out.get("usage", {}).get("completion_tokens", 0),
            ),
            document=True,
        )

    def close(self) -> None:
        """Free the weights (and VRAM) so the diffusion pipeline does not compete with them."""
        with _lock:
            llm, self._llama = self._llama, None
        if llm is not None:
            with contextlib.suppress(Exception):
                llm.close()


def _greedy(llm, prompt: str, max_tokens: int, stops: list[str]) -> tuple[str, list[float], str]:
    """The greedy continuation of `prompt` up to a stop string, with each kept token's log-probability."""
    import llama_cpp
    import numpy as np

    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
    if len(tokens) + max_tokens > llm.n_ctx():
        raise ModelError(f"the question is too long for the model's context ({len(tokens)} tokens)")
    # Keep the cached state of the longest common prefix; always re-evaluate the last prompt token.
    cached = list(llm.input_ids)
    same = 0
    for a, b in zip(cached, tokens[:-1]):
        if a != b:
            break
        same += 1
    llm.n_tokens = same
    llm.eval(tokens[same:])
    n_vocab = llm.n_vocab()
    eog = getattr(llama_cpp, "llama_vocab_is_eog", None) or getattr(llama_cpp, "llama_token_is_eog", None)
    vocab = llama_cpp.llama_model_get_vocab(llm.model) if hasattr(llama_cpp, "llama_model_get_vocab") else None
    out: list[int] = []
    logprobs: list[float] = []
    text = b""
    finish = "length"
    for _ in range(max_tokens):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
        token = int(logits.argmax())
        top = float(logits[token])
        logprob = top - (float(np.log(np.exp(logits - top).sum())) + top)
        if token == llm.token_eos() or (eog is not None and vocab is not None and eog(vocab, token)):
            finish = "stop"
            break
        piece = llm.detokenize(out + [token])
        decoded = piece.decode("utf-8", errors="ignore")
        hit = min((decoded.find(s) for s in stops if s in decoded), default=-1)
        if hit >= 0:
            text = decoded[:hit].encode("utf-8")
            finish = "stop"
            if text.strip() and len(text) > len(llm.detokenize(out)):  # the token carried answer text too
                logprobs.append(logprob)
            break
        out.append(token)
        logprobs.append(logprob)
        text = piece
        llm.eval([token])
    return text.decode("utf-8", errors="ignore"), logprobs, finish
