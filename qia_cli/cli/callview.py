"""Model calls for people: the tables of `qia logs` and of `qia plan --explain`.

Every text here can quote a request, a model's answer or a search result: each goes through console.safe().
"""

from __future__ import annotations

from typing import Any

from qia_cli.cli import console

MAX_CELL = 90

OUTCOME_STYLE = {"used": "green", "withheld": "yellow", "confirmation": "cyan", "not used": "dim", "failed": "red"}


def _short(text: Any, width: int = MAX_CELL) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _field(call: Any, name: str) -> Any:
    return call.get(name) if isinstance(call, dict) else getattr(call, name, None)


def _model_name(call: Any) -> str:
    model = _field(call, "model")
    if isinstance(model, dict):
        return model.get("name") or "?"
    return model or "?"


def _outcome(call: Any) -> str:
    """'used', or the outcome and why ('withheld: a guess ...'), as markup."""
    outcome = _field(call, "outcome")
    if outcome is None:
        return "[dim]-[/dim]"
    why = _field(call, "why")
    style = OUTCOME_STYLE.get(outcome, "")
    text = console.safe(outcome) + (f": {console.safe(_short(why, 70))}" if why else "")
    return f"[{style}]{text}[/{style}]" if style else text


def _confidence(call: Any) -> str:
    value = _field(call, "logprob")
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def _answer(call: Any) -> str:
    error = _field(call, "error")
    if error:
        return f"[red]{console.safe(_short(error, 60))}[/red]"
    return console.safe(_short(_field(call, "answer"), 60))


def calls_table(calls: list[Any], *, title: str | None = None, show_gap: bool = True):
    """One row per call: stage, gap, question, answer, log-probability and what became of the answer (the
    model too when the calls used more than one; tokens and time are in the summary line and --json)."""
    from rich.table import Table

    models = {_model_name(c) for c in calls}
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("#", style="dim", justify="right")
    table.add_column("stage")
    if show_gap:
        table.add_column("gap", style="dim")
    if len(models) > 1:
        table.add_column("model", style="dim")
    table.add_column("question", ratio=3)
    table.add_column("answer", ratio=3)
    table.add_column("logprob", justify="right")
    table.add_column("in the prompt?", ratio=3)
    for number, call in enumerate(calls, start=1):
        cells = [str(number), console.safe(_field(call, "stage"))]
        if show_gap:
            cells.append(console.safe(_field(call, "gap_id") or ""))
        if len(models) > 1:
            cells.append(console.safe(_short(_model_name(call), 24)))
        cells += [console.safe(_short(_field(call, "question"), 70)), _answer(call), _confidence(call), _outcome(call)]
        table.add_row(*cells)
    return table


def summary(calls: list[Any]) -> str:
    """'3 calls to fake · 24 tokens · 0.41 s' (markup-safe)."""
    models = sorted({_model_name(c) for c in calls})
    tokens = sum(int(_field(c, "tokens") or 0) for c in calls)
    seconds = sum(float(_field(c, "seconds") or 0) for c in calls)
    return console.safe(
        f"{len(calls)} call{'s' if len(calls) != 1 else ''} to {', '.join(models)} · {tokens} tokens · {seconds:.2f} s"
    )


def _local(stamp: str | None) -> str:
    """An ISO time in UTC as local time, to the second."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp or "").astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return stamp or ""


def print_logs(plans: list[dict[str, Any]], path: str, *, filtered: bool = False) -> None:
    """`qia logs`: each plan's header, prompt and images, then its calls."""
    out = console.out()
    safe = console.safe
    if not plans:
        console.info(
            f"no logged call matches ({safe(path)})" if filtered else f"no model calls logged yet ({safe(path)})"
        )
        return
    for plan in plans:
        when = _local(plan.get("time"))
        if plan.get("id"):
            head = f"[bold]plan {safe(plan['id'])}[/bold]  [dim]{safe(when)}[/dim]  {safe(_short(plan.get('request'), 80))}"
        else:
            head = f"[bold]call without a plan[/bold]  [dim]{safe(when)}[/dim]"
        out.print(head, markup=True, highlight=False)
        out.print(f"[dim]{summary(plan['calls'])}[/dim]", markup=True, highlight=False)
        if plan.get("error"):
            out.print(f"[red]failed:[/red] {safe(plan['error'])}", markup=True, highlight=False)
        out.print(calls_table(plan["calls"]))
        if plan.get("prompt"):
            out.print(f"[dim]prompt:[/dim] {safe(plan['prompt'])}", markup=True, highlight=False)
        for image in plan.get("images") or []:
            out.print(f"[dim]image:[/dim] {safe(image)}", markup=True, highlight=False)
        out.print()


def print_explain(plan: Any, calls: list[Any]) -> None:
    """`qia plan --explain`: for each gap, the calls that tried to fill it and what became of each answer."""
    out = console.out()
    safe = console.safe
    if not calls:
        out.print("[dim]explain: no model calls; rules, memory and assumptions made this plan[/dim]", markup=True)
        return
    out.print(
        f"[bold]Why[/bold]  [dim]the model calls per gap, and what became of each answer ({summary(calls)})[/dim]",
        markup=True,
        highlight=False,
    )
    by_gap: dict[str | None, list[Any]] = {}
    for call in calls:
        by_gap.setdefault(_field(call, "gap_id"), []).append(call)
    for gap in plan.gaps:
        mine = by_gap.pop(gap.id, [])
        head = f"[bold]{safe(gap.id)}[/bold] {safe(gap.kind)} → {safe(gap.action)}: {safe(gap.description)}"
        if not mine:
            filled = "filled" if gap.filled else "open"
            out.print(f"{head}  [dim](no model call; {filled})[/dim]", markup=True, highlight=False)
            continue
        out.print(head, markup=True, highlight=False)
        out.print(calls_table(mine, show_gap=False))
    rest = [c for calls_ in by_gap.values() for c in calls_]
    if rest:
        out.print("[bold]other calls[/bold] [dim](not for one gap)[/dim]", markup=True)
        out.print(calls_table(rest))
