"""Headless batch: the lines of a file -> plans -> images, one `LineRecord` per line in `results.jsonl`.

One function does a line, in two halves (`plan_line`, then `finish_line`: render and record); the local
runner here and the Ray runner (`ray_runner.py`) both call them, and only the driver (`run_batch`) writes
`results.jsonl` and the output folder. Each line is claimed in the folder (`claims.py`) before it is
planned, so a second `qia batch` on the same folder takes the lines the first has not, never the same.
No Typer or Rich here: the CLI reports progress through `on_result`.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from typing import Any, Protocol

from qia_cli.agent.planner import PlanOptions
from qia_cli.agent.run import Agent, RenderOptions
from qia_cli.agent.types import Plan
from qia_cli.batch.claims import Claims
from qia_cli.batch.lines import Line
from qia_cli.batch.results import LineIndex, LineOutput, LineRecord, Results, SavedPlans
from qia_cli.errors import ModelError, QiaError
from qia_cli.llm.registry import capabilities
from qia_cli.seeds import MAX_SEED

CHUNK = 8  # lines planned before the LLM is freed for rendering, when it holds VRAM


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

    record: LineRecord
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
    """Lines planned at once: up to `jobs` for a backend that plans in parallel (an LLM server), one for a
    local model (it runs on this machine)."""
    return max(1, jobs) if capabilities(agent.llm).parallel else 1


def run_batch(
    agent: Agent,
    lines: Iterable[Line],
    results: Results,
    options: BatchOptions,
    *,
    on_start: Callable[[int, int], None] = lambda _todo, _skipped: None,
    on_result: Callable[[LineRecord], None] = lambda _record: None,
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

        def record_line(record: LineRecord) -> None:
            results.append(record)
            claims.release(record.line)
            if record.ok:
                summary.ok += 1
            else:
                summary.failed += 1
            on_result(record)

        left = None if options.plan_only or summary.skipped == len(index) else Leftovers(outdir, index)
        feeder = _Feeder(lines, index, results, claims, options, summary, on_other, left, record_line)
        outcomes = (runner or run_local)(agent, feeder, SavedPlans(index, source), options, summary)
        try:
            for outcome in outcomes:
                if outcome.files:
                    _place(outcome, outdir)  # the record now names the files in OUTDIR
                record = outcome.record
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
        on_adopted: Callable[[LineRecord], None],
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

    def adopt(self, line: Line, pos: int, options: BatchOptions) -> LineRecord | None:
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


def _adopted(line: Line, images: list[tuple[Path, Path, dict[str, Any]]]) -> LineRecord:
    """The record a line would have got from the render that saved `images` (png, sidecar, its JSON)."""
    first = images[0][2]
    outputs = []
    for png, side, body in images:
        spec = body.get("render")
        spec = spec if isinstance(spec, dict) else {}
        number = {k: v if isinstance(v, int) and not isinstance(v, bool) else None for k, v in spec.items()}
        outputs.append(
            LineOutput(
                path=str(png),
                sidecar=str(side),
                seed=number.get("seed"),
                width=number.get("width"),
                height=number.get("height"),
            )
        )
    timings = first.get("timings")
    if not isinstance(timings, dict):
        timings = {}
    plan, render = first.get("plan"), first.get("render")
    return LineRecord.new(line).model_copy(
        update={
            "status": "ok",
            "rendered": True,
            "outputs": outputs,
            "plan": plan if isinstance(plan, dict) else None,
            "render": render if isinstance(render, dict) else None,
            "seconds": round(_number(timings.get("total")), 3),
        }
    )


def _number(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


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
        outcome.record = outcome.record.model_copy(
            update={"status": "error", "rendered": False, "outputs": [], "render": None, "error": _message(exc)}
        )
        return
    record = outcome.record.model_dump(mode="json")
    record.update(_swap({k: record[k] for k in ("outputs", "render")}, moved))
    outcome.record = LineRecord.model_validate(record)


def _log(agent: Agent, outcome: Outcome) -> None:
    """The calls a worker made (sent back with the line), and the line's plan linked to its images."""
    sink = agent.call_sink()
    if sink is None:
        return
    for plan, calls in outcome.calls:
        sink.write(plan, calls)
    record = outcome.record
    plan_id = (record.plan or {}).get("id")
    if plan_id and record.rendered:
        sink.add_images(plan_id, [o.path for o in record.outputs])


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
    record = LineRecord.new(line)
    if isinstance(planned, BaseException):
        record.error = _message(planned)
    else:
        record.plan = json.loads(planned.model_dump_json())
        if options.plan_only:
            record.status = "ok"
        else:
            try:
                render = _render_options(line, options)
                if outdir is not None:
                    render = dataclasses.replace(render, outdir=outdir)
                assert renderer is not None  # None only for plan-only lines and errors, which never render
                result = renderer.render(planned, render)
            except Exception as exc:
                record.error = _message(exc)
            else:
                record.status, record.rendered = "ok", True
                record.outputs = [LineOutput.model_validate(o.model_dump()) for o in result.outputs]
                record.render = result.render.model_dump()
    record.seconds = round(time.perf_counter() - start + getattr(planned, "timings", {}).get("total", 0.0), 3)
    stop = planned if isinstance(planned, QiaError) and _stops_batch(planned) else None
    return Outcome(record=record, stop=stop)


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
    return capabilities(agent.llm).gpu_memory and agent.settings.llm_gpu_layers != 0


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
