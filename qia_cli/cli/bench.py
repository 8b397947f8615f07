"""`qia bench`: score whether the agent acquired the context, and did no harm, against baselines.

qia bench SUITE...                         run suites (same as `qia bench run SUITE...`)
qia bench convert wise FILE --keys KEYS    WISE records + answer keys -> a reason suite
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from qia_cli.cli import common, console
from qia_cli.cli.progress import Bar, progress_bar
from qia_cli.cli.root import app
from qia_cli.errors import UsageError


class DefaultRunGroup(TyperGroup):
    """A first argument that is not a subcommand means `run`: `qia bench all` = `qia bench run all`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(
    cls=DefaultRunGroup,
    no_args_is_help=True,
    subcommand_metavar="SUITE... | COMMAND [ARGS]...",
    help=(
        "Score whether the agent acquires the context a request lacks (plan, reason, search, memory) and "
        "leaves full requests intact (ordinary), offline, against the raw request, a single-shot prompt "
        "enhancer and a single few-shot call on the same LLM. Built-in suites run their test half.\n\n"
        "qia bench all  ·  qia bench reason search --limit 5 --split dev  ·  qia bench my-suite.jsonl --json"
    ),
)
convert_app = typer.Typer(no_args_is_help=True, help="Convert external benchmark files into qia suites.")
bench_app.add_typer(convert_app, name="convert")
app.add_typer(bench_app, name="bench")


@bench_app.command("run")
def run_command(
    suites: Annotated[
        list[str],
        typer.Argument(
            help=(
                "Built-in suites (plan, reason, search, memory, ordinary, knowledge, everyday, memory_harm, all) "
                "or JSONL files."
            ),
            show_default=False,
        ),
    ],
    json_out: common.JsonOpt = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Keep each item's plan JSON, and results.jsonl (written as items finish), in this folder.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most N items per suite.", show_default=False)
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option("--sample", help="Pick the --limit items at random with this seed.", show_default=False),
    ] = None,
    split: Annotated[
        str,
        typer.Option("--split", help="Half of the built-in suites to run: dev (tune on it), test (report it) or all."),
    ] = "test",
    no_baselines: Annotated[
        bool, typer.Option("--no-baselines", help="Skip the enhance and single baselines (LLM calls); raw still runs.")
    ] = False,
    baselines: Annotated[
        str,
        typer.Option(
            "--baselines",
            help="Which LLM baselines run, comma-separated: enhance, single (e.g. --baselines single: the one "
            "the agent must not fall below, without the slow enhancer).",
        ),
    ] = "enhance,single",
    llm: common.LlmOpt = None,
    no_log: common.NoLogOpt = False,
) -> None:
    """Run benchmark suites and print scores per capability for agent, enhance, single and raw.

    Examples:

      qia bench all

      qia bench reason --split dev --no-baselines

      qia bench reason --limit 5 --json > report.json

      qia bench wise.jsonl --limit 200 --sample 1 --out plans/
    """
    from qia_cli import __version__
    from qia_cli.bench import report as reporting
    from qia_cli.bench.runner import Runner, planned
    from qia_cli.bench.suite import resolve
    from qia_cli.config import load_settings
    from qia_cli.llm.factory import make_knowledge_llm, make_llm

    chosen = tuple(dict.fromkeys(b.strip().lower() for b in baselines.split(",") if b.strip()))
    unknown = [b for b in chosen if b not in ("enhance", "single")]
    if unknown:
        raise UsageError(f"unknown baseline '{unknown[0]}'", hint="use enhance, single or both: --baselines single")
    loaded = resolve(suites, split.lower())
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the --out folder {out}: {exc.strerror or exc}") from None
    settings = load_settings({"llm": llm, "search": "off"}).settings
    model = make_llm(settings, verbose=console.state.verbose)
    model.complete("Q: ready?\nA:", max_tokens=1)  # load the weights now, not inside the first item's timings
    knowledge = make_knowledge_llm(settings, model, verbose=console.state.verbose)
    from qia_cli import paths
    from qia_cli.llm import calibration as calibrations

    # the calibration this user's plans get (saved by `qia bench calibrate`, else measured, else the default)
    calibration = calibrations.load(knowledge.info, paths.calibration_file())
    model_meta = _meta(model, reporting)
    model_meta["calibration"] = calibration.to_dict()
    if knowledge is not model:  # the model that answers knowledge questions, and on which `single` runs
        model_meta["knowledge"] = _meta(knowledge, reporting)
    # Every call from here is logged (the items run in temporary homes: the log is opened here, in the real
    # one); the baselines' calls have no stage of their own: 'bench'.
    calllog = common.open_call_log(settings, no_log)
    if calllog is not None:
        from qia_cli.calllog.record import LoggedLLM
        from qia_cli.llm import calls

        secrets = (settings.llm_api_key,)
        noted = LoggedLLM(model, calllog, default_stage=calls.BENCH, secrets=secrets)
        if knowledge is not model:
            knowledge = LoggedLLM(knowledge, calllog, default_stage=calls.BENCH, secrets=secrets)
        else:
            knowledge = noted
        model = noted

    total = planned(loaded, limit, sample)
    with progress_bar("{task.description}", description="bench", total=total) as bar:
        runner = Runner(
            model,
            settings,
            out_dir=out,
            on_item=_on_item(bar),
            baselines=() if no_baselines else chosen,
            knowledge=knowledge,
            calibration=calibration,
        )
        rows = runner.run(loaded, limit=limit, seed=sample)
    report = reporting.build(
        rows,
        suites=[s.name for s in loaded],
        model=model_meta,
        seed=sample,
        limit=limit,
        split=split.lower() if any(s.split for s in loaded) else None,
        settings={
            "llm": settings.llm,
            "llm_gaps": settings.llm_gaps,
            "llm_threads": settings.llm_threads or os.cpu_count(),
        },
        version=__version__,
    )
    if json_out:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        reporting.render(report, console.out())


@bench_app.command("calibrate")
def calibrate_command(
    llm: common.LlmOpt = None,
    split: Annotated[
        str, typer.Option("--split", help="Half of the built-in suites to measure on: dev (the default) or all.")
    ] = "dev",
    save: Annotated[
        bool, typer.Option("--save/--no-save", help="Keep the result for this model file (qia uses it from then on).")
    ] = True,
    json_out: common.JsonOpt = False,
) -> None:
    """Measure how far the planner may trust the model that answers knowledge questions.

    Asks it every question of the knowledge and ordinary suites' dev half once, replays the planner's rule
    over a grid of thresholds, and keeps those that name the most right answers while no ordinary suite is
    harmed in more than 1% of its requests. Minutes for a small model, longer for a big one.

    Examples:

      qia bench calibrate --llm ~/models/qwen2.5-1.5b-instruct-q4_k_m.gguf

      qia bench calibrate --no-save --json
    """
    from qia_cli import paths
    from qia_cli.bench import calibrate
    from qia_cli.bench.suite import load_builtin
    from qia_cli.config import load_settings
    from qia_cli.llm import calibration
    from qia_cli.llm.factory import make_knowledge_llm, make_llm

    if split.lower() not in ("dev", "all"):
        raise UsageError(f"calibrate measures on dev (or all), not '{split}'", hint="tune on dev, report test")
    settings = load_settings({"llm": llm, "search": "off"}).settings
    knowledge = make_knowledge_llm(settings, make_llm(settings, verbose=console.state.verbose))
    suites = [load_builtin(name, split.lower()) for name in ("reason", "knowledge", "ordinary", "everyday")]
    total = sum(len(s.items) for s in suites)
    with progress_bar("{task.description}", description="calibrate", total=total) as bar:
        rows = calibrate.collect(knowledge, suites, on_item=_on_item(bar))
    source = f"qia bench calibrate on the {split.lower()} split"
    result, numbers = calibrate.search(rows, source)
    if save:
        calibration.save(knowledge.info, result, paths.calibration_file())
    doc = {"model": knowledge.info.name, "calibration": result.to_dict(), "dev": numbers, "saved": save}
    if json_out:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    harm = ", ".join(f"{name} {h}/{n}" for name, (h, n) in numbers["harm"].items())
    console.out().print(
        f"{knowledge.info.name}: sure {result.sure}, agree {result.agree}, agree3 {result.agree3}, "
        f"whole {result.whole}\n{split.lower()}: {numbers['right']} right and {numbers['wrong']} wrong names, "
        f"harm {harm}" + (f"\nsaved to {paths.calibration_file()}" if save else ""),
        markup=False,
        highlight=False,
    )


def _meta(model, reporting) -> dict:
    path = getattr(model.info, "path", None)
    return {
        "name": model.info.name,
        "backend": model.info.backend,
        "file": Path(path).name if path else None,
        "sha256": reporting.sha256_12(path),
    }


def _on_item(bar: Bar | None):
    """`on_item(suite, item)`, called as each item starts: the bar counts the items done and names the
    one running. A no-op when no bar shows."""
    if bar is None:
        return lambda _suite, _item: None
    started = False

    def on_item(suite, item) -> None:
        nonlocal started
        if started:
            bar.advance()
        started = True
        bar.update(description=f"{suite} {item.id}"[:40])

    return on_item


@convert_app.command("wise")
def convert_wise_command(
    file: Annotated[
        Path, typer.Argument(help="WISE-style JSONL: id, prompt, explanation, optional domain.", show_default=False)
    ],
    keys: Annotated[
        Path,
        typer.Option("--keys", help="Answer keys JSONL: id, keys, confidence, answer_in_prompt.", show_default=False),
    ],
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the suite here (default: stdout).", show_default=False)
    ] = None,
    min_confidence: Annotated[
        str, typer.Option("--min-confidence", help="Keep keys of this confidence or higher: high, medium, low.")
    ] = "high",
) -> None:
    """Turn WISE-style records and an answer-key file into a reason suite.

    Example:

      qia bench convert wise wise.jsonl --keys wise_keys.jsonl -o /tmp/wise.jsonl
    """
    from qia_cli.bench.convert import convert_wise, write_jsonl

    result = convert_wise(file, keys, min_confidence.lower())
    text = write_jsonl(result.items, output)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    console.info(
        f"{len(result.items)} of {result.read} records converted; dropped: {result.low_confidence} below "
        f"{min_confidence} confidence, {result.answer_in_prompt} with the answer in the prompt, "
        f"{result.no_key} without keys"
    )
