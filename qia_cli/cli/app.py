"""The `qia` command. Thin: commands parse flags, call the agent and render the output.

Nothing heavy is imported here: `qia --help` must not import torch, diffusers or llama_cpp.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

from qia_cli import __version__
from qia_cli.cli import console
from qia_cli.errors import EXIT_INTERRUPT, EXIT_USAGE, QiaError

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


def _register() -> None:
    from qia_cli.cli import plan as _plan  # noqa: F401  (registers commands on import)

    for module in ("generate", "memory", "config_cmd", "info", "models", "completions", "bench", "batch", "chat"):
        try:
            __import__(f"qia_cli.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"qia_cli.cli.{module}":
                raise


_register()


def report_error(exc: QiaError) -> None:
    from rich.markup import escape

    err = console.err()
    err.soft_wrap = True
    err.print(f"[bold red]error:[/bold red] {escape(exc.message)}", markup=True, highlight=False)
    if exc.hint:  # escaped: 'pip install "qia-cli[ray]"' is text, not markup
        err.print(f"[dim]hint:[/dim] {escape(exc.hint)}", markup=True, highlight=False)
    if console.state.verbose:
        traceback.print_exc()


def _plain_help_if_no_color() -> None:
    """NO_COLOR / --no-color reach Typer's help too (it builds its own rich console)."""
    if os.environ.get("NO_COLOR") or "--no-color" in sys.argv[1:]:
        import typer.rich_utils

        typer.rich_utils.COLOR_SYSTEM = None


def main() -> None:
    """Entry point: one clear line and an exit code for expected failures, 130 on Ctrl-C."""
    try:
        from qia_cli.cli.completions import COMPLETE_VAR, prepare_env

        prepare_env()  # shell completion (TAB) exits inside app() below, before any command runs
        _plain_help_if_no_color()
        rc = app(prog_name="qia", complete_var=COMPLETE_VAR, standalone_mode=False)
    except QiaError as exc:
        report_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.err().print("interrupted")
        sys.exit(EXIT_INTERRUPT)
    except Exception as exc:  # click's usage errors and aborts (typer may vendor its own click)
        kind = type(exc).__name__
        if kind == "Abort":
            console.err().print("interrupted")
            sys.exit(EXIT_INTERRUPT)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # a ClickException: bad flag, missing argument
            exc.show()
            sys.exit(exc.exit_code or EXIT_USAGE)
        if kind == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if console.state.verbose:
            raise
        console.err().print(f"[bold red]error:[/bold red] unexpected {type(exc).__name__}: {exc}", markup=True, highlight=False)
        console.err().print("[dim]run again with -v for the traceback, and report it[/dim]", markup=True)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
