"""The `qia` command. Thin: commands parse flags, call the agent and render the output.

Nothing heavy is imported here: `qia --help` must not import torch, diffusers or llama_cpp.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer
import typer.core

from qia_cli import __version__
from qia_cli.cli import console
from qia_cli.errors import EXIT_INTERRUPT, EXIT_USAGE, QiaError, home_error

GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet", "--no-color")


def hoist_global_flags(group, ctx, args: list[str]) -> list[str]:
    """`qia plan "a cat" -v` works like `qia -v plan "a cat"`: the global flags found after the
    subcommand move in front of it. Not after `--`, and not where they are the value of an option
    (`--answer -v`)."""
    command, i = group, 0  # (duck-typed: typer may vendor its own click)
    while i < len(args) and hasattr(command, "get_command"):  # find the command that runs
        if args[i] == "--":
            return args
        if args[i].startswith("-"):
            i += 1
            continue
        command = command.get_command(ctx, args[i])
        i += 1
        if command is None:
            return args
    if command is group or command is None:
        return args
    valued = {name for p in command.params
              if getattr(p, "param_type_name", "") == "option" and not p.is_flag and not getattr(p, "count", False)
              for name in p.opts}
    own = {name for p in command.params for name in getattr(p, "opts", [])}
    hoisted, rest, j = [], args[:i], i
    while j < len(args):
        arg = args[j]
        if arg == "--":
            rest += args[j:]
            break
        if arg in valued:
            rest += args[j : j + 2]
            j += 2
            continue
        if arg in GLOBAL_FLAGS and arg not in own:
            hoisted.append(arg)
        else:
            rest.append(arg)
        j += 1
    return hoisted + rest


class QiaGroup(typer.core.TyperGroup):
    def parse_args(self, ctx, args):
        return super().parse_args(ctx, hoist_global_flags(self, ctx, list(args)))


app = typer.Typer(
    name="qia",
    cls=QiaGroup,
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
    console.error(exc.message, exc.hint)
    if console.state.verbose:
        traceback.print_exc()


def _plain_help_if_no_color() -> None:
    """NO_COLOR / --no-color reach Typer's help too (it builds its own rich console)."""
    if os.environ.get("NO_COLOR") or "--no-color" in sys.argv[1:]:
        import typer.rich_utils

        typer.rich_utils.COLOR_SYSTEM = None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the flush at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def stop_cleanly_on_signals() -> None:
    """SIGTERM and SIGHUP (a closed terminal, a job manager) unwind like Ctrl-C does, so that the cleanup
    that runs then (no half-written image, no claimed empty file) runs too; the exit code is 128+N."""
    import signal

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, stop)
        except (ValueError, OSError):  # not the main thread, or not allowed here
            pass


def main() -> None:
    """Entry point: one clear line and an exit code for expected failures, 130 on Ctrl-C."""
    stop_cleanly_on_signals()
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
        usage = home_error(exc)
        if usage is not None:
            report_error(usage)
            sys.exit(usage.exit_code)
        if isinstance(exc, BrokenPipeError):  # `qia ... | head`: the reader left; say nothing more
            _silence_stdout()
            sys.exit(1)
        if isinstance(exc, OSError) and not console.state.verbose:  # a full disk, a closed stream: not a bug
            where = f": {exc.filename}" if exc.filename else ""
            console.error(f"{exc.strerror or exc}{where}")
            _silence_stdout()
            sys.exit(1)
        if console.state.verbose:
            raise
        console.err().print(f"[bold red]error:[/bold red] unexpected {type(exc).__name__}: {console.safe(exc)}", markup=True, highlight=False)
        console.err().print("[dim]run again with -v for the traceback, and report it[/dim]", markup=True)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
