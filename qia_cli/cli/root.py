"""The `qia` Typer app and its global options. Command modules register on it; `qia_cli.cli.app` imports
them all and runs it. Nothing heavy is imported here."""

from __future__ import annotations

import typer
import typer.core

from qia_cli import __version__
from qia_cli.cli import console

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
    valued = {
        name
        for p in command.params
        if getattr(p, "param_type_name", "") == "option" and not p.is_flag and not getattr(p, "count", False)
        for name in p.opts
    }
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
        from qia_cli.cli.helptext import tidy

        tidy(self, ctx)  # plain help texts, value labels only where they say something
        return super().parse_args(ctx, hoist_global_flags(self, ctx, list(args)))


app = typer.Typer(
    name="qia",
    cls=QiaGroup,
    help=(
        "Agentic image generation. qia reads your request, finds what is missing (who, what, style, "
        "time-sensitive facts, personal references), fills the gaps by reasoning, search, memory or a "
        "short question, and only then renders.\n\n"
        'Start with:  qia plan "a poster for my dog\'s birthday"   (see the plan)\n\n'
        'Then:        qia generate "a poster for my dog\'s birthday"   (plan and render)'
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
