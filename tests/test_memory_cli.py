"""`qia memory ...` through Typer's runner and as a real process (for exit codes and streams)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qia_cli.errors import MemoryCorruptError, UsageError

ROOT = Path(__file__).resolve().parents[1]
# Until qia_cli/cli/plan.py lands (another module), app.py cannot import it; stand in for it.
PLAN_MISSING = importlib.util.find_spec("qia_cli.cli.plan") is None
STUB = "import sys, types; sys.modules.setdefault('qia_cli.cli.plan', types.ModuleType('qia_cli.cli.plan'));"

if PLAN_MISSING:
    sys.modules.setdefault("qia_cli.cli.plan", types.ModuleType("qia_cli.cli.plan"))

from qia_cli.cli.app import app  # noqa: E402

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("QIA_HOME", str(tmp_path))
    monkeypatch.setenv("NO_COLOR", "1")
    return tmp_path


def qia(*args: str, input: str | None = None):
    return runner.invoke(app, ["memory", *args], input=input)


def qia_process(home: Path, *args: str) -> subprocess.CompletedProcess:
    if PLAN_MISSING:
        cmd = [sys.executable, "-c", STUB + "from qia_cli.cli.app import main; main()"]
    else:
        cmd = [sys.executable, "-m", "qia_cli"]
    env = {**os.environ, "QIA_HOME": str(home), "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.run(
        [*cmd, "memory", *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60
    )


def test_add_list_show_forget():
    result = qia("add", "Biscuit is my dog, a three-legged corgi")
    assert result.exit_code == 0, result.output
    entry_id = result.stdout.strip()
    assert entry_id.startswith("m")
    result = qia("add", "Our office is in Leeds", "--kind", "fact", "--name", "the office", "--name", "HQ")
    assert result.exit_code == 0

    listed = json.loads(qia("list", "--json").stdout)
    assert [e["text"] for e in listed] == ["Biscuit is my dog, a three-legged corgi", "Our office is in Leeds"]
    assert listed[0]["names"] == ["Biscuit", "my dog"] and listed[0]["kind"] == "entity"
    assert listed[1]["names"] == ["the office", "HQ"]

    table = qia("list")
    assert table.exit_code == 0 and entry_id in table.stdout and "corgi" in table.stdout

    shown = json.loads(qia("show", entry_id[:5], "--json").stdout)
    assert shown["id"] == entry_id
    assert "three-legged" in qia("show", entry_id).stdout

    result = qia("forget", entry_id)
    assert result.exit_code == 0 and entry_id in result.stdout
    assert len(json.loads(qia("list", "--json").stdout)) == 1


def test_bad_input_raises_usage_errors():
    assert isinstance(qia("show", "mnope00").exception, UsageError)
    assert isinstance(qia("forget", "mnope00").exception, UsageError)
    assert isinstance(qia("add", "x", "--kind", "bogus").exception, UsageError)
    assert isinstance(qia("add", "   ").exception, UsageError)


def test_clear_needs_yes():
    qia("add", "Biscuit is my dog")
    result = qia("clear")
    assert isinstance(result.exception, UsageError) and "--yes" in result.exception.message
    assert len(json.loads(qia("list", "--json").stdout)) == 1
    result = qia("clear", "--yes")
    assert result.exit_code == 0 and result.stdout.strip() == "cleared 1 entry"
    assert json.loads(qia("list", "--json").stdout) == []


def test_export_import(home, tmp_path):
    qia("add", "Biscuit is my dog")
    qia("add", "I prefer watercolour")
    exported = json.loads(qia("export").stdout)
    assert exported["schema_version"] == 1 and len(exported["entries"]) == 2

    out = tmp_path / "backup.json"
    assert qia("export", str(out)).exit_code == 0
    assert (out.stat().st_mode & 0o777) == 0o600
    qia("clear", "--yes")
    result = qia("import", str(out))
    assert result.exit_code == 0 and "imported 2" in result.stdout
    assert "imported 0" in qia("import", str(out)).stdout  # duplicates skipped

    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert isinstance(qia("import", str(bad)).exception, UsageError)
    assert isinstance(qia("import", str(tmp_path / "missing.json")).exception, UsageError)


def test_path(home):
    result = qia("path")
    assert result.stdout.strip() == str(home / "data" / "memory.json")


def test_corrupt_file_error(home):
    path = home / "data" / "memory.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{not json")
    result = qia("list")
    assert isinstance(result.exception, MemoryCorruptError)
    assert path.read_bytes() == b"{not json"


# --- as a process: exit codes, stdout for results, stderr for errors -------------------


def test_process_exit_codes(home):
    added = qia_process(home, "add", "Biscuit is my dog")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip().startswith("m") and "remembered" in added.stderr

    refused = qia_process(home, "clear")
    assert refused.returncode == 2 and "--yes" in refused.stderr and refused.stdout == ""

    missing = qia_process(home, "show", "mzzzzzz")
    assert missing.returncode == 2 and "no memory entry" in missing.stderr

    (home / "data" / "memory.json").write_bytes(b"{not json")
    corrupt = qia_process(home, "list")
    assert corrupt.returncode == 1
    message = " ".join(corrupt.stderr.split())  # Rich wraps long lines at 80 columns off a TTY
    assert "cannot be read" in message and "memory.json.bak" in message
    assert "Traceback" not in corrupt.stderr
    assert (home / "data" / "memory.json").read_bytes() == b"{not json"

    assert qia_process(home, "path").stdout.strip() == str(home / "data" / "memory.json")
    bare = qia_process(home)
    assert bare.returncode == 0 and "forget" in bare.stdout


def test_import_refuses_an_endless_stream_and_hand_written_lists_work(home, tmp_path):
    zero = qia_process(home, "import", "/dev/zero")  # used to grow until the process was killed
    assert zero.returncode == 2 and "larger than 8 MB" in zero.stderr and "Traceback" not in zero.stderr
    hand = tmp_path / "mine.json"
    hand.write_text(json.dumps([{"text": "Biscuit is my dog"}, "I prefer watercolour"]))
    result = qia("import", str(hand))
    assert result.exit_code == 0 and result.stdout.strip() == "imported 2 entries"
    assert {e["kind"] for e in json.loads(qia("list", "--json").stdout)} == {"entity", "preference"}


def test_entries_with_control_characters_print_as_visible_escapes(home):
    # A file written by an older qia (or by hand) may hold escape sequences: they must not reach the terminal.
    path = home / "data" / "memory.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"entries": [{"id": "m1", "kind": "fact", "text": "Biscuit \x1b]0;pwned\x07[/x] dog"}]}))
    for args in (("list",), ("show", "m1"), ("forget", "m1")):
        result = qia(*args)
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\\x1b" in result.stdout


def test_memory_sessions_lists_recorded_plans_as_json(isolated_home):
    from tests.conftest import run_qia

    assert run_qia("plan", "a red kite over a beach", "--no-ask", "--search", "off", "--llm", "fake").returncode == 0
    out = run_qia("memory", "sessions", "--json")
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert [r["request"] for r in records] == ["a red kite over a beach"] and records[0]["kind"] == "plan"
    text = run_qia("memory", "sessions")
    assert "a red kite over a beach" in text.stdout


def test_search_and_rm_beside_forget():
    biscuit = qia("add", "Biscuit is my dog, a three-legged corgi").stdout.strip()
    office = qia("add", "Our office is in Leeds", "--name", "HQ").stdout.strip()
    qia("add", "I like watercolor illustrations", "--kind", "preference")
    for text, ids in [
        ("dogs", [biscuit]),  # plurals, case and accents folded
        ("CORGI", [biscuit]),
        ("three-legged corgi", [biscuit]),
        ("hq", [office]),  # names count too
        ("office leeds", [office]),  # every word, in any order
        ("cat", []),
    ]:
        result = qia("search", text, "--json")
        assert result.exit_code == 0, result.output
        assert [e["id"] for e in json.loads(result.stdout)] == ids, text
    table = qia("search", "corgi")
    assert table.exit_code == 0 and biscuit in table.stdout and office not in table.stdout
    assert "no entry has 'cat'" in qia("search", "cat").output
    assert isinstance(qia("search", "  ").exception, UsageError)

    result = qia("rm", biscuit[:5])
    assert result.exit_code == 0 and f"forgot {biscuit}" in result.stdout
    assert [e["id"] for e in json.loads(qia("list", "--json").stdout)][0] == office
    assert isinstance(qia("rm", "mnope00").exception, UsageError)
    assert "rm" in qia("--help").stdout and "search" in qia("--help").stdout
