"""Headless batch: a file of requests -> plans -> images, with a results file that makes a rerun resume.

The file is JSONL (`{"request": ..., "seed"?, "size"?, "model"?, "count"?, "id"?}` per line) or plain
text (one request per line); blank lines and `#` comments are skipped, and lines keep their numbers.

`results.jsonl` in the output folder gets one record per line as soon as the line is done, appended
with a single `write()` of the whole line under a file lock, then fsync'ed: a crash loses at most the
line in flight. A rerun skips the lines whose latest record is `ok` for the same request (matched by
line number and a hash of the line) and retries the rest. At the end the file is compacted to one
record per line. No Typer or Rich here: the CLI reports progress through `on_result`.

One function does a line (`run_line`: plan, render, record, in two halves `plan_line` and `finish_line`);
the local runner here and the Ray runner (`batch_ray.py`) both call it, and only the driver (`run_batch`)
writes `results.jsonl` and the output folder. Each line is claimed in the folder (`claims.py`) before it
is planned, so a second `qia batch` on the same folder takes the lines the first has not, never the same.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import functools
import hashlib
import heapq
import json
import os
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from qia_cli.agent.claims import Claims
from qia_cli.agent.planner import PlanOptions
from qia_cli.agent.run import Agent, RenderOptions
from qia_cli.agent.types import Plan
from qia_cli.errors import ModelError, QiaError, UsageError
from qia_cli.seeds import MAX_SEED

RESULTS = "results.jsonl"
FIELDS: dict[str, tuple[type, ...]] = {
    "request": (str,),
    "id": (str, int),
    "seed": (int,),
    "size": (str,),
    "model": (str,),
    "count": (int,),
}
CHUNK = 8  # lines planned before the LLM is freed for rendering, when it holds VRAM
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


@dataclass
class Line:
    line: int  # 1-based number in the file
    request: str
    id: str | None = None
    seed: int | None = None
    size: str | None = None
    model: str | None = None
    count: int | None = None

    @functools.cached_property
    def key(self) -> str:
        """A hash of what the line asks for: an edited line is a new request."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "line" and v is not None}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


# -- reading the file -----------------------------------------------------------------------------
class BatchFile:
    """The requests of a batch file (those of one `--shard I/N`), read as a stream: memory stays the same
    whatever the length of the file.

    Making one reads the whole file once and checks every line, so a bad file fails (UsageError naming
    the first bad line) before any work; each iteration reads it again and yields its `Line`s in order.
    A line that starts with `{` is a JSON record when it parses as one. When it does not, it is an error
    in a JSONL file (by its suffix, or because another line is a JSON record) or when it starts like JSON
    (`{"`); in a plain-text file it is a request like any other (`{red} balloons`). A UTF-8 BOM is skipped.
    """

    def __init__(self, path: Path, shard: str | None = None) -> None:
        self.path = Path(path)
        self.every, self.start = _parse_shard(shard)
        self.jsonl = self.path.suffix.lower() in JSONL_SUFFIXES
        requests = 0
        maybe_bad: UsageError | None = None  # the first broken `{` line: an error if the file is JSONL
        bad: UsageError | None = None  # the first broken `{"` line after it (the error if the file is text)
        for number, stripped in self._raw():
            data = _json_or_error(stripped)
            if isinstance(data, dict):
                self.jsonl = True
                if maybe_bad is not None:
                    raise maybe_bad
                _parse_record(self.path, number, data)  # checked now, parsed again when the line is read
            elif isinstance(data, ValueError):
                error = _not_json(self.path, number, data)
                if self.jsonl or stripped.startswith('{"'):
                    if maybe_bad is None:
                        raise error
                    bad = bad or error
                maybe_bad = maybe_bad or error
            requests += 1
        if self.jsonl and maybe_bad is not None:
            raise maybe_bad
        if bad is not None:
            raise bad
        if not requests:
            raise UsageError(f"batch file {self.path} has no requests", hint="one request per line, as text or JSON")
        self.size = len(range(self.start, requests, self.every))  # the requests of this shard

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[Line]:
        index = -1
        for number, stripped in self._raw():
            index += 1
            if index % self.every != self.start:
                continue
            data = _json_or_error(stripped)
            if isinstance(data, dict):
                yield _parse_record(self.path, number, data)
            elif isinstance(data, ValueError) and (self.jsonl or stripped.startswith('{"')):
                raise _not_json(self.path, number, data)  # the file changed since it was checked
            else:
                yield Line(line=number, request=stripped)

    def _raw(self) -> Iterator[tuple[int, str]]:
        """(line number, text) of each line that is not blank or a comment; numbered as str.splitlines()
        numbers them, so results of earlier runs keep matching."""
        try:
            with open(self.path, encoding="utf-8-sig") as fh:
                number = 0
                for chunk in fh:
                    for raw in chunk.splitlines() or [""]:
                        number += 1
                        stripped = raw.strip().lstrip("\ufeff").strip()
                        if stripped and not stripped.startswith("#"):
                            yield number, stripped
        except FileNotFoundError:
            raise UsageError(f"batch file not found: {self.path}") from None
        except IsADirectoryError:
            raise UsageError(f"batch file is a folder: {self.path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"batch file {self.path} cannot be read: {exc}") from None


def read_lines(path: Path) -> list[Line]:
    """Every request of the file as a list (see BatchFile, which streams them)."""
    return list(BatchFile(path))


def _json_or_error(stripped: str) -> Any:
    """The JSON value of a line that starts with `{`, the ValueError of one that does not parse, or None."""
    if not stripped.startswith("{"):
        return None
    try:
        return json.loads(stripped)
    except ValueError as exc:
        return exc
    except RecursionError:
        return ValueError("nested too deeply")


def _not_json(path: Path, number: int, exc: ValueError) -> UsageError:
    return UsageError(
        f"{path}:{number} is not valid JSON: {exc}",
        hint="a text request that starts with '{' belongs in a plain-text file (not .jsonl)",
    )


def _parse_record(path: Path, number: int, data: dict[str, Any]) -> Line:
    where = f"{path}:{number}"
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise UsageError(f"{where}: unknown field '{unknown[0]}'", hint="fields: " + ", ".join(FIELDS))
    if "request" not in data:
        raise UsageError(f'{where}: no "request"', hint='e.g. {"request": "a red bicycle", "seed": 7}')
    for key, value in data.items():
        if value is None and key != "request":
            continue
        if not isinstance(value, FIELDS[key]) or isinstance(value, bool):
            kinds = " or ".join(t.__name__ for t in FIELDS[key])
            raise UsageError(f'{where}: "{key}" must be {kinds}, not {json.dumps(value)}')
    if data.get("seed") is not None and not 0 <= data["seed"] <= MAX_SEED:
        raise UsageError(f'{where}: "seed" must be between 0 and {MAX_SEED}')
    if data.get("count") is not None and not 1 <= data["count"] <= 64:
        raise UsageError(f'{where}: "count" must be between 1 and 64')
    if data.get("id") is not None:
        data["id"] = str(data["id"])
    return Line(line=number, **data)


def _parse_shard(shard: str | None) -> tuple[int, int]:
    """`i/n` (1 <= i <= n): every n-th request, starting with the i-th, as (n, i - 1); (1, 0) for all."""
    if not shard:
        return 1, 0
    try:
        i, n = (int(part) for part in shard.split("/"))
    except ValueError:
        i = n = 0
    if not (n >= 1 and 1 <= i <= n):
        raise UsageError(f"invalid shard '{shard}'", hint="use I/N with 1 <= I <= N, e.g. --shard 2/4")
    return n, i - 1


# -- the results file -------------------------------------------------------------------------------
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

    def append(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
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


# -- running ----------------------------------------------------------------------------------------
@dataclass
class BatchOptions:
    render: RenderOptions  # the defaults every line starts from
    plan_only: bool = False
    jobs: int = 1  # lines planned at once; only with an LLM server
    seed: int | None = None  # base seed: line N gets seed + N - 1


@dataclass
class Summary:
    results: Path
    total: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    elsewhere: int = 0  # lines another `qia batch` on the same folder was doing
    jobs: int = 1
    workers: int | None = None  # Ray actors (None: no Ray)
    retried: int = 0  # lines sent again after their Ray worker died
    aborted: QiaError | None = None

    def as_dict(self) -> dict[str, Any]:
        data = {
            "results": str(self.results),
            "total": self.total,
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "elsewhere": self.elsewhere,
            "jobs": self.jobs,
            "aborted": self.aborted.message if self.aborted else None,
        }
        if self.workers is not None:
            data.update(workers=self.workers, retried=self.retried)
        return data


@dataclass
class Outcome:
    """What doing one line gives the driver: its record, and what only the driver may act on."""

    record: dict[str, Any]
    stop: QiaError | None = None  # the planner cannot work for any line: the batch stops
    files: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # images rendered away from OUTDIR
    touched: list[str] = dataclasses.field(default_factory=list)  # memory entries a worker's plan used
    calls: list = dataclasses.field(default_factory=list)  # a worker's call-log writes: (plan row, calls) pairs


class Saved(Protocol):
    """Plans saved by an earlier --plan-only run, by (line, hash): SavedPlans, or a dict."""

    def get(self, key: tuple[int, str], /) -> dict[str, Any] | None: ...


# A runner turns the claimed lines into outcomes, in any order: (agent, lines, saved plans, options, summary).
Runner = Callable[[Agent, Iterable[Line], Saved, BatchOptions, Summary], Iterator[Outcome]]


def planning_jobs(agent: Agent, jobs: int) -> int:
    """Lines planned at once: up to `jobs` for an LLM server, one for a local model (it runs on this machine)."""
    return max(1, jobs) if llm_backend(agent) == "openai" else 1


def llm_backend(agent: Agent) -> str | None:
    """The planner LLM's backend, without a network call for a server's model name."""
    llm = agent.llm
    if llm is None:
        return None
    return getattr(llm, "backend", None) or getattr(getattr(llm, "info", None), "backend", None)


def run_batch(
    agent: Agent,
    lines: Iterable[Line],
    results: Results,
    options: BatchOptions,
    *,
    on_start: Callable[[int, int], None] = lambda _todo, _skipped: None,
    on_result: Callable[[dict[str, Any]], None] = lambda _record: None,
    on_other: Callable[[Line], None] = lambda _line: None,
    runner: Runner | None = None,
) -> Summary:
    """Plan (and render) every line not done yet; one record per line appended to `results`.

    `lines` is read more than once (a BatchFile streams the file each time, a list works too); neither the
    lines nor the records are held, so memory stays flat in the number of lines. `runner` does the lines
    (default: in this process); this driver alone appends the records, writes the files a runner brings
    back as bytes, and applies memory use. `on_other` hears of a line that was skipped after the start:
    another run on the folder holds it or has just done it.
    """
    index = LineIndex(lines)
    summary = Summary(results=results.path, total=len(index), jobs=planning_jobs(agent, options.jobs))
    source = results.open()  # kept open: the plans saved by a --plan-only run are read from it
    try:
        index.mark(results.fresh(source), options.plan_only, LineIndex.DONE_BEFORE, saved=not options.plan_only)
        summary.skipped = index.done.count(LineIndex.DONE_BEFORE)
        on_start(len(index) - summary.skipped, summary.skipped)
        claims = Claims(results.path.parent)
        outdir = Path(options.render.outdir) if options.render.outdir is not None else results.path.parent

        def record_line(record: dict[str, Any]) -> None:
            results.append(record)
            claims.release(record["line"])
            if record["status"] == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
            on_result(record)

        left = None if options.plan_only or summary.skipped == len(index) else Leftovers(outdir, index)
        feeder = _Feeder(lines, index, results, claims, options, summary, on_other, left, record_line)
        outcomes = (runner or run_local)(agent, feeder, SavedPlans(index, source), options, summary)
        try:
            for outcome in outcomes:
                record = outcome.record
                if outcome.files:
                    _place(outcome, outdir)
                _log(agent, outcome)
                if outcome.touched and agent.memory is not None:
                    try:
                        agent.memory.touch(outcome.touched)
                    except (OSError, QiaError):
                        pass  # recency bookkeeping only; the plan is done
                record_line(record)
                if outcome.stop is not None:
                    summary.aborted = outcome.stop
                    break
        finally:
            close = getattr(outcomes, "close", None)
            if close is not None:
                close()  # a runner stops its work (threads, Ray tasks) before the claims go
            claims.release_all()
            try:
                results.compact(index)
            except (OSError, QiaError):
                pass  # the appended records are safe; the next run compacts
    finally:
        if source is not None:
            source.close()
    return summary


class _Feeder:
    """The lines to do, each claimed in the output folder first; a line another run holds, or has done
    since this run started, is left out (and counted)."""

    def __init__(
        self,
        lines: Iterable[Line],
        index: LineIndex,
        results: Results,
        claims: Claims,
        options: BatchOptions,
        summary: Summary,
        on_other: Callable[[Line], None],
        left: Leftovers | None,
        on_adopted: Callable[[dict[str, Any]], None],
    ) -> None:
        self.lines, self.index, self.results, self.claims = lines, index, results, claims
        self.options, self.plan_only, self.summary, self.on_other = options, options.plan_only, summary, on_other
        self.left, self.on_adopted = left, on_adopted

    def __iter__(self) -> Iterator[Line]:
        done = self.index.done
        for line in self.lines:
            pos = self.index.find(line.line, line.key)
            if pos is None or done[pos] == LineIndex.DONE_BEFORE:
                continue
            if not self.claims.take(line.line):
                self.summary.elsewhere += 1
                self.on_other(line)
                continue
            self.index.mark(self.results.fresh(), self.plan_only, LineIndex.DONE_SINCE)
            if done[pos]:  # another run finished it before we claimed it
                self.claims.release(line.line)
                self.summary.elsewhere += 1
                self.on_other(line)
                continue
            if self.left is not None:  # images a killed run saved for this line: its record, or gone
                record = self.left.adopt(line, pos, self.options)
                if record is not None:
                    self.on_adopted(record)
                    continue
            yield line


class Leftovers:
    """Images saved for a line that has no record: a run killed (or stopped) between saving a line's images
    and appending its record leaves them. They are found, when a run starts, by the `batch` tag of their
    sidecars ({"line", "hash", "image", "kept"}). When this run claims the line, a whole set (every image
    the line asks for) is adopted: its record is made from the sidecars and nothing renders again. Any other
    set (some images missing) is removed, with its sidecars, and the line renders again."""

    MAX_SIDECAR = 16 << 20

    def __init__(self, outdir: Path, index: LineIndex) -> None:
        self.outdir = Path(outdir)
        self.found: dict[int, list[Path]] = {}  # line position -> the sidecars tagged for it
        try:
            sidecars = list(os.scandir(self.outdir))
        except OSError:
            return
        for entry in sidecars:
            if not entry.name.endswith(".json") or not entry.is_file(follow_symlinks=False):
                continue
            tag = _tag(_read_sidecar(Path(entry.path), quick=True))
            if tag is None:
                continue
            pos = index.find(tag["line"], tag["hash"])
            if pos is not None and not index.done[pos]:
                self.found.setdefault(pos, []).append(Path(entry.path))

    def adopt(self, line: Line, pos: int, options: BatchOptions) -> dict[str, Any] | None:
        """The record of the line's images when they are whole (None when there were none, or they were not
        whole and are now removed)."""
        sidecars = self.found.pop(pos, None)
        if not sidecars:
            return None
        kept: dict[int, tuple[Path, Path, dict[str, Any]]] = {}
        whole = True
        for side in sidecars:
            body = _read_sidecar(side)
            tag, png = _tag(body), _image_of(side, body)
            if body is None or tag is None or png is None or not png.is_file():
                whole = False
            elif tag["kept"]:
                kept[tag["image"]] = (png, side, body)
        try:
            wanted = _render_options(line, options).count
        except QiaError:
            wanted = -1
        if whole and sorted(kept) == list(range(wanted)):
            return _adopted(line, [kept[i] for i in range(wanted)])
        for side in sidecars:
            png = _image_of(side, _read_sidecar(side))
            for path in (png, side):
                if path is not None:
                    with contextlib.suppress(OSError):
                        path.unlink(missing_ok=True)
        return None


def _read_sidecar(path: Path, *, quick: bool = False) -> dict[str, Any] | None:
    """A sidecar's JSON (None when it is not one); `quick`: None at once for one without a batch tag."""
    from qia_cli.fsutil import read_bounded

    try:
        data = read_bounded(path, Leftovers.MAX_SIDECAR)
        if quick and b'"batch"' not in data:
            return None
        body = json.loads(data)
    except (OSError, ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _tag(body: dict[str, Any] | None) -> dict[str, Any] | None:
    tag = body.get("batch") if body is not None else None
    if not isinstance(tag, dict):
        return None
    kinds = {"line": int, "hash": str, "image": int, "kept": bool}
    return tag if all(isinstance(tag.get(k), t) for k, t in kinds.items()) else None


def _image_of(side: Path, body: dict[str, Any] | None) -> Path | None:
    """The PNG a sidecar names, in the sidecar's own folder (never a path elsewhere)."""
    name = body.get("image") if body is not None else None
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".png"):
        return None
    return side.with_name(name)


def _adopted(line: Line, images: list[tuple[Path, Path, dict[str, Any]]]) -> dict[str, Any]:
    """The record a line would have got from the render that saved `images` (png, sidecar, its JSON)."""
    first = images[0][2]
    record = _new_record(line)
    outputs = []
    for png, side, body in images:
        spec = body.get("render") or {}
        outputs.append(
            {
                "path": str(png),
                "sidecar": str(side),
                "seed": spec.get("seed"),
                "width": spec.get("width"),
                "height": spec.get("height"),
            }
        )
    timings = first.get("timings")
    if not isinstance(timings, dict):
        timings = {}
    record.update(
        status="ok",
        rendered=True,
        outputs=outputs,
        plan=first.get("plan"),
        render=first.get("render"),
        seconds=round(float(timings.get("total", 0.0)), 3),
    )
    return record


def _place(outcome: Outcome, outdir: Path) -> None:
    """Write the images a worker sent back into OUTDIR and point the record at them."""
    from qia_cli.imaging.output import save_bytes

    moved: dict[str, str] = {}
    try:
        for item in outcome.files:
            png, side = save_bytes(outdir, item["name"], item["png"], _swap(item["sidecar"], moved))
            moved[item["path"]], moved[item["sidecar_path"]] = str(png), str(side)
    except (OSError, QiaError) as exc:
        for path in moved.values():
            Path(path).unlink(missing_ok=True)
        outcome.record.update(status="error", rendered=False, outputs=[], render=None, error=_message(exc))
        return
    outcome.record.update(_swap({k: outcome.record[k] for k in ("outputs", "render")}, moved))


def _log(agent: Agent, outcome: Outcome) -> None:
    """The calls a worker made (sent back with the line), and the line's plan linked to its images."""
    sink = agent.call_sink()
    if sink is None:
        return
    for plan, calls in outcome.calls:
        sink.write(plan, calls)
    record = outcome.record
    plan_id = (record.get("plan") or {}).get("id")
    if plan_id and record.get("rendered"):
        sink.add_images(plan_id, [o["path"] for o in record.get("outputs") or []])


def _swap(value: Any, moved: dict[str, str]) -> Any:
    """`value` with every string that is a key of `moved` replaced by its value, at any depth."""
    if isinstance(value, str):
        return moved.get(value, value)
    if isinstance(value, dict):
        return {k: _swap(v, moved) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, moved) for v in value]
    return value


def _stops_batch(exc: Any) -> bool:
    """The planner LLM cannot work for any line (missing model, bad key, server down): stop at once."""
    return isinstance(exc, ModelError) or bool(getattr(exc, "unreachable", False))


# -- one line -------------------------------------------------------------------------------------
def plan_line(agent: Agent, line: Line, saved: dict | None, options: BatchOptions) -> Any:
    """The line's Plan (the one saved by an earlier --plan-only run, if any), or the exception planning raised."""
    try:
        render = _render_options(line, options)  # a bad size fails the line before any LLM call
        if saved is not None:
            return Plan.model_validate(saved)
        return agent.plan(line.request, PlanOptions(), model=render.model)
    except Exception as exc:  # reported as the line's error; KeyboardInterrupt still stops the run
        return exc


def finish_line(
    renderer: Agent | None, line: Line, planned: Any, options: BatchOptions, outdir: Path | None = None
) -> Outcome:
    """Render a planned line (into `outdir` instead of the batch's folder, when given) and make its record."""
    start = time.perf_counter()
    record = _new_record(line)
    if isinstance(planned, BaseException):
        record["error"] = _message(planned)
    else:
        record["plan"] = json.loads(planned.model_dump_json())
        if options.plan_only:
            record["status"] = "ok"
        else:
            try:
                render = _render_options(line, options)
                if outdir is not None:
                    render = dataclasses.replace(render, outdir=outdir)
                assert renderer is not None  # None only for plan-only lines and errors, which never render
                result = renderer.render(planned, render)
            except Exception as exc:
                record["error"] = _message(exc)
            else:
                record.update(
                    status="ok",
                    rendered=True,
                    outputs=[o.model_dump() for o in result.outputs],
                    render=result.render.model_dump(),
                )
    record["seconds"] = round(time.perf_counter() - start + getattr(planned, "timings", {}).get("total", 0.0), 3)
    stop = planned if isinstance(planned, QiaError) and _stops_batch(planned) else None
    return Outcome(record=record, stop=stop)


def _new_record(line: Line) -> dict[str, Any]:
    return {
        "line": line.line,
        "id": line.id,
        "request": line.request,
        "hash": line.key,
        "status": "error",
        "rendered": False,
        "outputs": [],
        "plan": None,
        "render": None,
        "error": None,
    }


def run_line(
    agent: Agent, renderer: Agent, line: Line, saved: dict | None, options: BatchOptions, outdir: Path | None = None
) -> Outcome:
    """One line from request to record: what every runner does per line."""
    return finish_line(renderer, line, plan_line(agent, line, saved, options), options, outdir)


def renderer_of(agent: Agent) -> Agent:
    """The agent that renders: the same settings, never frees (or uses) the planner's LLM."""
    return dataclasses.replace(agent, llm=None, _planner=None)


# -- the local runner -----------------------------------------------------------------------------
def run_local(
    agent: Agent, lines: Iterable[Line], stored: Saved, options: BatchOptions, summary: Summary
) -> Iterator[Outcome]:
    """Plan (in threads with an LLM server) and render (one at a time, the pipeline kept loaded) here."""
    renderer = renderer_of(agent)
    for line, planned in _plans(agent, lines, stored, options, summary.jobs):
        yield finish_line(renderer, line, planned, options)


def _plans(
    agent: Agent, lines: Iterable[Line], stored: Saved, options: BatchOptions, jobs: int
) -> Iterator[tuple[Line, Any]]:
    """(line, Plan or the exception planning raised), in file order."""
    local = threading.local()
    pending = iter(lines)

    def plan(line: Line, own_agent: bool):
        planner = agent
        if own_agent:  # a Planner counts its LLM usage: one per thread
            planner = getattr(local, "agent", None) or dataclasses.replace(agent, _planner=None)
            local.agent = planner
        return plan_line(planner, line, stored.get((line.line, line.key)), options)

    if jobs <= 1:
        release = not options.plan_only and _llm_holds_vram(agent)
        step = CHUNK if release else 1
        while True:
            part = [(line, plan(line, False)) for line in islice(pending, step)]
            if not part:
                return
            if release:
                agent.release_llm()  # reloads lazily for the next chunk
            yield from part

    agent.share_knowledge()  # before the copies: every planning thread asks the one knowledge model
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="qia-plan")
    try:
        window: deque = deque()
        for line in pending:
            window.append((line, pool.submit(plan, line, True)))
            if len(window) >= 2 * jobs:
                break
        while window:
            line, future = window.popleft()
            following = next(pending, None)
            if following is not None:
                window.append((following, pool.submit(plan, following, True)))
            yield line, future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _llm_holds_vram(agent: Agent) -> bool:
    return llm_backend(agent) == "llama.cpp" and agent.settings.llm_gpu_layers != 0


def _render_options(line: Line, options: BatchOptions) -> RenderOptions:
    base = options.render
    width, height = base.width, base.height
    if line.size:
        from qia_cli.imaging.pipeline import parse_size

        width, height = parse_size(line.size)
    seed = line.seed
    if seed is None and options.seed is not None:
        seed = (options.seed + line.line - 1) % (MAX_SEED + 1)
    return dataclasses.replace(
        base,
        model=line.model or base.model,
        width=width,
        height=height,
        seed=seed,
        count=line.count or base.count,
        batch={"line": line.line, "hash": line.key},
    )


def _message(exc: BaseException) -> str:
    if isinstance(exc, QiaError):
        return exc.message + (f" ({exc.hint})" if exc.hint else "")
    return f"unexpected {type(exc).__name__}: {exc}"
