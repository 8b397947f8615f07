"""The planner backends, and the one parser of an `--llm` value (`llm`, `knowledge_llm` in the config).

A value names one of five kinds, each served by a backend that declares what it can do (`Capabilities`):

    bundled             the SmolLM2 GGUF shipped with qia         llama.cpp, in this process
    PATH.gguf           a local GGUF file (a file always wins)     llama.cpp, in this process
    NAME                a pulled model: a catalog name or          llama.cpp, in this process
                        ORG/REPO/FILE.gguf in the Hugging Face cache
    openai:URL[#MODEL]  an OpenAI-compatible server (`openai`      HTTP, in another process
                        alone: the URL from `llm_url`)
    fake                a scripted model for demos and tests       nothing at all

Callers ask the spec (or a built LLM) what it can do, never its name: whether it holds GPU memory that must be
freed before diffusion, whether a batch may plan lines in parallel on it, and whether `llm_gaps=auto` asks it
for gaps. Parsing touches no file but the one a path names, and never the network; building loads nothing
(a GGUF's weights load on first use).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from qia_cli.errors import ModelError, UsageError
from qia_cli.llm.base import FAKE, LLAMA, NONE, SERVER, Capabilities

if TYPE_CHECKING:  # pragma: no cover
    from qia_cli.config import Settings
    from qia_cli.llm.base import LLM

Kind = Literal["bundled", "gguf", "pulled", "server", "fake"]
SERVER_PREFIX = "openai:"
SERVER_NAME = "openai"

# What each kind can do. The bundled SmolLM2-135M never gets llm_gaps=auto (measured: it proposes no gap that
# survives validation, at 0.3-3 s a call); another GGUF as its profile says (instruct, 1.2B parameters up).
KINDS: dict[str, Capabilities] = {
    "bundled": dataclasses.replace(LLAMA, llm_gaps=False),
    "gguf": LLAMA,
    "pulled": LLAMA,
    "server": SERVER,
    "fake": FAKE,
}


@dataclass(frozen=True)
class LLMSpec:
    """An `--llm` value, read: `text` as typed (stripped), and its `kind`."""

    text: str
    kind: Kind

    @property
    def capabilities(self) -> Capabilities:
        return KINDS[self.kind]

    @property
    def local_gguf(self) -> bool:
        """A GGUF that llama.cpp loads in this process (bundled, a file or a pulled model)."""
        return self.kind in ("bundled", "gguf", "pulled")

    def server_address(self, llm_url: str | None = None) -> tuple[str, str | None]:
        """(URL, model or None) of a server spec: `openai:URL[#MODEL]`, or `openai` with them from `llm_url`."""
        rest = self.text[len(SERVER_PREFIX) :] if self.text.startswith(SERVER_PREFIX) else ""
        rest = rest.strip() or (llm_url or "").strip()
        if not rest:
            raise UsageError(
                "no LLM server URL given",
                hint="--llm openai:http://127.0.0.1:8080/v1, or set QIA_LLM_URL (or 'qia config set llm_url ...')",
            )
        url, _, model = rest.partition("#")
        return url, model.strip() or None


def parse(text: str | None) -> LLMSpec:
    """The spec an `--llm` value names (empty: bundled). Never raises: a malformed model name is a `pulled`
    spec whose resolution (`resolve_pulled`) says what is wrong with it."""
    text = (text or "bundled").strip() or "bundled"
    if text in ("bundled", "fake"):
        return LLMSpec(text, text)  # type: ignore[arg-type]  # the two literal kinds
    if text.startswith(SERVER_PREFIX) or text == SERVER_NAME:
        return LLMSpec(text, "server")
    return LLMSpec(text, "pulled" if _pulled_name(text) else "gguf")


def gguf(text: str) -> LLMSpec:
    """`text` as a GGUF for llama.cpp (the knowledge model): a pulled name, else a path (whatever it looks
    like: 'fake' or 'openai:...' is then a file that does not exist, and building says so)."""
    text = text.strip()
    return LLMSpec(text, "pulled" if _pulled_name(text) else "gguf")


def _pulled_name(text: str) -> bool:
    """`text` names a planner model to find in the cache (a catalog name, ORG/REPO/FILE.gguf, or a name that
    leads out of the cache), and no local file of that name exists."""
    from qia_cli.models.spec import parse as parse_name

    if Path(text).expanduser().exists():
        return False
    try:
        spec = parse_name(text)
    except UsageError:
        return True  # shaped like a name, but not one: resolve_pulled says why
    return spec is not None and spec.kind == "gguf"


def resolve_pulled(text: str) -> tuple[Path, str] | None:
    """(cached file, display name) for a planner model named by the catalog or ORG/REPO/FILE.gguf.

    None when `text` is a local file or no such name (the caller treats it as a path); ModelError when it
    is such a name but not pulled; UsageError for a name that would lead out of the cache. Never touches the
    network.
    """
    if Path(text).expanduser().exists():
        return None
    from qia_cli.models.cache import cached_file
    from qia_cli.models.spec import parse as parse_name

    spec = parse_name(text)
    if spec is None or spec.kind != "gguf":
        return None
    found = cached_file(spec.repo, spec.file or "")
    if found is None:
        if spec.catalog:
            raise ModelError(f"planner model {spec.catalog} is not pulled yet", hint=f"qia models pull {spec.catalog}")
        raise ModelError(
            f"planner model {text} is neither a local file nor pulled from the Hugging Face Hub",
            hint=f"qia models pull {text}, or pass the path of a .gguf file",
        )
    return found, spec.label


def capabilities(llm: object | None) -> Capabilities:
    """What a built LLM can do, as its class declares (NONE for one that declares nothing, or no LLM)."""
    caps = getattr(llm, "capabilities", None)
    return caps if isinstance(caps, Capabilities) else NONE


def build(spec: LLMSpec, settings: Settings, *, verbose: bool = False, knowledge: bool = False) -> LLM:
    """The LLM `spec` names, with the settings' options; nothing loads yet. `knowledge`: the model that answers
    knowledge questions beside the planner (a small context, on the CPU)."""
    if spec.kind == "server":
        from qia_cli.llm.openai import OpenAILLM

        url, model = spec.server_address(settings.llm_url)
        return OpenAILLM(url, model=model, api_key=settings.llm_api_key, timeout=settings.llm_timeout)
    if spec.kind == "fake":
        from qia_cli.llm.fake import FakeLLM

        return FakeLLM()
    path: str | Path = spec.text
    name = None
    if spec.kind == "bundled":
        from qia_cli.llm.bundled import NAME, require_bundled

        path, name = require_bundled(), NAME
    elif spec.kind == "pulled":
        pulled = resolve_pulled(spec.text)
        if pulled is not None:
            path, name = pulled
    return llama(path, settings, name=name, verbose=verbose, knowledge=knowledge)


def llama(path: str | Path, settings: Settings, *, name: str | None, verbose: bool, knowledge: bool) -> LLM:
    """A llama.cpp model with the settings' options: the planner's, or the knowledge model's (1024 tokens of
    context and no GPU layers: it only answers short questions)."""
    from qia_cli.llm.llama import LlamaLLM

    if knowledge:
        return LlamaLLM(
            path, n_ctx=1024, n_threads=settings.llm_threads, repack=settings.llm_repack, verbose=verbose, name=name
        )
    return LlamaLLM(
        path,
        n_ctx=settings.llm_ctx,
        n_threads=settings.llm_threads,
        n_gpu_layers=settings.llm_gpu_layers,
        repack=settings.llm_repack,
        verbose=verbose,
        name=name,
    )
