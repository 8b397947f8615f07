"""`qia batch FILE`: plan and render every request of a file, headless and resumable."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qia_cli import paths
from qia_cli.cli import common, console
from qia_cli.cli.progress import Bar, progress_bar
from qia_cli.cli.root import app
from qia_cli.errors import EXIT_INTERRUPT, BatchStopped, QiaError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from qia_cli.batch.results import LineRecord


@app.command("batch")
def batch_command(
    file: Annotated[
        Path,
        typer.Argument(help='JSONL ({"request": ...} per line) or text (one request per line).', show_default=False),
    ],
    model: common.ModelOpt = None,
    steps: common.StepsOpt = None,
    size: common.SizeOpt = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help=f"Base seed: line N gets SEED+N-1 unless it sets its own ({common.SEED_HELP}, recorded).",
            show_default=False,
        ),
    ] = None,
    guidance: common.GuidanceOpt = None,
    negative: common.NegativeOpt = None,
    count: common.CountOpt = 1,
    outdir: common.OutdirOpt = None,
    device: common.DeviceOpt = None,
    dtype: common.DtypeOpt = None,
    vae: common.VaeOpt = None,
    plan_only: Annotated[bool, typer.Option("--plan-only", help="Plan every line, render nothing.")] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            max=64,
            help="Lines planned at once with an LLM server (a local GGUF plans one at a time).",
        ),
    ] = 1,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Only every N-th request, starting at the I-th (for several machines).",
            show_default=False,
        ),
    ] = None,
    json_out: common.JsonOpt = False,
    llm: common.LlmOpt = None,
    search: common.SearchOpt = None,
    no_memory: common.NoMemoryOpt = False,
    no_log: common.NoLogOpt = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help='Run on Ray: local (this machine), auto (the running cluster), ray://HOST:PORT (Ray Client), or off. Needs pip install "qia-cli[ray]". Env: QIA_RAY.',
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=4096,
            help="With --ray: render actors (default: one per GPU, or one per node without GPUs).",
            show_default=False,
        ),
    ] = None,
    shared_outdir: Annotated[
        bool,
        typer.Option(
            "--shared-outdir",
            help="With --ray: OUTDIR is mounted at the same path on every node; workers write images there instead of sending them back.",
        ),
    ] = False,
) -> None:
    """Plan and render every request of FILE; write OUTDIR/results.jsonl, one record per line.

    Never asks questions (open gaps become recorded assumptions). A rerun skips the lines already
    done and retries the failed ones. Exit code 0 when every line is ok, 1 when any failed,
    2 for a file that cannot be read, 3 when the batch stopped before its end.

    Examples:

      qia batch prompts.txt --outdir out/

      qia batch requests.jsonl --llm openai:http://127.0.0.1:8080/v1 --jobs 4

      qia batch requests.jsonl --shard 2/4 --outdir out/shard-2

      qia batch requests.jsonl --ray auto --outdir out/
    """
    from qia_cli.agent.run import RenderOptions
    from qia_cli.batch.lines import BatchFile
    from qia_cli.batch.results import Results
    from qia_cli.batch.runner import BatchOptions, run_batch
    from qia_cli.imaging.pipeline import parse_size
    from qia_cli.llm.factory import make_llm
    from qia_cli.llm.registry import capabilities

    width = height = None
    if size:
        width, height = parse_size(size)
    common.check_device(device)
    seed = common.check_seed(seed)
    common.check_render_choices(dtype, vae)
    lines = BatchFile(file, shard)  # every line checked now; read again, a line at a time, as the batch goes

    if ray not in (None, "off"):
        from qia_cli.batch.ray_runner import check_address

        check_address(ray)
    flags = common.PlanFlags(None, json_out, llm, search, True, [], None, False, no_memory, no_log=no_log)
    agent = common.build_agent(flags, {"ray": ray})
    address = _ray_address(agent, workers, shared_outdir)
    folder = Path(outdir or agent.settings.outdir or paths.default_outdir()).expanduser().absolute()
    render = RenderOptions(
        model=model,
        steps=steps,
        guidance=guidance,
        width=width,
        height=height,
        count=count,
        negative=negative,
        device=device,
        dtype=dtype,
        vae=vae,
        outdir=folder,
    )
    if not plan_only:  # every render input fails here, before any line is planned (as in generate)
        _check_render(agent, render, lines, file, here=address is None or address == "local")
    results = Results(folder)
    agent.llm = make_llm(agent.settings, verbose=console.state.verbose)  # a bad --llm fails here, before any line
    options = BatchOptions(render=render, plan_only=plan_only, jobs=jobs, seed=seed)
    if jobs > 1 and not capabilities(agent.llm).parallel and address is None:
        console.info(
            f"[dim]note: --jobs {jobs} applies to LLM servers; the planner {agent.llm.info.name} runs in "
            "this process and plans one line at a time (rendering is always one at a time)[/dim]"
        )

    run = functools.partial(run_batch, agent, lines, results, options)
    progress = _BatchProgress(bar=not json_out)
    try:
        summary = _run(run, address, workers, shared_outdir, progress)
    except KeyboardInterrupt:
        progress.interrupted(results.path)
        raise typer.Exit(EXIT_INTERRUPT) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # the run crashed: exit 3, not the 1 of failed lines
        raise _stopped(exc, results.path) from exc
    _print_summary(summary, json_out)
    if summary.aborted is not None:
        raise _stopped(summary.aborted, results.path)
    if summary.failed:
        raise typer.Exit(1)


def _stopped(exc: Exception, results: Path) -> BatchStopped:
    """The error of a batch that stopped before its end (exit 3): its own message, or an unexpected one."""
    if isinstance(exc, QiaError):
        return BatchStopped(exc.message, hint=exc.hint or f"a rerun resumes (records in {results})")
    if console.state.verbose:
        raise exc  # the traceback, as for any unexpected error
    from qia_cli.errors import first_line

    return BatchStopped(
        f"the batch stopped: unexpected {type(exc).__name__}: {first_line(exc)}",
        hint=f"run again with -v for the traceback, and report it; a rerun resumes (records in {results})",
    )


def _run(run, address: str | None, workers: int | None, shared_outdir: bool, progress: _BatchProgress):
    """`run(on_start=..., ...)` (run_batch with its lines) here or on Ray, with the progress shown."""
    with progress:
        run = functools.partial(run, on_start=progress.start, on_result=progress.advance, on_other=progress.other)
        if address is None:
            return run()
        from qia_cli.batch.ray_runner import Cluster, RayOptions, RayRunner

        with Cluster(address, verbose=console.state.verbose) as cluster:
            ray_options = RayOptions(workers=workers, shared_outdir=shared_outdir, on_workers=progress.workers)
            return run(runner=RayRunner(cluster, ray_options))


def _check_render(agent, render, lines, file: Path, *, here: bool) -> None:
    """What `generate` checks before it plans, for the lines' render options: the default model (when a
    line uses it) and each model a line names, the size, the seed, OUTDIR and the device. On a Ray
    cluster (not `local`) the models and the device are the workers', so only the rest is checked here."""
    import dataclasses

    from qia_cli.errors import ModelError

    if not here:
        render = dataclasses.replace(render, device="auto")
    named: dict[str, int] = {}  # each model a line names (the first 64), with the first line that names it
    default = False  # a line uses the default model
    for line in lines:
        if line.model is None:
            default = True
        elif len(named) < 64:
            named.setdefault(line.model, line.line)
    agent.check_render(render, model_too=here and default)
    if here:
        for model, number in named.items():
            try:
                agent.renderer.check_model(model)
            except ModelError as exc:
                raise ModelError(f"{file}:{number}: {exc.message}", hint=exc.hint) from None


def _ray_address(agent, workers: int | None, shared_outdir: bool) -> str | None:
    """The Ray address that --ray or QIA_RAY gives (None: run here), checked, with Ray installed."""
    address = agent.settings.ray if agent.settings.ray not in (None, "off") else None
    if address is None and (workers is not None or shared_outdir):
        raise UsageError("--workers and --shared-outdir need --ray", hint="e.g. --ray local --workers 2")
    if address is not None:
        from qia_cli.batch.ray_runner import check_address, require_ray

        check_address(address)
        require_ray()  # not installed: fail now, with the install command
    return address


def _print_summary(summary, json_out: bool) -> None:
    """One JSON document on stdout, or one line for people: ok, failed, skipped, where the results are."""
    if json_out:
        import json
        import sys

        sys.stdout.write(json.dumps(summary.as_dict(), indent=2) + "\n")
    else:
        skipped = f", {summary.skipped} already done" if summary.skipped else ""
        if summary.elsewhere:
            skipped += f", {summary.elsewhere} done by another qia batch on this folder"
        ray_note = ""
        if summary.workers is not None:
            again = f", {summary.retried} line(s) sent again after a worker died" if summary.retried else ""
            ray_note = f" ({summary.workers} Ray worker(s){again})"
        console.out().print(
            f"{summary.ok} ok, {summary.failed} failed{skipped} of {summary.total} → {summary.results}{ray_note}",
            highlight=False,
            soft_wrap=True,
        )


class _BatchProgress:
    """A Rich bar on stderr (done, failed, left, ETA) on a terminal; one log line per request otherwise
    (with --json too: stdout stays one document). --quiet shows neither."""

    STATS = (
        "[green]{task.fields[ok]} ok[/green] · [red]{task.fields[failed]} failed[/red] · "
        "{task.fields[left]} left{task.fields[workers]}"
    )

    def __init__(self, bar: bool) -> None:
        self.enabled = not console.state.quiet
        self.want_bar = bar
        self.bar: Bar | None = None
        self._stack = contextlib.ExitStack()
        self.ok = self.failed = self.left = self.total = self.skipped = self.lines = 0
        self.live: int | None = None

    def __enter__(self):
        self.bar = self._stack.enter_context(
            progress_bar(
                "batch",
                enabled=self.want_bar,
                stats=self.STATS,
                eta=True,
                transient=False,
                ok=0,
                failed=0,
                left=0,
                workers="",
            )
        )
        return self

    def start(self, todo: int, skipped: int) -> None:
        self.left = self.total = todo
        self.skipped, self.lines = skipped, todo + skipped
        if skipped and self.enabled:
            console.info(f"[dim]{skipped} line(s) already done: skipped[/dim]")
        if self.bar is not None:
            self.bar.update(total=todo, left=todo)

    def advance(self, record: LineRecord) -> None:
        self.left -= 1
        if record.ok:
            self.ok += 1
        else:
            self.failed += 1
        if self.bar is not None:
            self.bar.update(advance=1, ok=self.ok, failed=self.failed, left=self.left)
            if not record.ok:
                self.bar.print(f"[red]line {record.line}:[/red] {console.safe(record.error)}")
        elif self.enabled:
            what = record.error if not record.ok else ", ".join(o.path for o in record.outputs) or "planned"
            console.err().print(
                f"line {record.line}: {record.status}: {what}", markup=False, highlight=False, soft_wrap=True
            )

    def workers(self, live: int, total: int) -> None:
        """Ray actors that are up (the rest are starting or restarting)."""
        if self.bar is not None:
            self.bar.update(workers=f" · {live}/{total} workers")
        elif self.enabled and live != self.live:
            console.err().print(f"ray: {live} of {total} worker(s) up", markup=False, highlight=False)
        self.live = live

    def other(self, line) -> None:
        """A line another `qia batch` on the same folder holds or has done: not ours to count."""
        self.left -= 1
        if self.bar is not None:
            self.total -= 1
            self.bar.update(total=self.total, left=self.left)
        elif self.enabled:
            console.err().print(
                f"line {line.line}: taken by another qia batch on this folder",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)

    def interrupted(self, results: Path) -> None:
        """After Ctrl-C (even with --quiet, like any interruption): what is done, and how to go on."""
        done, total = self.skipped + self.ok + self.failed, self.lines
        failed = f", {self.failed} failed" if self.failed else ""
        err = console.err()
        err.print(
            f"interrupted: {done} of {total} lines done ({self.ok + self.failed} in this run{failed}); "
            f"records in {results}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        err.print(
            "run the same command again to resume: it skips the lines done and retries the failed ones",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
