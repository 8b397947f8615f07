"""Shell completion: the committed scripts are current, and TAB answers come from the real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qia_cli.cli.completions import script

ROOT = Path(__file__).resolve().parents[1]
FILES = {"bash": "qia.bash", "zsh": "_qia", "fish": "qia.fish"}
HEAVY = ("torch", "diffusers", "transformers", "llama_cpp")
CONSOLE_SCRIPT = Path(sys.executable).parent / "qia"
# Runs qia's entry point and, on the way out, reports which heavy modules got imported.
PROBE = (
    "import atexit, json, sys\n"
    f"atexit.register(lambda: sys.stderr.write('HEAVY=' + json.dumps([m for m in {HEAVY!r} if m in sys.modules])))\n"
    "from qia_cli.cli.app import main\n"
    "main()\n"
)


@pytest.mark.parametrize("shell", sorted(FILES))
def test_committed_scripts_are_current(shell):
    committed = (ROOT / "completions" / FILES[shell]).read_text(encoding="utf-8")
    assert committed == script(shell), (
        f"completions/{FILES[shell]} is stale: run `qia completions {shell} > completions/{FILES[shell]}`"
    )
    assert "_QIA_COMPLETE" in committed


def test_completions_command(qia):
    code, out, _ = qia("completions", "fish")
    assert code == 0 and out == script("fish")
    code, _, err = qia("completions", "tcsh")
    assert code == 2 and "unsupported shell" in err


def complete(env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Run the completion path in a fresh process: (answer lines, heavy modules imported)."""
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=full, stdin=subprocess.DEVNULL, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    heavy = json.loads(proc.stderr.rsplit("HEAVY=", 1)[1])
    return [line for line in proc.stdout.splitlines() if line], heavy


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("qia gen", 1, ["generate"]),
        ("qia generate --dev", 2, ["--device"]),
        ("qia generate --device c", 3, ["cuda", "cpu"]),
        ("qia completions z", 2, ["zsh"]),
        ("qia config set search_t", 3, ["search_timeout", "search_ttl"]),
        ("qia models set-default ", 3, ["llm", "image"]),
    ],
)
def test_bash_completion(words, cword, expected):
    answers, heavy = complete({"_QIA_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)})
    assert answers == expected
    assert heavy == []


def test_typer_spelling_and_other_shells():
    answers, _ = complete({"_QIA_COMPLETE": "complete_bash", "COMP_WORDS": "qia mem", "COMP_CWORD": "1"})
    assert answers == ["memory"]
    answers, _ = complete({"_QIA_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "qia inf"})
    assert len(answers) == 1 and answers[0].startswith("_arguments") and '"info"' in answers[0]
    answers, heavy = complete(
        {
            "_QIA_COMPLETE": "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            "_TYPER_COMPLETE_ARGS": "qia --no-",
        }
    )
    assert [a.split("\t")[0] for a in answers] == ["--no-color"] and heavy == []


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="the qia console script is not installed")
def test_console_script_answers():
    env = {**os.environ, "_QIA_COMPLETE": "bash_complete", "COMP_WORDS": "qia gen", "COMP_CWORD": "1"}
    proc = subprocess.run([str(CONSOLE_SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["generate"]


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists() or not shutil.which("bash"), reason="needs bash and the qia script")
def test_committed_bash_script_in_bash():
    """Source completions/qia.bash in a real bash and call its function as TAB would."""
    code = (
        f"source {ROOT / 'completions' / 'qia.bash'}\n"
        "COMP_WORDS=(qia generate --device m); COMP_CWORD=3\n"
        "_qia_completion qia\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{CONSOLE_SCRIPT.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "--norc", "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["mps"]
