"""The per-user memory: facts, preferences and entities ("Biscuit is my dog"), plus session records.

One JSON file (`paths.memory_file()`, mode 0600):
    {"schema_version": 1, "entries": [...], "sessions": [...]}

Safety rules: every read-modify-write holds a file lock and re-reads the file inside it; writes are
atomic (temp file + rename) and keep the previous good file as memory.json.bak; a file that cannot
be read is never replaced, the user gets `MemoryCorruptError` naming it.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import secrets
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qia_cli import paths
from qia_cli.errors import MemoryCorruptError, QiaError, UsageError
from qia_cli.fsutil import atomic_write_bytes, make_private_dirs
from qia_cli.memory.recall import Index, Recall, infer_kind, infer_names
from qia_cli.memory.recall import find_session as _find_session
from qia_cli.textsafe import clean_input, injected, visible

SCHEMA_VERSION = 1
MAX_SESSIONS = 500
# Every command reads (and most rewrite) the whole file, so the memory has a size: at 10,000 entries a
# load is ~0.1 s and a write ~0.1 s (benchmarks/bench_memory_recall.py); an import is read in chunks
# and refused past MAX_IMPORT_BYTES, so /dev/zero or a huge file cannot grow the process.
MAX_ENTRIES = 10_000
MAX_TEXT_CHARS = 1000
MAX_NAMES = 20
MAX_IMPORT_BYTES = 8 * 1024 * 1024
LOCK_TIMEOUT_S = 30.0
RECOVER_HINT = "run `qia memory path`; restore memory.json.bak or move the file aside"

Kind = Literal["preference", "fact", "entity"]
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class Entry(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    kind: Kind = "fact"
    text: str
    names: list[str] = Field(default_factory=list)
    created: datetime = Field(default_factory=_now)
    last_used: datetime | None = None
    uses: int = 0

    @field_validator("created", "last_used")
    @classmethod
    def _tz(cls, value: datetime | None) -> datetime | None:
        return _aware(value)


class SessionRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(default_factory=lambda: "s" + secrets.token_hex(4))
    time: datetime = Field(default_factory=_now)
    request: str
    prompt: str = ""
    outputs: list[str] = Field(default_factory=list)
    kind: Literal["plan", "generate"] = "generate"
    seed: int | None = None
    model: str | None = None
    plan_id: str | None = None  # the plan in the call log (qia logs --plan ID)

    @field_validator("time")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return cast(datetime, _aware(value))  # not None in, not None out


class Document(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    entries: list[Entry] = Field(default_factory=list)
    sessions: list[SessionRecord] = Field(default_factory=list)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _same_text(text: str, key: str) -> bool:
    """_norm(text) == key, without a regex for the common case of text stored already normalised."""
    if "  " in text or "\n" in text or "\t" in text or text != text.strip():
        return _norm(text) == key
    return text.casefold() == key


def clean_text(text: str, what: str = "the text") -> str:
    """An entry's text as it is stored: no control or invisible characters, one line, within the limit."""
    text = re.sub(r"\s+", " ", clean_input(text, what=what)).strip()
    if len(text) > MAX_TEXT_CHARS:
        raise UsageError(
            f"{what} is {len(text)} characters long; the limit is {MAX_TEXT_CHARS}",
            hint="remember the fact in fewer words",
        )
    return text if visible(text) else ""


def refuse_orders(text: str, what: str = "the text to remember") -> None:
    """Memory is data about you that reaches every prompt: text that reads as an instruction to the model
    ("... ignore previous instructions") is refused, as it is in search results."""
    if injected(text):
        raise UsageError(
            f"{what} reads as an instruction to the model, not as something about you: not remembered",
            hint="say what you like or what something is, e.g. 'I prefer watercolour' or 'Biscuit is my dog'",
        )


def clean_names(names: list[str], what: str = "a name") -> list[str]:
    out = [n for n in (re.sub(r"\s+", " ", clean_input(str(n), what=what)).strip() for n in names) if visible(n)]
    return [n[:100] for n in dict.fromkeys(out)][:MAX_NAMES]


def _new_id(taken: set[str]) -> str:
    entry_id = "m" + secrets.token_hex(3)
    while entry_id in taken:
        entry_id = "m" + secrets.token_hex(3)
    return entry_id


def _full(count: int) -> UsageError:
    return UsageError(
        f"the memory would hold {count} entries; the limit is {MAX_ENTRIES}",
        hint="forget entries you no longer need (qia memory list, qia memory forget ID)",
    )


def read_import(file: Path | str) -> Any:
    """The JSON of an import file ('-' = stdin), read in chunks and refused past MAX_IMPORT_BYTES."""
    name = "stdin" if str(file) == "-" else str(file)
    too_big = UsageError(
        f"memory import: {name} is larger than {MAX_IMPORT_BYTES / 2**20:g} MB",
        hint=f"import at most {MAX_ENTRIES} entries; split the file",
    )
    chunks: list[bytes] = []
    total = 0
    try:
        if str(file) == "-":
            stream = getattr(sys.stdin, "buffer", None)
            if stream is None:  # a text stream without bytes underneath (tests)
                text = sys.stdin.read(MAX_IMPORT_BYTES + 1)
                if len(text) > MAX_IMPORT_BYTES:
                    raise too_big
                return _parse_import(text, name)
            close = False
        else:
            path = Path(file)
            if path.is_file() and path.stat().st_size > MAX_IMPORT_BYTES:
                raise too_big
            stream, close = open(path, "rb"), True
        try:
            while True:
                chunk = stream.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                if total > MAX_IMPORT_BYTES:
                    raise too_big
                chunks.append(chunk)
        finally:
            if close:
                stream.close()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        text = b"".join(chunks).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not valid UTF-8 (byte {exc.start})") from None
    return _parse_import(text, name)


def _parse_import(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name} is not valid JSON: {exc}") from None
    except RecursionError:
        raise UsageError(f"{name} is not valid JSON: nested too deeply") from None


def _import_entries(items: Any) -> list[dict]:
    """Entries to import as dicts: an export's, or hand-written ones ({"text": ...} or a plain string),
    with kind and names inferred and the text cleaned like `qia memory add` does."""
    if not isinstance(items, list):
        raise UsageError("memory import: 'entries' must be a list")
    out = []
    for i, item in enumerate(items):
        where = f"memory import: entries.{i}"
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise UsageError(f'{where} needs a "text"', hint='e.g. [{"text": "Biscuit is my dog"}]')
        item = dict(item)
        item["text"] = clean_text(item["text"], what=f"{where}.text")
        if not item["text"]:
            raise UsageError(f"{where}.text is empty")
        refuse_orders(item["text"], what=f"{where}.text")
        if not isinstance(item.get("id"), str) or not item["id"].strip():
            item["id"] = ""  # assigned on import
        if item.get("kind") is None:
            item["kind"] = infer_kind(item["text"])
        names = item.get("names")
        if names is None:
            names = [] if item["kind"] == "preference" else infer_names(item["text"])
        if isinstance(names, list):
            item["names"] = clean_names(names, what=f"{where}.names")
        out.append(item)
    return out


def _clean_sessions(items: Any) -> Any:
    if not isinstance(items, list):
        return items
    from qia_cli.seeds import MAX_SEED

    out = []
    for item in items:
        if isinstance(item, dict):
            item = {
                k: clean_input(v, what="a session record")
                if isinstance(v, str) and k in {"request", "prompt", "model"}
                else v
                for k, v in item.items()
            }
            seed = item.get("seed")
            if seed is not None and not (isinstance(seed, int) and 0 <= seed <= MAX_SEED):
                item["seed"] = None  # a recalled session reuses its seed: only one that renders
        out.append(item)
    return out


def _check_version(data: Any, source: Path | str) -> None:
    version = data.get("schema_version", SCHEMA_VERSION) if isinstance(data, dict) else None
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise QiaError(
            f"memory file {source} has schema_version {version}; this qia reads up to {SCHEMA_VERSION}",
            hint="upgrade qia (pip install -U qia-cli); the file was left untouched",
        )


class MemoryStore:
    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else paths.memory_file()
        self._cache: tuple[tuple, Document] | None = None
        self._index: Index | None = None

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".bak")

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    # --- reading and writing ------------------------------------------------------

    def _corrupt(self, reason: str) -> MemoryCorruptError:
        return MemoryCorruptError(f"memory file {self.path} cannot be read: {reason}", hint=RECOVER_HINT)

    def _read(self) -> Document:
        """The file as it is now (cached while its stat is unchanged); an empty document if missing."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._cache, self._index = None, None
            return Document()
        except OSError as exc:
            raise self._corrupt(str(exc)) from exc
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._cache and self._cache[0] == key:
            return self._cache[1]
        try:
            raw = self.path.read_bytes()
            data = json.loads(raw)
        except OSError as exc:
            raise self._corrupt(exc.strerror or str(exc)) from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._corrupt(f"not valid JSON ({exc})") from None
        except RecursionError:
            raise self._corrupt("not valid JSON (nested too deeply)") from None
        if not isinstance(data, dict):
            raise self._corrupt("not a JSON object")
        _check_version(data, self.path)
        try:
            doc = Document.model_validate(data)
        except ValidationError as exc:
            raise self._corrupt(f"unexpected content ({exc.errors()[0]['msg']})") from None
        self._cache, self._index = (key, doc), None
        return doc

    def _write(self, doc: Document) -> None:
        doc.schema_version = SCHEMA_VERSION
        doc.sessions = doc.sessions[-MAX_SESSIONS:]
        data = doc.model_dump_json(indent=1).encode("utf-8")  # pydantic's serializer: ~10x json.dumps(indent=)
        make_private_dirs(self.path.parent)
        if self.path.exists():  # it parsed inside this lock, so it is a good file
            atomic_write_bytes(self.backup_path, self.path.read_bytes(), mode=0o600)
        atomic_write_bytes(self.path, data, mode=0o600)
        st = os.stat(self.path)
        self._cache, self._index = ((st.st_mtime_ns, st.st_size, st.st_ino), doc), None

    def _mutate(self, change: Callable[[Document], T]) -> T:
        """Lock, re-read, change, write. Nothing is written when `change` or the read raises."""
        from filelock import FileLock, Timeout

        try:
            make_private_dirs(self.path.parent)
            with FileLock(str(self.lock_path), timeout=LOCK_TIMEOUT_S, mode=0o600):
                self._cache = None  # another process may have written since we last looked
                try:
                    doc = self._read()
                    result = change(doc)
                    self._write(doc)
                except BaseException:
                    self._cache, self._index = None, None  # `change` may have edited the cached copy
                    raise
                return result
        except Timeout:
            raise QiaError(
                f"memory file {self.path} is locked by another qia process",
                hint=f"wait for it to finish, or remove {self.lock_path} if no qia is running",
            ) from None
        except OSError as exc:  # QIA_HOME is a file, read-only, full: the old file stays as it was
            where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(self.path) else ""
            raise QiaError(
                f"cannot write the memory file {self.path}: {exc.strerror or exc}{where}",
                hint="check that QIA_HOME (or the data folder) is a folder you can write to",
            ) from None

    def index(self) -> Index:
        doc = self._read()
        if self._index is None:
            self._index = Index(doc.entries)
        return self._index

    # --- entries ------------------------------------------------------------------

    def add(self, text: str, kind: Kind | None = None, names: list[str] | None = None) -> Entry:
        """Remember `text`; kind and names are inferred when not given. Same text twice: the old entry."""
        text = clean_text(text, what="the text to remember")
        if not text:
            raise UsageError("nothing to remember: the text is empty")
        refuse_orders(text)
        kind = kind or cast(Kind, infer_kind(text))  # infer_kind returns one of Kind's values
        if names is None:
            names = [] if kind == "preference" else infer_names(text)
        names = clean_names(names)

        key = _norm(text)

        def change(doc: Document) -> Entry:
            for entry in doc.entries:
                if _same_text(entry.text, key):
                    return entry
            if len(doc.entries) >= MAX_ENTRIES:
                raise _full(len(doc.entries) + 1)
            entry = Entry(id=_new_id({e.id for e in doc.entries}), kind=kind, text=text, names=names)
            doc.entries.append(entry)
            return entry

        return self._mutate(change)

    def list(self) -> list[Entry]:
        return list(self._read().entries)

    def get(self, entry_id: str) -> Entry:
        """An entry by id or by a unique prefix of its id."""
        entry_id = entry_id.strip()
        entries = self._read().entries
        exact = [e for e in entries if e.id == entry_id]
        found = exact or ([e for e in entries if e.id.startswith(entry_id)] if entry_id else [])
        if not found:
            raise UsageError(f"no memory entry '{entry_id}'", hint="run `qia memory list` to see the ids")
        if len(found) > 1:
            raise UsageError(
                f"'{entry_id}' matches {len(found)} entries: " + ", ".join(e.id for e in found[:5]),
                hint="give more characters of the id",
            )
        return found[0]

    def search(self, text: str) -> builtins.list[Entry]:
        """The entries whose text or names hold every word of `text` (case, accents and plurals folded: "dogs"
        finds "my dog"), or the whole of it; in the order they were added. Nothing is recorded as a use."""
        from qia_cli.text import STOPWORDS, fold, normalise

        wanted = normalise(text)
        wanted = [w for w in wanted if w not in STOPWORDS] or wanted
        whole = " ".join(fold(text).split())
        if not whole:
            raise UsageError("the search text is empty", hint="qia memory search dog")
        found = []
        for entry in self._read().entries:
            hay = " ".join([entry.text, *entry.names])
            words = set(normalise(hay))
            if (wanted and all(w in words for w in wanted)) or whole in " ".join(fold(hay).split()):
                found.append(entry)
        return found

    def forget(self, entry_id: str) -> Entry:
        target = self.get(entry_id).id

        def change(doc: Document) -> Entry:
            for i, entry in enumerate(doc.entries):
                if entry.id == target:
                    return doc.entries.pop(i)
            raise UsageError(f"no memory entry '{entry_id}'")

        return self._mutate(change)

    def clear(self) -> int:
        """Remove every entry (session records stay); returns how many went."""
        if not self.path.exists():
            return 0

        def change(doc: Document) -> int:
            count = len(doc.entries)
            doc.entries = []
            return count

        return self._mutate(change)

    def export(self) -> dict:
        return self._read().model_dump(mode="json")

    def import_(self, data: dict, merge: bool = True) -> int:
        """Add the entries (and session records) of an export; duplicates by id or text are skipped.

        merge=False replaces the current entries instead. Returns the number of entries added.
        """
        if isinstance(data, list):
            data = {"entries": data}
        if not isinstance(data, dict):
            raise UsageError("memory import: expected a JSON object with 'entries'")
        _check_version(data, "being imported")
        data = {
            **data,
            "entries": _import_entries(data.get("entries") or []),
            "sessions": _clean_sessions(data.get("sessions") or []),
        }
        try:
            incoming = Document.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise UsageError(f"memory import: invalid data at {where}: {err['msg']}") from None

        def change(doc: Document) -> int:
            if not merge:
                doc.entries, doc.sessions = [], []
            ids = {e.id for e in doc.entries}
            texts = {_norm(e.text) for e in doc.entries}
            added = 0
            for entry in incoming.entries:
                if entry.id in ids or _norm(entry.text) in texts:
                    continue
                if not entry.id:
                    entry.id = _new_id(ids)
                doc.entries.append(entry)
                ids.add(entry.id)
                texts.add(_norm(entry.text))
                added += 1
            if added and len(doc.entries) > MAX_ENTRIES:
                raise _full(len(doc.entries))  # nothing is written
            known = {s.id for s in doc.sessions}
            doc.sessions.extend(s for s in incoming.sessions if s.id not in known)
            doc.sessions.sort(key=lambda s: s.time)
            return added

        return self._mutate(change)

    def touch(self, ids: builtins.list[str]) -> None:  # builtins: `list` here is the method above
        """Mark entries as used by a recall: last_used = now, uses += 1."""
        wanted = set(ids)
        if not wanted:
            return

        def change(doc: Document) -> None:
            now = _now()
            for entry in doc.entries:
                if entry.id in wanted:
                    entry.last_used = now
                    entry.uses += 1

        self._mutate(change)

    # --- recall and sessions ---------------------------------------------------------

    def recall(self, request: str, limit: int = 8) -> Recall:
        """Entries named in the request, facts sharing a rare word with it, and the preferences. An entry
        that reads as an instruction to the model (from a file written before such entries were refused, or
        by hand) is never recalled."""
        found = self.index().recall(request, limit=limit)
        for group in (found.entities, found.facts, found.preferences):
            group[:] = [e for e in group if not injected(e.text)]
        return found

    def add_session(self, record: SessionRecord | dict) -> SessionRecord:
        record = record if isinstance(record, SessionRecord) else SessionRecord.model_validate(record)

        def change(doc: Document) -> SessionRecord:
            doc.sessions.append(record)
            return record

        return self._mutate(change)

    def sessions(self, limit: int | None = None) -> builtins.list[SessionRecord]:
        """Session records, newest first."""
        items = sorted(self._read().sessions, key=lambda s: s.time, reverse=True)
        return items if limit is None else items[:limit]

    def find_session(self, request: str, now: datetime | None = None) -> SessionRecord | None:
        """The session "like the one I made yesterday" points to; None when there is none."""
        return _find_session(self._read().sessions, request, now=now)
