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

import dataclasses
import hashlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

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

    @property
    def key(self) -> str:
        """A hash of what the line asks for: an edited line is a new request."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "line" and v is not None}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


# -- reading the file -----------------------------------------------------------------------------
def read_lines(path: Path) -> list[Line]:
    """Every request of the file, or UsageError naming the first line that is not one.

    A line that starts with `{` is a JSON record when it parses as one. When it does not, it is an error
    in a JSONL file (by its suffix, or because another line is a JSON record) or when it starts like JSON
    (`{"`); in a plain-text file it is a request like any other (`{red} balloons`). A UTF-8 BOM is skipped.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"batch file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"batch file is a folder: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"batch file {path} cannot be read: {exc}") from None
    found: list[tuple[int, str, Any]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip().lstrip("\ufeff").strip()
        if not stripped or stripped.startswith("#"):
            continue
        data: Any = None
        if stripped.startswith("{"):
            try:
                data = json.loads(stripped)
            except ValueError as exc:
                data = exc
        found.append((number, stripped, data))
    if not found:
        raise UsageError(f"batch file {path} has no requests", hint="one request per line, as text or JSON")
    jsonl = path.suffix.lower() in JSONL_SUFFIXES or any(isinstance(d, dict) for _n, _t, d in found)
    lines = []
    for number, stripped, data in found:
        if isinstance(data, ValueError) and (jsonl or stripped.startswith('{"')):
            raise UsageError(
                f"{path}:{number} is not valid JSON: {data}",
                hint="a text request that starts with '{' belongs in a plain-text file (not .jsonl)",
            )
        if isinstance(data, dict):
            lines.append(_parse_record(path, number, data))
        else:
            lines.append(Line(line=number, request=stripped))
    return lines


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


def select_shard(lines: list[Line], shard: str | None) -> list[Line]:
    """`i/n` (1 <= i <= n): every n-th request, starting with the i-th. Line numbers stay the file's."""
    if not shard:
        return lines
    try:
        i, n = (int(part) for part in shard.split("/"))
    except ValueError:
        i = n = 0
    if not (n >= 1 and 1 <= i <= n):
        raise UsageError(f"invalid shard '{shard}'", hint="use I/N with 1 <= I <= N, e.g. --shard 2/4")
    return [line for index, line in enumerate(lines) if index % n == i - 1]


# -- the results file -------------------------------------------------------------------------------
class Results:
    """`results.jsonl`: whole-line appends under a file lock, read back for resume, compacted at the end."""

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

    def records(self) -> list[dict[str, Any]]:
        """Every complete record; a torn last line (a crash mid-write) is ignored."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return _parse_records(text)

    def fresh(self) -> list[dict[str, Any]]:
        """The records appended since the last call: all of them the first time, and again after the file
        was replaced (another run compacted it). Only whole lines are read."""
        seen_inode, offset = getattr(self, "_seen", (None, 0))
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            self._seen: tuple[int | None, int] = (None, 0)
            return []
        with fh:
            st = os.fstat(fh.fileno())
            if st.st_ino != seen_inode or st.st_size < offset:
                offset = 0
            fh.seek(offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self._seen = (st.st_ino, offset + end)
        return _parse_records(data[:end].decode("utf-8", errors="replace"))

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

    def compact(self, current: dict[int, str]) -> None:
        """One record per (line, hash): the best of them; records of edited lines in `current` go."""
        from qia_cli.fsutil import atomic_write_bytes

        with self.lock:
            best: dict[tuple[int, str], dict[str, Any]] = {}
            for record in self.records():
                key = (record["line"], record["hash"])
                if record["line"] in current and current[record["line"]] != record["hash"]:
                    continue
                if _rank(record) >= _rank(best.get(key)):
                    best[key] = record
            if not best and not self.path.exists():
                return
            body = "".join(
                json.dumps(r, ensure_ascii=False) + "\n" for _k, r in sorted(best.items(), key=lambda kv: kv[0])
            )
            atomic_write_bytes(self.path, body.encode("utf-8"))


def _parse_records(text: str) -> list[dict[str, Any]]:
    found = []
    for raw in text.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("line"), int) and record.get("hash"):
            found.append(record)
    return found


def _rank(record: dict[str, Any] | None) -> int:
    if record is None:
        return -1
    return 0 if record.get("status") != "ok" else (2 if record.get("rendered") else 1)


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


# A runner turns the claimed lines into outcomes, in any order: (agent, lines, stored plans, options, summary).
Runner = Callable[[Agent, Iterable[Line], dict, BatchOptions, Summary], Iterator[Outcome]]


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
    lines: list[Line],
    results: Results,
    options: BatchOptions,
    *,
    on_start: Callable[[int, int], None] = lambda _todo, _skipped: None,
    on_result: Callable[[dict[str, Any]], None] = lambda _record: None,
    on_other: Callable[[Line], None] = lambda _line: None,
    runner: Runner | None = None,
) -> Summary:
    """Plan (and render) every line not done yet; one record per line appended to `results`.

    `runner` does the lines (default: in this process); this driver alone appends the records, writes
    the files a runner brings back as bytes, and applies memory use. `on_other` hears of a line that was
    skipped after the start: another run on the folder holds it or has just done it.
    """
    summary = Summary(results=results.path, total=len(lines), jobs=planning_jobs(agent, options.jobs))
    done, stored = _previous(results.fresh(), options.plan_only)
    todo = [line for line in lines if (line.line, line.key) not in done]
    summary.skipped = len(lines) - len(todo)
    on_start(len(todo), summary.skipped)
    claims = Claims(results.path.parent)
    feeder = _Feeder(todo, results, claims, options.plan_only, summary, on_other)
    outdir = Path(options.render.outdir) if options.render.outdir is not None else results.path.parent
    outcomes = (runner or run_local)(agent, feeder, stored, options, summary)
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
            results.append(record)
            claims.release(record["line"])
            if record["status"] == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
            on_result(record)
            if outcome.stop is not None:
                summary.aborted = outcome.stop
                break
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()  # a runner stops its work (threads, Ray tasks) before the claims go
        claims.release_all()
        try:
            results.compact({line.line: line.key for line in lines})
        except (OSError, QiaError):
            pass  # the appended records are safe; the next run compacts
    return summary


def _previous(records: list[dict[str, Any]], plan_only: bool) -> tuple[set, dict]:
    """(line, hash) pairs that are done for this run, and plans saved by an earlier --plan-only run."""
    done, stored = set(), {}
    for record in records:
        if record.get("status") != "ok":
            continue
        key = (record["line"], record["hash"])
        if record.get("rendered") or plan_only:
            done.add(key)
        elif isinstance(record.get("plan"), dict):
            stored[key] = record["plan"]
    return done, stored


class _Feeder:
    """The lines to do, each claimed in the output folder first; a line another run holds, or has done
    since this run started, is left out (and counted)."""

    def __init__(
        self,
        todo: list[Line],
        results: Results,
        claims: Claims,
        plan_only: bool,
        summary: Summary,
        on_other: Callable[[Line], None],
    ) -> None:
        self.todo, self.results, self.claims = todo, results, claims
        self.plan_only, self.summary, self.on_other = plan_only, summary, on_other
        self.done: set = set()

    def __iter__(self) -> Iterator[Line]:
        for line in self.todo:
            if not self.claims.take(line.line):
                self.summary.elsewhere += 1
                self.on_other(line)
                continue
            self.done |= _previous(self.results.fresh(), self.plan_only)[0]
            if (line.line, line.key) in self.done:  # another run finished it before we claimed it
                self.claims.release(line.line)
                self.summary.elsewhere += 1
                self.on_other(line)
                continue
            yield line


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
    record: dict[str, Any] = {
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
    agent: Agent, lines: Iterable[Line], stored: dict, options: BatchOptions, summary: Summary
) -> Iterator[Outcome]:
    """Plan (in threads with an LLM server) and render (one at a time, the pipeline kept loaded) here."""
    renderer = renderer_of(agent)
    for line, planned in _plans(agent, lines, stored, options, summary.jobs):
        yield finish_line(renderer, line, planned, options)


def _plans(
    agent: Agent, lines: Iterable[Line], stored: dict, options: BatchOptions, jobs: int
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
        base, model=line.model or base.model, width=width, height=height, seed=seed, count=line.count or base.count
    )


def _message(exc: BaseException) -> str:
    if isinstance(exc, QiaError):
        return exc.message + (f" ({exc.hint})" if exc.hint else "")
    return f"unexpected {type(exc).__name__}: {exc}"
