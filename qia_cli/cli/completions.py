"""`qia completions bash|zsh|fish`: print a shell completion script.

The scripts are Typer's own. At TAB they run `qia` with `_QIA_COMPLETE=complete_<shell>` (Click's
spelling `<shell>_complete` works too), and `app.main()` answers through Typer's completion classes.
Completing never imports torch, diffusers, transformers or llama_cpp.
"""

from __future__ import annotations

import os

import typer

from qia_cli.cli.root import app

PROG = "qia"
COMPLETE_VAR = "_QIA_COMPLETE"
SHELLS = ["bash", "zsh", "fish"]


def _complete_shell(incomplete: str) -> list[str]:
    return [s for s in SHELLS if s.startswith(incomplete)]


def script(shell: str) -> str:
    """The completion script for `shell`, exactly as committed under completions/."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def prepare_env() -> None:
    """Before the app runs: when the shell asks for completions, register Typer's completion classes
    (`add_completion=False` leaves them out) and accept Click's `bash_complete` spelling as well as
    Typer's `complete_bash`."""
    instruction = os.environ.get(COMPLETE_VAR, "")
    if not instruction:
        return
    from typer._completion_classes import completion_init

    completion_init()
    first, _, second = instruction.partition("_")
    if first in SHELLS and second in {"complete", "source"}:
        os.environ[COMPLETE_VAR] = f"{second}_{first}"


@app.command("completions")
def completions_command(
    shell: str = typer.Argument(..., help="bash, zsh or fish.", autocompletion=_complete_shell, show_default=False),
) -> None:
    """Print a shell completion script (commands, options and some values).

    Install:

      bash:  qia completions bash > ~/.local/share/bash-completion/completions/qia

      zsh:   qia completions zsh > ~/.zfunc/_qia   (with fpath+=(~/.zfunc) before compinit)

      fish:  qia completions fish > ~/.config/fish/completions/qia.fish
    """
    from qia_cli.errors import UsageError

    if shell not in SHELLS:
        raise UsageError(f"unsupported shell '{shell}'", hint="choose one of: " + ", ".join(SHELLS))
    typer.echo(script(shell), nl=False)
