"""`qia logs ...`: every model call qia made, in a SQLite file (modelled on simonw/llm's `llm logs`)."""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta
from typing import Annotated

import typer

from qia_cli.cli import console
from qia_cli.cli.root import app
from qia_cli.errors import UsageError

logs_app = typer.Typer(
    help=(
        "Every model call qia made: the plan and request it served, its stage (gaps, knowledge, look, search, "
        "feedback, bench), the model, the prompt, the answer and its log-probability, tokens and time, and "
        "whether the answer reached the final prompt (and if not, why). Stored in one SQLite file (`qia logs "
        "path`), kept under the logs_max_mb cap (100 MB by default).\n\n"
        "Without a subcommand: the last plan's calls."
    ),
    invoke_without_command=True,
)
app.add_typer(logs_app, name="logs")

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _log():
    from qia_cli.calllog.store import CallLog
    from qia_cli.config import load_settings

    settings = load_settings().settings
    return CallLog(max_mb=settings.logs_max_mb)


@logs_app.callback()
def logs_root(
    ctx: typer.Context,
    count: Annotated[
        int, typer.Option("--count", "-n", min=0, help="The last N plans with matching calls (0: all).")
    ] = 1,
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan", "-p", metavar="ID", help="One plan, by id or a unique prefix of it.", show_default=False
        ),
    ] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(
            "--stage",
            "-s",
            metavar="STAGE",
            help="Only these stages (repeatable, or comma-separated): gaps, knowledge, look, search, feedback, bench, other.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Only models whose name or file contains this.", show_default=False),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="Full-text search in requests, questions and answers.", show_default=False),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")
    ] = False,
) -> None:
    """Show logged model calls.

    Examples:

      qia logs

      qia logs -n 5 --stage knowledge

      qia logs -q "national flower" --json

      qia logs prune --older-than 30d
    """
    if ctx.invoked_subcommand is not None:
        return
    from qia_cli.calllog.store import Filters
    from qia_cli.cli.callview import print_logs

    stages = [s.strip() for part in stage or [] for s in part.split(",") if s.strip()] or None
    log = _log()
    plans = log.query(Filters(plan=plan, plans=0 if plan else count, stage=stages, model=model, query=query))
    if json_out:
        doc = {"database": str(log.path), "plans": plans}
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        sys.stdout.flush()
        return
    print_logs(plans, str(log.path), filtered=bool(plan or stages or model or query))


@logs_app.command("path")
def path_command() -> None:
    """Print where the call log is."""
    from qia_cli import paths

    typer.echo(str(paths.calllog_file()))


def _switch(on: bool) -> None:
    from qia_cli.config import env_var, set_file_value

    set_file_value("logs", on)
    state = "on: model calls are recorded" if on else "off: model calls are no longer recorded"
    console.info(f"call log {state} ({'qia logs off' if on else 'qia logs on'} to change it)")
    env = env_var("logs")
    if env:
        console.warn(f"{env} is set and overrides the config file")


@logs_app.command("on")
def on_command() -> None:
    """Record every model call (the default)."""
    _switch(True)


@logs_app.command("off")
def off_command() -> None:
    """Stop recording model calls (what is logged stays; prune it with `qia logs prune`)."""
    _switch(False)


def parse_duration(text: str) -> timedelta:
    match = DURATION.match(text or "")
    if not match:
        raise UsageError(f"invalid duration '{text}'", hint="a number and a unit: 30d, 12h, 2w, 90min, 45s")
    return timedelta(**{UNITS[match.group(2).lower()]: float(match.group(1))})


@logs_app.command("prune")
def prune_command(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Delete plans and calls older than this: 30d, 12h, 2w, 90min.", show_default=False
        ),
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print what was deleted as JSON.")] = False,
) -> None:
    """Delete old plans and calls, and give the space back."""
    age = parse_duration(older_than)
    log = _log()
    plans, calls = log.prune(age)
    if json_out:
        typer.echo(json.dumps({"plans": plans, "calls": calls, "older_than": older_than}))
        return
    console.info(f"pruned {plans} plan(s) and {calls} call(s) older than {console.safe(older_than)}")
