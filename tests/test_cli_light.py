"""Global CLI behaviour: help and completion stay light (no torch, diffusers, transformers, llama_cpp, ray, and no
sqlite: the call log is opened only by the commands that use it),
NO_COLOR / --no-color mean no escape codes at all, --quiet leaves only results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_qia

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "transformers", "llama_cpp", "ray")

LIGHT = f"""
import json, os, sys
from qia_cli.cli.app import app, main

def run(args):
    try:
        app(args, prog_name="qia", standalone_mode=False)
    except SystemExit:
        pass

for args in (["--help"], ["plan", "--help"], ["generate", "--help"], ["config", "show"], ["models", "list"],
             ["info", "--help"], ["batch", "--help"], ["completions", "bash"], ["logs", "--help"], ["logs", "path"]):
    run(args)
os.environ.update(_QIA_COMPLETE="bash_complete", COMP_WORDS="qia generate --device ", COMP_CWORD="3")
sys.argv = ["qia"]
try:
    main()
except SystemExit:
    pass
print("HEAVY=" + json.dumps([m for m in {HEAVY!r} + ("sqlite3",) if m in sys.modules]))
"""


def test_help_config_models_and_completion_import_nothing_heavy(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_CACHE": str(tmp_path / "hub")}
    proc = subprocess.run(
        [sys.executable, "-c", LIGHT], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: qia plan" in proc.stdout and "--device" in proc.stdout  # the commands really ran
    assert "\nauto\ncuda\nmps\ncpu\n" in proc.stdout  # the completion answered
    heavy = json.loads(proc.stdout.rsplit("HEAVY=", 1)[1])
    assert heavy == [], f"imported by help/config/models/completion: {heavy}"


ESC = "\x1b["


def test_no_color_means_no_escape_codes_even_on_a_forced_terminal():
    forced = {"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1", "COLUMNS": "100"}
    # Control: with colour allowed, a forced terminal does get escape codes (so the checks below can fail).
    colored = run_qia("config", "set", "stepz", "1", env={**forced, "NO_COLOR": ""})
    assert colored.returncode == 2 and ESC in colored.stderr

    for env, flags in (({**forced, "NO_COLOR": "1"}, []), ({**forced, "NO_COLOR": ""}, ["--no-color"])):
        error = run_qia(*flags, "config", "set", "stepz", "1", env=env)
        assert error.returncode == 2 and "error: unknown setting 'stepz'" in error.stderr
        helped = run_qia(*flags, "--help", env=env)
        assert helped.returncode == 0 and "Usage" in helped.stdout
        shown = run_qia(*flags, "config", "show", env=env)
        assert shown.returncode == 0 and "config file" in shown.stderr
        for text in (error.stdout, error.stderr, helped.stdout, helped.stderr, shown.stdout, shown.stderr):
            assert ESC not in text


def test_quiet_prints_results_only():
    loud = run_qia("config", "show")
    quiet = run_qia("--quiet", "config", "show")
    assert "config file" in loud.stderr
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == loud.stdout
