"""`qia memory ...` in this process and as a real process (for exit codes and streams)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_qia


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("QIA_HOME", str(tmp_path))
    monkeypatch.setenv("NO_COLOR", "1")
    return tmp_path


@pytest.fixture
def mem(qia):
    """`qia memory ARGS` in this process: (code, out, err)."""
    return lambda *args: qia("memory", *args)


def qia_process(home: Path, *args: str) -> subprocess.CompletedProcess:
    return run_qia("memory", *args, env={"QIA_HOME": str(home)}, stdin=subprocess.DEVNULL, timeout=60)


def test_add_list_show_forget(mem):
    result = mem("add", "Biscuit is my dog, a three-legged corgi")
    assert result.code == 0, result.err
    entry_id = result.out.strip()
    assert entry_id.startswith("m")
    result = mem("add", "Our office is in Leeds", "--kind", "fact", "--name", "the office", "--name", "HQ")
    assert result.code == 0

    listed = json.loads(mem("list", "--json").out)
    assert [e["text"] for e in listed] == ["Biscuit is my dog, a three-legged corgi", "Our office is in Leeds"]
    assert listed[0]["names"] == ["Biscuit", "my dog"] and listed[0]["kind"] == "entity"
    assert listed[1]["names"] == ["the office", "HQ"]

    table = mem("list")
    assert table.code == 0 and entry_id in table.out and "corgi" in table.out

    shown = json.loads(mem("show", entry_id[:5], "--json").out)
    assert shown["id"] == entry_id
    assert "three-legged" in mem("show", entry_id).out

    result = mem("forget", entry_id)
    assert result.code == 0 and entry_id in result.out
    assert len(json.loads(mem("list", "--json").out)) == 1


def test_bad_input_raises_usage_errors(mem):
    assert mem("show", "mnope00").code == 2
    assert mem("forget", "mnope00").code == 2
    assert mem("add", "x", "--kind", "bogus").code == 2
    assert mem("add", "   ").code == 2


def test_clear_needs_yes(mem):
    mem("add", "Biscuit is my dog")
    result = mem("clear")
    assert result.code == 2 and "--yes" in result.err
    assert len(json.loads(mem("list", "--json").out)) == 1
    result = mem("clear", "--yes")
    assert result.code == 0 and result.out.strip() == "cleared 1 entry"
    assert json.loads(mem("list", "--json").out) == []


def test_export_import(home, tmp_path, mem):
    mem("add", "Biscuit is my dog")
    mem("add", "I prefer watercolour")
    exported = json.loads(mem("export").out)
    assert exported["schema_version"] == 1 and len(exported["entries"]) == 2

    out = tmp_path / "backup.json"
    assert mem("export", str(out)).code == 0
    assert (out.stat().st_mode & 0o777) == 0o600
    mem("clear", "--yes")
    result = mem("import", str(out))
    assert result.code == 0 and "imported 2" in result.out
    assert "imported 0" in mem("import", str(out)).out  # duplicates skipped

    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert mem("import", str(bad)).code == 2
    assert mem("import", str(tmp_path / "missing.json")).code == 2


def test_path(home, mem):
    result = mem("path")
    assert result.out.strip() == str(home / "data" / "memory.json")


def test_corrupt_file_error(home, mem):
    path = home / "data" / "memory.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{not json")
    result = mem("list")
    assert result.code == 1 and "cannot be read" in result.err
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


def test_import_refuses_an_endless_stream_and_hand_written_lists_work(home, tmp_path, mem):
    zero = qia_process(home, "import", "/dev/zero")  # used to grow until the process was killed
    assert zero.returncode == 2 and "larger than 8 MB" in zero.stderr and "Traceback" not in zero.stderr
    hand = tmp_path / "mine.json"
    hand.write_text(json.dumps([{"text": "Biscuit is my dog"}, "I prefer watercolour"]))
    result = mem("import", str(hand))
    assert result.code == 0 and result.out.strip() == "imported 2 entries"
    assert {e["kind"] for e in json.loads(mem("list", "--json").out)} == {"entity", "preference"}


def test_entries_with_control_characters_print_as_visible_escapes(home, mem):
    # A file written by an older qia (or by hand) may hold escape sequences: they must not reach the terminal.
    path = home / "data" / "memory.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"entries": [{"id": "m1", "kind": "fact", "text": "Biscuit \x1b]0;pwned\x07[/x] dog"}]}))
    for args in (("list",), ("show", "m1"), ("forget", "m1")):
        result = mem(*args)
        assert result.code == 0, result.err
        assert "\x1b" not in result.out and "\x07" not in result.out and "\\x1b" in result.out


def test_memory_sessions_lists_recorded_plans_as_json(isolated_home):
    assert run_qia("plan", "a red kite over a beach", "--no-ask", "--search", "off", "--llm", "fake").returncode == 0
    out = run_qia("memory", "sessions", "--json")
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert [r["request"] for r in records] == ["a red kite over a beach"] and records[0]["kind"] == "plan"
    text = run_qia("memory", "sessions")
    assert "a red kite over a beach" in text.stdout


def test_search_and_rm_beside_forget(mem):
    biscuit = mem("add", "Biscuit is my dog, a three-legged corgi").out.strip()
    office = mem("add", "Our office is in Leeds", "--name", "HQ").out.strip()
    mem("add", "I like watercolor illustrations", "--kind", "preference")
    for text, ids in [
        ("dogs", [biscuit]),  # plurals, case and accents folded
        ("CORGI", [biscuit]),
        ("three-legged corgi", [biscuit]),
        ("hq", [office]),  # names count too
        ("office leeds", [office]),  # every word, in any order
        ("cat", []),
    ]:
        result = mem("search", text, "--json")
        assert result.code == 0, result.err
        assert [e["id"] for e in json.loads(result.out)] == ids, text
    table = mem("search", "corgi")
    assert table.code == 0 and biscuit in table.out and office not in table.out
    found = mem("search", "cat")
    assert "no entry has 'cat'" in found.out + found.err
    assert mem("search", "  ").code == 2

    result = mem("rm", biscuit[:5])
    assert result.code == 0 and f"forgot {biscuit}" in result.out
    assert [e["id"] for e in json.loads(mem("list", "--json").out)][0] == office
    assert mem("rm", "mnope00").code == 2
    assert "rm" in mem("--help").out and "search" in mem("--help").out
