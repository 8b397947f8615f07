"""The `qia` Typer app and its global options. Command modules register on it; `qia_cli.cli.app` imports
them all and runs it. Nothing heavy is imported here."""

from __future__ import annotations

import typer

from qia_cli import __version__
from qia_cli.cli import console

app = typer.Typer(
    name="qia",
    help=(
        "Agentic image generation. qia reads your request, finds what is missing (who, what, style, "
        "time-sensitive facts, personal references), fills the gaps by reasoning, search, memory or a "
        "short question, and only then renders.\n\n"
        "Start with:  qia plan \"a poster for my dog's birthday\"   (see the plan)\n\n"
        "Then:        qia generate \"a poster for my dog's birthday\"   (plan and render)"
    ),
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qia {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and llama.cpp logs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print results only: no progress, notes or warnings."),
    no_color: bool = typer.Option(False, "--no-color", help="No colour (NO_COLOR is respected too)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    console.state.verbose = verbose
    console.state.quiet = quiet
    console.state.no_color = no_color
    if ctx.invoked_subcommand is None:
        if console.interactive():
            from qia_cli.cli.chat import run_chat

            run_chat()
        else:
            typer.echo(ctx.get_help())
        raise typer.Exit()
