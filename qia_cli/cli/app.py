"""The `qia` command: every command module registered in one place, and the entry point that turns errors
into one line and an exit code. Commands parse flags, call the agent and render the output.

Nothing heavy is imported here: `qia --help` must not import torch, diffusers or llama_cpp.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer
from typer._click.exceptions import ClickException

from qia_cli.cli import console
from qia_cli.cli.root import app  # noqa: F401  (the app, for tests and entry points)

# Each module registers its commands on `app` when imported; a missing one is a broken install, not a choice.
from qia_cli.cli import (  # noqa: E402,F401  isort: skip
    plan,
    generate,
    memory,
    config_cmd,
    info,
    models,
    completions,
    bench,
    batch,
    chat,
    logs,
)
from qia_cli.errors import EXIT_INTERRUPT, EXIT_USAGE, QiaError, home_error


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
    except typer.Abort:
        console.err().print("interrupted")
        sys.exit(EXIT_INTERRUPT)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except ClickException as exc:  # a bad flag, a missing argument
        exc.show()
        sys.exit(exc.exit_code or EXIT_USAGE)
    except Exception as exc:
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
        console.err().print(
            f"[bold red]error:[/bold red] unexpected {type(exc).__name__}: {console.safe(exc)}",
            markup=True,
            highlight=False,
        )
        console.err().print("[dim]run again with -v for the traceback, and report it[/dim]", markup=True)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
