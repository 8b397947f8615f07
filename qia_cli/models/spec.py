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
from urllib.parse import unquote

from qia_cli.errors import ModelError, UsageError
from qia_cli.models import catalog
from qia_cli.textsafe import printable

# An owner or repository name on the Hub: letters, digits, '_', '-', '.'; no '--' or '..' (the Hub refuses
# both; '--' is also what the cache folder uses between owner and name).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


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


def is_repo_id(text: str, *, owner_optional: bool = False) -> bool:
    """`text` is a Hub repository id: OWNER/NAME (or a bare NAME when `owner_optional`)."""
    parts = text.split("/")
    if len(parts) != 2 and not (owner_optional and len(parts) == 1):
        return False
    return all(_NAME.fullmatch(p) and ".." not in p and "--" not in p for p in parts)


def _local_looking(text: str) -> bool:
    """Absolute, home-relative, ./ or ../ relative, a Windows path or a URL: never a Hub name."""
    return text.startswith(("/", ".", "~")) or "\\" in text or ":" in text


def name_problem(text: str) -> str | None:
    """Why `text` cannot be a Hub name (a path would leave the cache), or None when it can.

    Checked on the text as typed and %-decoded: an absolute path, a backslash, an empty, '.' or '..'
    segment, or a control character.
    """
    for form in dict.fromkeys((text, unquote(text))):
        if form.startswith(("/", "~")) or re.match(r"[A-Za-z]:", form):
            return "it is an absolute path"
        if "\\" in form:
            return "it holds a backslash"
        if _CONTROL.search(form):
            return "it holds a control character"
        bad = next((s for s in form.split("/") if s in ("", ".", "..")), None)
        if bad is not None:
            part = f"a '{bad}' part" if bad else "an empty part (//)"
            return f"it has {part}" if form == text else f"it has {part} once %-decoded"
    return None


def parse(text: str) -> Spec | None:
    """The spec `text` names, or None (a local path, 'bundled', a server URL, anything else).

    The one check of Hub names (`--llm`, `models pull|info|rm`): a name shaped like ORG/REPO[/FILE] with an
    empty, '.' or '..' part (also %-encoded) or a control character is a UsageError, never a path to
    follow. Text that looks like a local path (absolute, ./, ~, a backslash) gives None: `rm` and `pull`
    refuse it, `--llm` and `--model` open it. Callers that take local paths check for one first.
    """
    text = (text or "").strip()
    entry = catalog.find(text)
    if entry is not None:
        return Spec(text, "gguf", entry.repo, entry.file, entry.name)
    if not text:
        return None
    if ("/" in text or "%" in text) and not _local_looking(text):
        problem = name_problem(text)
        if problem:
            raise UsageError(
                f"'{printable(text)}' is not a model name: {problem}",
                hint="a catalog name, ORG/REPO/FILE.gguf or ORG/REPO (qia models list shows them)",
            )
    if _local_looking(text):
        return None
    parts = text.split("/")
    repo = "/".join(parts[:2])
    if len(parts) >= 3 and parts[-1].lower().endswith(".gguf") and is_repo_id(repo):
        return Spec(text, "gguf", repo, "/".join(parts[2:]))
    if len(parts) == 2 and is_repo_id(text):
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
