"""Shared console state for the CLI: stdout for results, stderr for everything else.

Rich is imported lazily by callers; this module only holds options set by the global flags.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass
class UIState:
    verbose: bool = False
    quiet: bool = False
    no_color: bool = False


state = UIState()


def _color_off() -> bool:
    return state.no_color or bool(os.environ.get("NO_COLOR"))


def _style_args() -> dict:
    # Rich's no_color drops colours but keeps bold and dim; with colour off, emit no escapes at all.
    return {"no_color": True, "color_system": None} if _color_off() else {"no_color": False}


def out():
    """Console for results (stdout)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, **_style_args())


_err_consoles: dict[bool, object] = {}


def err():
    """Console for progress, warnings and errors (stderr).

    One shared console per colour mode: a progress bar redirects only its own console's prints above
    the bar, so notes printed while it runs ("loading MODEL") must go through the same object.
    It writes to whatever sys.stderr is at the time of printing.
    """
    from rich.console import Console

    key = _color_off()
    if key not in _err_consoles:
        _err_consoles[key] = Console(stderr=True, highlight=False, **_style_args())
    return _err_consoles[key]


def safe(text: object) -> str:
    """Untrusted text (a request, a file name, a search result) for Rich markup: its own brackets are
    escaped and control characters show as visible escapes instead of reaching the terminal."""
    from rich.markup import escape

    from qia_cli.textsafe import printable

    return escape(printable(str(text)))


def info(message: str) -> None:
    """Progress and notes for people; silenced by --quiet. `message` is markup: pass untrusted parts
    through safe()."""
    if not state.quiet:
        from qia_cli.textsafe import printable

        err().print(printable(message), soft_wrap=True)  # no hard wraps: paths and commands stay copy-pastable


def warn(message: str) -> None:
    """A warning in plain text (not markup): it often quotes a request, a query or a path."""
    if not state.quiet:
        err().print(f"[yellow]warning:[/yellow] {safe(message)}", markup=True, highlight=False, soft_wrap=True)


def error(message: str, hint: str | None = None) -> None:
    """One error line (and a hint line) in plain text, whatever characters the message quotes."""
    e = err()
    e.print(f"[bold red]error:[/bold red] {safe(message)}", markup=True, highlight=False, soft_wrap=True)
    if hint:
        e.print(f"[dim]hint:[/dim] {safe(hint)}", markup=True, highlight=False, soft_wrap=True)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def interactive() -> bool:
    """True when a person is at the terminal: stdin and stdout are both TTYs."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
