"""Every test runs with its own QIA_HOME, search off and no user model settings: nothing leaks in or out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ENV_KEYS = [k for k in os.environ if k.startswith("QIA_")]


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


def run_qia(*args: str, input: str | None = None, env: dict | None = None, timeout: float = 120, cwd=None):
    """Run `python -m qia_cli ARGS` as a real process (exit codes, stdin, no TTY)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "qia_cli", *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )
