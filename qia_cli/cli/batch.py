"""`qia batch FILE`: plan and render every request of a file, headless and resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from qia_cli.cli import common, console
from qia_cli.cli.app import app


@app.command("batch")
def batch_command(
    file: Annotated[Path, typer.Argument(help="JSONL ({\"request\": ...} per line) or text (one request per line).",
                                         show_default=False)],
    model: common.ModelOpt = None,
    steps: common.StepsOpt = None,
    size: common.SizeOpt = None,
    seed: Annotated[Optional[int], typer.Option("--seed", min=0, help="Base seed: line N gets SEED+N-1 unless it sets its own (default: random, and recorded).", show_default=False)] = None,
    guidance: common.GuidanceOpt = None,
    negative: common.NegativeOpt = None,
    count: common.CountOpt = 1,
    outdir: common.OutdirOpt = None,
    device: common.DeviceOpt = None,
    dtype: common.DtypeOpt = None,
    vae: common.VaeOpt = None,
    plan_only: Annotated[bool, typer.Option("--plan-only", help="Plan every line, render nothing.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Lines planned at once with an LLM server (a local GGUF plans one at a time).")] = 1,
    shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: only every N-th request, starting at the I-th (for several machines).", show_default=False)] = None,
    json_out: common.JsonOpt = False,
    llm: common.LlmOpt = None,
    search: common.SearchOpt = None,
    no_memory: common.NoMemoryOpt = False,
) -> None:
    """Plan and render every request of FILE; write OUTDIR/results.jsonl, one record per line.

    Never asks questions (open gaps become recorded assumptions). A rerun skips the lines already
    done and retries the failed ones. Exit code 0 when every line is ok, 1 when any failed,
    2 for a file that cannot be read.

    Examples:

      qia batch prompts.txt --outdir out/

      qia batch requests.jsonl --llm openai:http://127.0.0.1:8080/v1 --jobs 4

      qia batch requests.jsonl --shard 2/4 --outdir out/shard-2
    """
    from qia_cli.agent.batch import BatchOptions, Results, llm_backend, read_lines, run_batch, select_shard
    from qia_cli.agent.run import RenderOptions
    from qia_cli.imaging.diffusers import parse_size
    from qia_cli.llm.factory import make_llm

    width = height = None
    if size:
        width, height = parse_size(size)
    common.check_device(device)
    common.check_render_choices(dtype, vae)
    lines = select_shard(read_lines(file), shard)

    flags = common.PlanFlags(None, json_out, llm, search, True, [], None, False, no_memory)
    agent = common.build_agent(flags)
    folder = Path(outdir or agent.settings.outdir or Path.cwd() / "qia-out").expanduser().absolute()
    results = Results(folder)
    agent.llm = make_llm(agent.settings, verbose=console.state.verbose)  # a bad --llm fails here, before any line
    options = BatchOptions(
        render=RenderOptions(model=model, steps=steps, guidance=guidance, width=width, height=height, count=count,
                             negative=negative, device=device, dtype=dtype, vae=vae, outdir=folder),
        plan_only=plan_only, jobs=jobs, seed=seed,
    )
    if jobs > 1 and llm_backend(agent) != "openai":
        console.info(f"[dim]note: --jobs {jobs} applies to LLM servers; the planner {agent.llm.info.name} runs in "
                     "this process and plans one line at a time (rendering is always one at a time)[/dim]")

    with _BatchProgress(bar=not json_out) as progress:
        summary = run_batch(agent, lines, results, options, on_start=progress.start, on_result=progress.advance)

    if json_out:
        import json
        import sys

        sys.stdout.write(json.dumps(summary.as_dict(), indent=2) + "\n")
    else:
        skipped = f", {summary.skipped} already done" if summary.skipped else ""
        console.out().print(f"{summary.ok} ok, {summary.failed} failed{skipped} of {summary.total} → {summary.results}",
                            highlight=False, soft_wrap=True)
    if summary.aborted is not None:
        raise summary.aborted
    if summary.failed:
        raise typer.Exit(1)


class _BatchProgress:
    """A Rich bar on stderr (done, failed, left, ETA) on a terminal; one log line per request otherwise
    (with --json too: stdout stays one document). --quiet shows neither."""

    def __init__(self, bar: bool) -> None:
        self.enabled = not console.state.quiet
        self.want_bar = bar and self.enabled and console.stderr_is_tty()
        self.bar = None
        self.task = None
        self.ok = self.failed = self.left = 0

    def __enter__(self):
        if self.want_bar:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[green]{task.fields[ok]} ok[/green] · [red]{task.fields[failed]} failed[/red] · {task.fields[left]} left"),
                TextColumn("ETA"), TimeRemainingColumn(), console=console.err(),
            )
            self.bar.start()
        return self

    def start(self, todo: int, skipped: int) -> None:
        self.left = todo
        if skipped and self.enabled:
            console.info(f"[dim]{skipped} line(s) already done: skipped[/dim]")
        if self.bar is not None:
            self.task = self.bar.add_task("batch", total=todo, ok=0, failed=0, left=todo)

    def advance(self, record: dict) -> None:
        self.left -= 1
        if record["status"] == "ok":
            self.ok += 1
        else:
            self.failed += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, ok=self.ok, failed=self.failed, left=self.left)
            if record["status"] != "ok":
                self.bar.console.print(f"[red]line {record['line']}:[/red] {record['error']}", markup=True,
                                       highlight=False, soft_wrap=True)
        elif self.enabled:
            what = record["error"] if record["status"] != "ok" else ", ".join(o["path"] for o in record["outputs"]) or "planned"
            console.err().print(f"line {record['line']}: {record['status']}: {what}", markup=False, highlight=False,
                                soft_wrap=True)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
