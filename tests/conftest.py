"""Every test runs with its own QIA_HOME, search off and no user model settings: nothing leaks in or out.

The one way to run the CLI in a test: `qia` (a fixture) runs the real entry point in this process, `run_qia`
starts it as a real process (for exit by signal, a closed stdin, another environment)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

# The tests' models are toys: threads gain them nothing, and on a busy machine their synchronisation costs
# more than the work (measured: tests/test_feedback.py and test_imaging.py take 3x as long with torch's
# default of one thread per core). Set before torch is imported, here and in every qia the tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

pytest_plugins = ["tests.imaging_fixtures"]  # the tiny pipelines, built once per session for every module
ENV_KEYS = [k for k in os.environ if k.startswith("QIA_")]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    home = tmp_path / "qia-home"
    monkeypatch.setenv("QIA_HOME", str(home))
    monkeypatch.setenv("QIA_SEARCH", "off")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    return home


class Ran(NamedTuple):
    """What a `qia` run gave: its exit code and streams, as (code, out, err)."""

    code: int
    out: str
    err: str


@pytest.fixture
def qia(monkeypatch, capsys):
    """`qia(*ARGS, stdin=b"")` runs `qia ARGS` in this process through the real entry point (qia_cli.cli.app.main:
    its error handling and exit codes), with `stdin` as its input (bytes, or text as UTF-8). An unexpected error
    or a traceback fails the test unless `unexpected=True`."""
    from qia_cli.cli.app import main

    def run(*args: str, stdin: bytes | str = b"", unexpected: bool = False) -> Ran:
        data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
        monkeypatch.setattr(sys, "argv", ["qia", *args])
        monkeypatch.setattr(
            sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")
        )
        with pytest.raises(SystemExit) as exc:
            main()
        captured = capsys.readouterr()
        if not unexpected:
            assert "error: unexpected" not in captured.err and "Traceback" not in captured.err, captured.err
        code = exc.value.code
        return Ran(code if isinstance(code, int) else (0 if code is None else 1), captured.out, captured.err)

    return run


def _env(extra: dict | None) -> dict[str, str]:
    """This process's environment with this checkout first on PYTHONPATH, and `extra` on top."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def run_qia(
    *args: str,
    input: str | bytes | None = None,
    env: dict | None = None,
    timeout: float = 120,
    cwd=None,
    **popen,
) -> subprocess.CompletedProcess:
    """Run `python -m qia_cli ARGS` as a real process (exit codes, stdin, no TTY) with this checkout first on its
    path. `input`: text, or bytes (then the output is bytes too); `popen`: more of subprocess.run's arguments
    (stdin, stdout, preexec_fn, ...); stdout and stderr are captured unless given."""
    if input is None and "stdin" not in popen:
        input = ""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "qia_cli", *args],
        input=input,
        text=not isinstance(input, bytes),
        env=_env(env),
        timeout=timeout,
        cwd=cwd,
        **popen,
    )


def start_qia(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """Start `python -m qia_cli ARGS` and return at once (to run two side by side, or to kill one): the process,
    with this checkout first on its path; `popen`: subprocess.Popen's arguments (stdout, stderr, text, ...)."""
    return subprocess.Popen([sys.executable, "-m", "qia_cli", *args], env=_env(env), **popen)
