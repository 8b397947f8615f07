"""The CLI's one progress bar (qia_cli/cli/progress.py): hidden unless a person watches stderr."""

from __future__ import annotations

import pytest

from qia_cli.batch.results import LineRecord
from qia_cli.cli import console
from qia_cli.cli.batch import _BatchProgress
from qia_cli.cli.progress import progress_bar, step_progress


@pytest.fixture
def tty(monkeypatch):
    monkeypatch.setattr(console, "stderr_is_tty", lambda: True)
    console._err_consoles.clear()  # a console bound to this test's stderr
    yield
    console._err_consoles.clear()


def test_hidden_without_a_terminal_with_quiet_or_when_not_asked(monkeypatch, tty):
    with progress_bar("x", enabled=False) as bar, step_progress(enabled=False) as on_step:
        assert bar is None and on_step is None
    monkeypatch.setattr(console.state, "quiet", True)
    with progress_bar("x") as bar:
        assert bar is None
    monkeypatch.setattr(console.state, "quiet", False)
    monkeypatch.setattr(console, "stderr_is_tty", lambda: False)
    with step_progress() as on_step:
        assert on_step is None


def test_steps_move_the_bar(tty):
    with step_progress() as on_step:
        assert on_step is not None
        on_step(1, 4)
        on_step(4, 4)


def record(line: int, **fields) -> LineRecord:
    return LineRecord(line=line, request="a cat", hash="0" * 16, **fields)


def test_batch_bar_counts_ok_failed_and_left(tty, capsys):
    with _BatchProgress(bar=True) as progress:
        assert progress.bar is not None
        progress.start(3, 0)
        progress.advance(record(1, status="ok"))
        progress.advance(record(2, error="no [b]model[/b]"))
        progress.workers(1, 2)
        progress.advance(record(3, status="ok"))
    err = capsys.readouterr().err
    assert "line 2: no [b]model[/b]" in err  # the error above the bar, its brackets not markup
    assert "3/3" in err and "2 ok" in err and "1 failed" in err and "0 left" in err and "1/2 workers" in err


def test_batch_without_a_bar_logs_one_line_per_request(capsys):
    with _BatchProgress(bar=True) as progress:  # stderr is not a terminal here
        assert progress.bar is None
        progress.start(1, 0)
        progress.advance(record(4, status="ok", outputs=[{"path": "out/a.png", "sidecar": "out/a.json"}]))
    assert capsys.readouterr().err == "line 4: ok: out/a.png\n"
