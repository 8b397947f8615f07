"""`results.jsonl` in a batch's output folder: one `LineRecord` per line, appended as soon as the line is done
with a single `write()` of the whole line under a file lock, then fsync'ed: a crash loses at most the line in
flight. A rerun skips the lines whose latest record is `ok` for the same request (matched by line number and a
hash of the line) and retries the rest. At the end the file is compacted to one record per line.

Records are read back as plain dicts: the file may hold records of older versions, or lines that are not
records at all (torn by a crash, written by hand), and a reader skips what it cannot use."""

from __future__ import annotations

import bisect
import heapq
import json
import os
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, Field

from qia_cli.batch.lines import Line
from qia_cli.errors import UsageError

RESULTS = "results.jsonl"


class LineOutput(BaseModel):
    """One image of a line: agent.types.Output's fields (seed and size None for an image adopted from a
    sidecar that does not name them)."""

    path: str
    sidecar: str
    seed: int | None = None
    width: int | None = None
    height: int | None = None


class LineRecord(BaseModel):
    """What happened to one line of a batch file: one JSON line of results.jsonl (the fields in this order)."""

    line: int = Field(description="The line's number in the file (1-based)")
    id: str | None = Field(default=None, description='The line\'s "id", if it has one')
    request: str
    hash: str = Field(description="A hash of what the line asks for: an edited line is a new request")
    status: Literal["ok", "error"] = "error"
    rendered: bool = False
    outputs: list[LineOutput] = Field(default_factory=list)
    plan: dict[str, Any] | None = Field(default=None, description="The Plan's JSON (qia plan --json)")
    render: dict[str, Any] | None = Field(default=None, description="The RenderSpec's JSON, once rendered")
    error: str | None = None
    seconds: float = 0.0

    @classmethod
    def new(cls, line: Line) -> LineRecord:
        """A line's record before anything is done: an error, until it is not."""
        return cls(line=line.line, id=line.id, request=line.request, hash=line.key)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def json_line(self) -> str:
        """The record as results.jsonl holds it (json.dumps' separators, non-ASCII as it is)."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False)


class Results:
    """`results.jsonl`: whole-line appends under a file lock, read back for resume, compacted at the end.
    Every read streams the file a line at a time: no method holds all the records."""

    def __init__(self, outdir: Path) -> None:
        from filelock import FileLock

        self.path = Path(outdir) / RESULTS
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the output folder {self.path.parent}: {exc.strerror}") from None
        if not os.access(self.path.parent, os.W_OK):
            raise UsageError(f"the output folder {self.path.parent} is not writable")
        self.lock = FileLock(str(self.path.parent / f".{RESULTS}.lock"), timeout=120)
        self._seen: tuple[int | None, int] = (None, 0)  # (inode, offset) that fresh() has read up to

    def open(self) -> BinaryIO | None:
        """The file as it is now, for reading (None when there is none yet). Its offsets stay valid while it is
        open, even after a compaction replaces the file: appends only add, and compaction writes a new file."""
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            return None

    def fresh(self, fh: BinaryIO | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
        """(offset, record) for each whole record appended since the last call: all of them the first time,
        and again after the file was replaced (another run compacted it). `fh`: the file, opened already
        (and left open); else it is opened here. A torn last line (a crash mid-write) is not read."""
        own = fh is None
        if fh is None:
            fh = self.open()
            if fh is None:
                self._seen = (None, 0)
                return
        try:
            seen_inode, offset = self._seen
            st = os.fstat(fh.fileno())
            if st.st_ino != seen_inode or st.st_size < offset:
                offset = 0
            self._seen = (st.st_ino, offset)
            fh.seek(offset)
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                at, offset = offset, offset + len(raw)
                self._seen = (st.st_ino, offset)
                record = _record(raw)
                if record is not None:
                    yield at, record
        finally:
            if own:
                fh.close()

    def append(self, record: LineRecord | dict[str, Any]) -> None:
        text = record.json_line() if isinstance(record, LineRecord) else json.dumps(record, ensure_ascii=False)
        data = (text + "\n").encode("utf-8")
        with self.lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # never glue a record onto a torn line
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)

    def compact(self, lines: LineIndex) -> None:
        """One record per (line, hash): the best of them; records of a line of `lines` with another hash (an
        edited line) go. Two passes over the file: the first keeps where each best record is, the second
        copies them, in (line, hash) order, into the new file."""
        from qia_cli.fsutil import atomic_write

        with self.lock:
            src = self.open()
            if src is None:
                return
            with src:
                rank = bytearray(len(lines))  # per line of `lines`: the best record's rank + 1 (0: none yet)
                where = array("q", bytes(8 * len(lines)))  # ... and its offset
                others: dict[tuple[int, str], tuple[int, int]] = {}  # records of other lines: (rank + 1, offset)
                offset = 0
                for raw in src:
                    at, offset = offset, offset + len(raw)
                    record = _record(raw)
                    if record is None:
                        continue
                    score = _rank(record) + 1
                    pos = lines.position(record["line"])
                    if pos is None:
                        key = (record["line"], record["hash"])
                        if score >= others.get(key, (0, 0))[0]:
                            others[key] = (score, at)
                    elif lines.hash_of(pos) == record["hash"] and score >= rank[pos]:
                        rank[pos], where[pos] = score, at

                def write(out: BinaryIO) -> None:
                    mine = ((lines.numbers[p], lines.hash_of(p), where[p]) for p in range(len(lines)) if rank[p])
                    theirs = ((k[0], k[1], at) for k, (_score, at) in sorted(others.items()))
                    for _line, _hash, at in heapq.merge(mine, theirs):
                        src.seek(at)
                        raw = src.readline()
                        out.write(raw if raw.endswith(b"\n") else raw + b"\n")

                atomic_write(self.path, write)


def _record(raw: bytes) -> dict[str, Any] | None:
    """One line of results.jsonl as a record, or None for a line that is not one (torn, foreign)."""
    try:
        record = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None
    if isinstance(record, dict) and isinstance(record.get("line"), int) and isinstance(record.get("hash"), str):
        return record if record["hash"] else None
    return None


def _read_line_at(fd: int, offset: int) -> bytes:
    """The line of the file `fd` that starts at `offset` (thread-safe: no seek)."""
    parts = []
    while True:
        chunk = os.pread(fd, 1 << 16, offset)
        if not chunk:
            break
        end = chunk.find(b"\n")
        if end >= 0:
            parts.append(chunk[: end + 1])
            break
        parts.append(chunk)
        offset += len(chunk)
    return b"".join(parts)


def _rank(record: dict[str, Any] | None) -> int:
    if record is None:
        return -1
    return 0 if record.get("status") != "ok" else (2 if record.get("rendered") else 1)


class LineIndex:
    """The lines of a run by number: each one's hash, whether it is done, and where in results.jsonl an
    earlier --plan-only run saved its plan. About 25 bytes a line, whatever the records hold."""

    DONE_BEFORE, DONE_SINCE = 1, 2  # done when the run started / by another run since

    def __init__(self, lines: Iterable[Line]) -> None:
        self.numbers, self.hashes = array("q"), array("Q")
        for line in lines:
            self.numbers.append(line.line)
            self.hashes.append(int(line.key, 16))
        if any(a >= b for a, b in zip(self.numbers, self.numbers[1:])):  # not in file order: sort them
            order = sorted(range(len(self.numbers)), key=self.numbers.__getitem__)
            self.numbers = array("q", (self.numbers[i] for i in order))
            self.hashes = array("Q", (self.hashes[i] for i in order))
        self.done = bytearray(len(self.numbers))
        self.saved = array("q", [-1]) * len(self.numbers)

    def __len__(self) -> int:
        return len(self.numbers)

    def position(self, number: int) -> int | None:
        pos = bisect.bisect_left(self.numbers, number)
        return pos if pos < len(self.numbers) and self.numbers[pos] == number else None

    def find(self, number: int, key: str) -> int | None:
        """The position of line `number` when its hash is `key` (the line as it is now), else None."""
        pos = self.position(number)
        return pos if pos is not None and self.hash_of(pos) == key else None

    def hash_of(self, pos: int) -> str:
        return format(self.hashes[pos], "016x")

    def mark(self, records: Iterable[tuple[int, dict[str, Any]]], plan_only: bool, how: int, *, saved=False) -> None:
        """Lines done by these records (ok, and rendered unless this is a --plan-only run) are marked `how`;
        with `saved`, the offsets of plans that a --plan-only run saved are kept."""
        for at, record in records:
            if record.get("status") != "ok":
                continue
            pos = self.find(record["line"], record["hash"])
            if pos is None:
                continue
            if record.get("rendered") or plan_only:
                self.done[pos] = self.done[pos] or how
            elif saved and isinstance(record.get("plan"), dict):
                self.saved[pos] = at


class SavedPlans:
    """The plans an earlier --plan-only run saved, read from results.jsonl (as it was when the run started)
    when a line needs its plan: `get((line, hash))`."""

    def __init__(self, lines: LineIndex, fh: BinaryIO | None) -> None:
        self.lines, self.fh = lines, fh

    def get(self, key: tuple[int, str]) -> dict[str, Any] | None:
        pos = self.lines.find(*key)
        if pos is None or self.fh is None or self.lines.saved[pos] < 0:
            return None
        record = _record(_read_line_at(self.fh.fileno(), self.lines.saved[pos]))
        plan = record.get("plan") if record is not None else None
        return plan if isinstance(plan, dict) else None
