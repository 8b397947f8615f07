"""`qia memory ...`: what qia remembers about you (your dog, your logo, your preferred style)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from qia_cli.cli import console
from qia_cli.cli.root import app
from qia_cli.errors import EXIT_USAGE, UsageError
from qia_cli.textsafe import printable

memory_app = typer.Typer(
    help=(
        'What qia remembers about you: entities ("Biscuit is my dog"), facts and preferences. '
        "Plans recall the entries a request names. Stored in one JSON file (see `qia memory path`)."
    ),
    invoke_without_command=True,
)
app.add_typer(memory_app, name="memory")

KINDS = ("preference", "fact", "entity")


def _store():
    from qia_cli.memory.store import MemoryStore

    return MemoryStore()


def _print_json(data) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _when(value) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"


@memory_app.callback()
def memory_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:  # `qia memory`: the help, exit 0
        typer.echo(ctx.get_help())
        raise typer.Exit()


@memory_app.command("add")
def add(
    text: str = typer.Argument(..., help='What to remember, e.g. "Biscuit is my dog, a three-legged corgi".'),
    kind: str | None = typer.Option(None, "--kind", "-k", help="preference, fact or entity (default: inferred)."),
    name: list[str] | None = typer.Option(None, "--name", "-n", help="A name or alias to recall it by (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the entry as JSON."),
) -> None:
    """Remember something. Names and kind are inferred unless given."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown kind '{kind}'", hint="use one of: " + ", ".join(KINDS))
    entry = _store().add(text, kind=kind, names=name or None)  # type: ignore[arg-type]
    if as_json:
        _print_json(entry.model_dump(mode="json"))
        return
    typer.echo(entry.id)
    names = ", ".join(entry.names) or "no names"
    console.info(f"remembered {entry.id} ({entry.kind}; recalled by: {console.safe(names)})")


@memory_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON.")) -> None:
    """List what qia remembers."""
    entries = _store().list()
    if as_json:
        _print_json([e.model_dump(mode="json") for e in entries])
        return
    if not entries:
        console.info('memory is empty; add something with: qia memory add "Biscuit is my dog"')
        return
    _print_table(entries)


@memory_app.command("search")
def search(
    text: str = typer.Argument(..., help="Words to find in the entries' text and names."),
    as_json: bool = typer.Option(False, "--json", help="Print the entries found as JSON."),
) -> None:
    """Find entries by their words (case, accents and plurals do not matter): qia memory search dog."""
    entries = _store().search(text)
    if as_json:
        _print_json([e.model_dump(mode="json") for e in entries])
        return
    if not entries:
        console.info(f"no entry has '{console.safe(text.strip())}'; qia memory list shows them all")
        return
    _print_table(entries)


def _print_table(entries) -> None:
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("id", "kind", "names", "text", "uses"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(console.safe(e.id), e.kind, console.safe(", ".join(e.names)), console.safe(e.text), str(e.uses))
    console.out().print(table)


@memory_app.command("sessions")
def sessions(
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the sessions as JSON."),
) -> None:
    """List recorded plans and generations, newest first.

    A request like "like the one I made yesterday, but at night" reuses the matching session's request,
    seed and model.
    """
    records = _store().sessions(limit)
    if as_json:
        _print_json([r.model_dump(mode="json") for r in records])
        return
    if not records:
        console.info("no sessions yet: every qia plan and qia generate records one")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("id", "when", "kind", "request", "seed", "model"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            console.safe(r.id),
            _when(r.time),
            r.kind,
            Text(printable(r.request)),
            "" if r.seed is None else str(r.seed),
            console.safe(r.model or ""),
        )
    console.out().print(table)


@memory_app.command("show")
def show(
    entry_id: str = typer.Argument(..., metavar="ID", help="An id or a unique prefix of one."),
    as_json: bool = typer.Option(False, "--json", help="Print the entry as JSON."),
) -> None:
    """Show one entry."""
    entry = _store().get(entry_id)
    if as_json:
        _print_json(entry.model_dump(mode="json"))
        return
    rows = [
        ("id", entry.id),
        ("kind", entry.kind),
        ("text", entry.text),
        ("names", ", ".join(entry.names) or "-"),
        ("created", _when(entry.created)),
        ("last used", _when(entry.last_used)),
        ("uses", str(entry.uses)),
    ]
    for key, value in rows:
        typer.echo(f"{key + ':':<11}{printable(value)}")


@memory_app.command("forget")
def forget(entry_id: str = typer.Argument(..., metavar="ID", help="An id or a unique prefix of one.")) -> None:
    """Forget one entry (rm does the same)."""
    entry = _store().forget(entry_id)
    typer.echo(f"forgot {entry.id}: {printable(entry.text)}")


memory_app.command("rm", help="Forget one entry (like forget, and like qia models rm).")(forget)


@memory_app.command("clear")
def clear(yes: bool = typer.Option(False, "--yes", "-y", help="Do it without asking.")) -> None:
    """Forget every entry (session records stay)."""
    store = _store()
    if not yes:
        count = len(store.list())
        if count == 0:
            console.info("memory is already empty")
            return
        if not console.interactive():
            raise UsageError(f"refusing to clear {_entries(count)} without --yes", hint="pass --yes")
        if not typer.confirm(f"Forget all {_entries(count)}?", default=False, err=True):
            console.info("nothing cleared")
            raise typer.Exit(EXIT_USAGE)
    removed = store.clear()
    typer.echo(f"cleared {_entries(removed)}")


@memory_app.command("export")
def export(file: Path | None = typer.Argument(None, help="Write here (mode 0600) instead of stdout.")) -> None:
    """Export the memory as JSON (it can be imported on another machine)."""
    data = _store().export()
    if file is None or str(file) == "-":
        _print_json(data)
        return
    from qia_cli.fsutil import atomic_write_bytes

    try:
        atomic_write_bytes(file, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8"), mode=0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {file}: {exc.strerror or exc}") from None
    console.info(f"exported {_entries(len(data['entries']))} to {console.safe(file)}")


@memory_app.command("import")
def import_(
    file: Path = typer.Argument(..., help="A file written by `qia memory export` ('-' for stdin)."),
    replace: bool = typer.Option(False, "--replace", help="Replace the current entries instead of merging."),
) -> None:
    """Import entries from an export, or a hand-written list of {"text": ...} or plain strings;
    duplicates (same id or text) are skipped. At most 8 MB and 10,000 entries in the memory."""
    from qia_cli.memory.store import read_import

    data = read_import(file)
    added = _store().import_(data, merge=not replace)
    typer.echo(f"imported {_entries(added)}")


@memory_app.command("path")
def path() -> None:
    """Print where the memory file is (QIA_HOME moves it)."""
    typer.echo(str(_store().path))
