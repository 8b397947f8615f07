"""What a model name means, and where a pulled planner model is on disk (offline, from the cache).

- a catalog name: `qwen2.5-1.5b` (qia_cli/models/catalog.py);
- a GGUF on the Hub: `ORG/REPO/FILE.gguf` (the first two parts are the repository, the rest is the file);
- a diffusers repository: `ORG/REPO`.
A local file always wins over a name that looks like a Hub path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from qia_cli.errors import ModelError
from qia_cli.models import catalog

HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class Spec:
    text: str  # as typed
    kind: Literal["gguf", "pipeline"]
    repo: str
    file: str | None = None
    catalog: str | None = None  # the catalog name it came from

    @property
    def hub(self) -> str:
        return f"{self.repo}/{self.file}" if self.file else self.repo

    @property
    def label(self) -> str:
        return self.catalog or self.hub


def parse(text: str) -> Spec | None:
    """The spec `text` names, or None (a local path, 'bundled', a server URL, anything else)."""
    text = (text or "").strip()
    entry = catalog.find(text)
    if entry is not None:
        return Spec(text, "gguf", entry.repo, entry.file, entry.name)
    if not text or text.startswith(("/", ".", "~")) or "\\" in text or ":" in text:
        return None
    parts = text.split("/")
    repo = "/".join(parts[:2])
    if len(parts) >= 3 and all(parts) and parts[-1].lower().endswith(".gguf") and HUB_REPO.match(repo):
        return Spec(text, "gguf", repo, "/".join(parts[2:]))
    if len(parts) == 2 and HUB_REPO.match(text):
        return Spec(text, "pipeline", text)
    return None


def resolve_llm(text: str) -> tuple[Path, str] | None:
    """(cached file, display name) for a planner model named by the catalog or ORG/REPO/FILE.gguf.

    None when `text` is a local file or no such name (the caller treats it as a path); ModelError when it
    is such a name but not pulled. Never touches the network.
    """
    if Path(text).expanduser().exists():
        return None
    spec = parse(text)
    if spec is None or spec.kind != "gguf":
        return None
    from qia_cli.models.cache import cached_file

    found = cached_file(spec.repo, spec.file or "")
    if found is None:
        if spec.catalog:
            raise ModelError(f"planner model {spec.catalog} is not pulled yet", hint=f"qia models pull {spec.catalog}")
        raise ModelError(
            f"planner model {text} is neither a local file nor pulled from the Hugging Face Hub",
            hint=f"qia models pull {text}, or pass the path of a .gguf file",
        )
    return found, spec.label
