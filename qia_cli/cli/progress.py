"""The one progress bar of the CLI: Rich, on stderr, only on a terminal and never with --quiet.

`progress_bar` serves `qia batch` and `qia bench`; `step_progress` is the denoising bar of
`qia generate` and `qia chat`. Rich is imported only when a bar is really shown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from qia_cli.cli import console

StepCallback = Callable[[int, int], None]


class Bar:
    """One task of a Rich Progress: `update` its fields, `advance` it, `print` markup above it."""

    def __init__(self, progress: Any, task: Any) -> None:
        self.progress, self.task = progress, task

    def update(self, **fields: Any) -> None:
        self.progress.update(self.task, **fields)

    def advance(self, steps: int = 1) -> None:
        self.progress.advance(self.task, steps)

    def print(self, markup: str) -> None:
        self.progress.console.print(markup, markup=True, highlight=False, soft_wrap=True)


def shown(enabled: bool = True) -> bool:
    """Whether a bar would show: asked for, stderr is a terminal, and no --quiet."""
    return enabled and not console.state.quiet and console.stderr_is_tty()


@contextlib.contextmanager
def progress_bar(
    label: str,
    *,
    enabled: bool = True,
    total: int | None = None,
    stats: str | None = None,
    eta: bool = False,
    transient: bool = True,
    description: str | None = None,
    **fields: Any,
) -> Iterator[Bar | None]:
    """A bar `LABEL ━━━━ 3/10 [STATS] 0:00:12` (or `ETA 0:01:40` with `eta`) while the block runs;
    None when it would not show (see `shown`). `label` and `stats` may name the task's `fields` and
    `{task.description}` (which starts as `description`, else `label`)."""
    if not shown(enabled):
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns: list[Any] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if stats:
        columns.append(TextColumn(stats))
    if eta:
        from rich.progress import TimeRemainingColumn

        columns += [TextColumn("ETA"), TimeRemainingColumn()]
    else:
        columns.append(TimeElapsedColumn())
    with Progress(*columns, console=console.err(), transient=transient) as progress:
        yield Bar(progress, progress.add_task(description or label, total=total, **fields))


@contextlib.contextmanager
def step_progress(label: str = "rendering", *, enabled: bool = True) -> Iterator[StepCallback | None]:
    """The denoising bar: yields `on_step(step, total)` for the render, or None when no bar shows."""
    with progress_bar(label, enabled=enabled) as bar:
        if bar is None:
            yield None
        else:
            yield lambda step, total: bar.update(completed=step, total=total)
