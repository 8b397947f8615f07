"""Bad input and faults (issue 15): every case ends in a normal one-line error or a warning, never in
"unexpected ... report it" or a traceback, and untrusted text never reaches the terminal raw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_qia

ROOT = Path(__file__).resolve().parents[1]


def plan_json(qia, *args: str, stdin: bytes = b"") -> dict:
    rc, out, err = qia("plan", *args, "--llm", "fake", "--json", stdin=stdin)
    assert rc == 0, err
    return json.loads(out)


# --- prompts: encoding, control characters, markup ---------------------------------------


def test_invalid_utf8_on_stdin_is_a_usage_error(qia):
    rc, out, err = qia("plan", "--llm", "fake", stdin=b"a \xff cat")
    assert rc == 2 and "not valid UTF-8" in err and "0xff" in err and out == ""


def test_invalid_utf8_in_stdin_for_generate_no_plan_fails_before_any_model(tmp_path, tiny_model):
    # was "unexpected TypeError" after the model had loaded
    proc = run_qia(
        "generate", "--no-plan", "--model", str(tiny_model), "--outdir", str(tmp_path / "out"), input=b"a \xff\xfe cat"
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "not valid UTF-8" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_argument_that_is_not_utf8_is_a_usage_error(qia):
    rc, _, err = qia("plan", "a caf\udce9 cat", "--llm", "fake")  # how Python hands over such argv bytes
    assert rc == 2 and "not valid UTF-8" in err


def test_a_bom_on_stdin_is_not_part_of_the_prompt(qia):
    assert plan_json(qia, stdin="\ufeffa red kite".encode())["request"] == "a red kite"


def test_control_characters_and_escape_sequences_are_stripped_from_the_prompt(qia):
    nasty = "a \x1b]0;pwned\x07red\x1b[2J kite\x00 in\u200b the\x9b31m sky\x07"
    plan = plan_json(qia, nasty)
    assert plan["request"] == "a red kite in the sky"
    assert not any(ch in json.dumps(plan, ensure_ascii=False) for ch in "\x1b\x07\x00\x9b\u200b")
    rc, out, err = qia("plan", nasty, "--llm", "fake")
    assert rc == 0 and "\x1b" not in out + err and "\x07" not in out + err


@pytest.mark.parametrize("prompt", ["\x1b[2J\x07", "\u200b\u200d\ufeff", " \u3164 \u2800 ", "\x00\x01\x02"])
def test_a_prompt_with_nothing_visible_is_empty(qia, prompt):
    rc, _, err = qia("plan", prompt, "--llm", "fake")
    assert rc == 2 and "the prompt is empty" in err


def test_square_brackets_in_a_prompt_are_text_not_markup(qia):
    rc, out, err = qia("plan", "a sign saying [/x] and [bold]hi", "--llm", "fake")  # was a MarkupError traceback
    assert rc == 0 and "[/x]" in out and "[bold]hi" in out


def test_errors_quoting_brackets_print_them(qia):
    rc, _, err = qia("config", "set", "[/x]", "1")  # the error line itself used to crash with a traceback
    assert rc == 2 and "unknown setting '[/x]'" in err


def test_a_prompt_that_looks_like_a_flag_gets_a_hint(qia):
    rc, _, err = qia("plan", "-a cat", "--llm", "fake")
    assert rc == 2 and "the prompt is empty" in err and 'qia plan -- "-a cat"' in err
    rc, out, _ = qia("plan", "--llm", "fake", "--json", "--", "-a cat")
    assert rc == 0 and json.loads(out)["request"] == "-a cat"


def test_a_long_request_warns_what_the_prompt_had_no_room_for(qia):
    assert qia("memory", "add", "Biscuit is my dog, a three-legged corgi")[0] == 0
    words = "my dog Biscuit " + " ".join(f"beside red bicycle{i}" for i in range(30))
    plan = plan_json(qia, words, "--no-ask")
    assert plan["prompt"].startswith(words)  # the request goes in whole
    (note,) = [w for w in plan["warnings"] if "capped" in w]
    assert "three-legged corgi" in note
    short = plan_json(qia, "my dog Biscuit on a beach", "--no-ask")
    assert "three-legged corgi" in short["prompt"] and not [w for w in short["warnings"] if "capped" in w]


# --- flags ----------------------------------------------------------------------------------


def test_global_flags_work_after_the_subcommand(qia):
    rc, out, err = qia("plan", "a cat", "--llm", "fake", "-q")
    assert rc == 0 and err == ""
    rc, out, err = qia("config", "path", "-v")
    assert rc == 0 and out.strip().endswith("config.toml")
    plan = plan_json(qia, "my dog in the snow", "--answer", "-v", "--no-ask")  # a value stays a value
    assert any(q["answer"] == "-v" for q in plan["questions"])


def test_answers_file_ids_are_checked(qia, tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"q1": "Biscuit, a corgi", "q7": "never asked"}))
    plan = plan_json(qia, "my dog in the snow", "--answers", str(answers))
    assert any("q7" in w and "ignored" in w for w in plan["warnings"])
    assert "Biscuit" in plan["prompt"]
    answers.write_text(json.dumps({"dog": "Biscuit"}))
    rc, _, err = qia("plan", "my dog", "--llm", "fake", "--answers", str(answers))
    assert rc == 2 and "'dog' is not a question or gap id" in err
    answers.write_text("[" * 100_000)
    rc, _, err = qia("plan", "my dog", "--llm", "fake", "--answers", str(answers))
    assert rc == 2 and "nested too deeply" in err


def test_extra_answer_flags_are_reported(qia):
    plan = plan_json(qia, "a red bicycle", "-a", "one", "-a", "two")
    assert any("--answer value(s) ignored" in w for w in plan["warnings"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", str(2**70)], "out of range"),
        (["--seed", "-2"], "out of range"),
        (["--seed", str(2**32 - 1), "--count", "2"], "goes past"),
        (["--model", "./no-such-pipeline"], "does not exist"),
        (["--model", "someone/never-downloaded"], "not in the Hugging Face cache"),
        (["--rounds", "2", "--scorer", "someone/no-clip"], "scorer someone/no-clip"),
        (["--size", "64x64", "-o", "/proc/qia-x.png"], "not writable"),
        (["--device", "cuda"], "not available"),  # (torch sees no GPU in the tests)
    ],
)
def test_render_inputs_fail_before_planning(qia, monkeypatch, tmp_path, tiny_model, args, message):
    from qia_cli.agent.run import Agent

    def no_planning(*a, **k):
        raise AssertionError("planned before the render inputs were checked")

    if "--device" in args:
        torch = pytest.importorskip("torch")
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    monkeypatch.setattr(Agent, "plan", no_planning)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    base = ["--model", str(tiny_model)] if "--model" not in args else []
    rc, _, err = qia("generate", "a cat", "--llm", "fake", "--outdir", str(tmp_path / "out"), *base, *args)
    assert rc == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_a_configured_size_is_checked_before_planning_too(qia, monkeypatch, tmp_path, tiny_model):
    from qia_cli.agent.run import Agent

    monkeypatch.setattr(Agent, "plan", lambda *a, **k: pytest.fail("planned first"))
    monkeypatch.setenv("QIA_WIDTH", "63")
    rc, _, err = qia("generate", "a cat", "--llm", "fake", "--model", str(tiny_model), "--outdir", str(tmp_path))
    assert rc == 2 and "multiples of 8" in err


@pytest.fixture
def tiny_model(tmp_path):
    """A pipeline folder that is complete on paper (nothing here loads it)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "safety_checker": [None, None],
    }
    (folder / "model_index.json").write_text(json.dumps(index))
    (folder / "unet").mkdir()
    return folder


def test_an_incomplete_pipeline_folder_fails_on_paper(qia, tmp_path, tiny_model):
    (tiny_model / "unet").rmdir()
    rc, _, err = qia("generate", "a cat", "--llm", "fake", "--model", str(tiny_model), "--outdir", str(tmp_path / "o"))
    assert rc == 2 and "incomplete: no unet folder" in err


def test_seed_limits_are_one_range_everywhere():
    from qia_cli.agent import run
    from qia_cli.batch import runner as batch
    from qia_cli.imaging import pipeline
    from qia_cli.seeds import MAX_SEED, check_seed, parse_seed

    assert run.MAX_SEED == batch.MAX_SEED == pipeline.MAX_SEED == MAX_SEED == 2**32 - 1
    assert check_seed(-1) is None and check_seed(None) is None and check_seed(7) == 7
    assert parse_seed("-1") is None and parse_seed("random") is None and parse_seed("12") == 12
    for bad in ("²", "1e3", "4294967296", "-5", "seven"):
        with pytest.raises(Exception) as info:
            parse_seed(bad)
        assert type(info.value).__name__ == "UsageError"


def test_a_path_with_an_unknown_home_is_a_usage_error(qia):
    rc, _, err = qia("plan", "a cat", "--llm", "fake", "--search", "fixture:~no-such-user-qia/x.json")
    assert rc == 2 and "home directory is unknown" in err


def test_a_config_file_nested_too_deeply_is_named(qia, isolated_home):
    file = isolated_home / "config" / "config.toml"
    file.parent.mkdir(parents=True)
    file.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    rc, _, err = qia("config", "show")
    assert rc == 2 and "nested too deeply" in err


def test_a_search_fixture_nested_too_deeply_is_named(qia, tmp_path):
    fixture = tmp_path / "deep.json"
    fixture.write_text("[" * 100_000)
    rc, _, err = qia("plan", "the newest phone", "--llm", "fake", "--search", f"fixture:{fixture}")
    assert rc == 2 and "nested too deeply" in err


# --- qia chat: every slash command fails like a normal error --------------------------------


class RecordingUI:
    def __init__(self) -> None:
        self.said: list[str] = []
        self.errors: list[str] = []

    def say(self, text: str, note: str = "") -> None:
        self.said.append(text)

    def note(self, text: str) -> None:
        self.said.append(text)

    def labelled(self, label: str, text: str, note: str = "", *, strong: bool = False) -> None:
        self.said.append(f"{label} {text}")

    def warning(self, text: str) -> None:
        self.said.append(text)

    def saved(self, path: str, seed: int, width: int, height: int) -> None:
        self.said.append(path)

    def entry(self, verb: str, entry_id: str, text: str) -> None:
        self.said.append(f"{verb} {entry_id} {text}")

    def error(self, message: str, hint: str | None = None) -> None:
        self.errors.append(message)

    def show_plan(self, plan) -> None:
        self.said.append(plan.prompt)

    def ask(self, text, default):
        raise EOFError

    def edit(self, text):
        raise EOFError

    def progress(self):
        import contextlib

        return contextlib.nullcontext()


@pytest.fixture
def chat(tmp_path, monkeypatch):
    from qia_cli.agent.run import Agent, RenderOptions
    from qia_cli.config import load_settings
    from qia_cli.llm.fake import FakeLLM
    from qia_cli.memory.store import MemoryStore
    from qia_cli.repl import ChatSession

    monkeypatch.chdir(tmp_path)
    agent = Agent(settings=load_settings({"llm": "fake"}).settings, memory=MemoryStore(), llm=FakeLLM())
    return ChatSession(agent, RecordingUI(), RenderOptions(outdir=tmp_path / "out"), ask=False)


def test_save_to_an_unwritable_place_is_a_normal_error(chat):
    assert chat.handle("/plan a red kite")
    chat.handle("/save /proc/qia-plan.json")  # was "unexpected FileNotFoundError ... report it"
    assert len(chat.ui.errors) == 1 and chat.ui.errors[0].startswith("cannot save the plan to /proc/qia-plan.json")


@pytest.mark.parametrize(
    "line",
    [
        "/seed ²",
        "/seed 4294967296",
        "/seed -7",
        "/steps ²",
        "/steps 0",
        "/size ²x²",
        "/size 99999999x8",
        "/model image ~no-such-user-qia/x",
        "/model llm /etc/passwd",
        "/model bogus",
        "/search maybe",
        "/memory add \x1b[2J\u200b",
        "/memory forget",
        "/memory forget mzzzzzz",
        "/memory bogus",
        "/open",
        "/gen",
        "/save /proc",
        "/undo",
        "/edit",
        "/bogus",
        "a \udcff cat",
    ],
)
def test_every_slash_command_fails_with_one_normal_line(chat, line):
    assert chat.handle(line) is True
    assert chat.ui.errors and not any(e.startswith("unexpected") for e in chat.ui.errors), chat.ui.errors


def test_seed_minus_one_is_random_in_chat(chat):
    chat.handle("/seed 12")
    assert chat.opts.seed == 12
    chat.handle("/seed -1")
    assert chat.opts.seed is None and not chat.ui.errors


def test_chat_prints_untrusted_text_escaped(chat, capsys):
    from qia_cli.cli.chat import TerminalUI

    chat.ui = TerminalUI()  # the session passes plain text; the terminal UI escapes it
    chat.handle("/memory add Biscuit [/x] is my dog")
    chat.agent.memory.path.write_text(
        json.dumps({"entries": [{"id": "m1", "kind": "fact", "text": "Biscuit \x1b]0;pwned\x07 [/x]"}]})
    )
    chat.handle("/memory")
    captured = capsys.readouterr()
    shown = captured.out.splitlines()[-1]
    assert captured.err == "" and shown.startswith("m1 fact")  # not a MarkupError
    assert "\x1b" not in shown and "\\x1b" in shown and shown.endswith("[/x]")  # printed as text


# --- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_termination_signal_while_saving_leaves_no_partial_files(tmp_path, signame):
    import signal
    import time

    code = (
        "import time\n"
        "from qia_cli.cli.app import stop_cleanly_on_signals\n"
        "from qia_cli.imaging.output import save_image\n"
        "class SlowImage:\n"
        "    def save(self, fh, **kw):\n"
        "        fh.write(b'partial'); fh.flush(); time.sleep(30)\n"
        "stop_cleanly_on_signals()\n"
        f"save_image(SlowImage(), outdir={str(tmp_path / 'out')!r}, output=None, metadata={{'qia:request': 'a cat'}},"
        " sidecar={}, name='cat')\n"
    )
    sig = getattr(signal, signame)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        # A run under nohup (or a background CI job) inherits the signal ignored, and qia rightly keeps it so;
        # a terminal's process has the default.
        preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((tmp_path / "out").glob(".cat.png.*.tmp")):
        time.sleep(0.05)  # the image is being written: its claimed name and a temp file exist
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 128 + sig
    assert list((tmp_path / "out").iterdir()) == []


# --- qia's own folders and the streams it writes to -------------------------------------------


def test_a_home_that_cannot_hold_files_is_a_normal_error(qia, tmp_path, monkeypatch):
    blocker = tmp_path / "home-is-a-file"
    blocker.write_text("x")
    monkeypatch.setenv("QIA_HOME", str(blocker))
    rc, _, err = qia("memory", "add", "Biscuit is my dog")
    assert rc == 1 and "cannot write the memory file" in err and "Not a directory" in err
    rc, _, err = qia("config", "set", "steps", "4")
    assert rc == 1 and "cannot write the config file" in err
    rc, _, err = qia("plan", "a cat", "--llm", "fake")
    assert rc == 1 and "memory file" in err and "Not a directory" in err


def test_a_lock_file_that_is_a_folder_is_a_normal_error(qia, isolated_home):
    (isolated_home / "data" / "memory.json.lock").mkdir(parents=True)
    rc, _, err = qia("memory", "add", "Biscuit is my dog")
    assert rc == 1 and "cannot write the memory file" in err
    rc, out, err = qia("plan", "a cat", "--llm", "fake", "--json")  # the plan is done: recording it is not vital
    assert rc == 0 and any("not recorded in memory" in w for w in json.loads(out)["warnings"])


def test_a_full_disk_on_stdout_and_a_closed_stdin_are_normal_errors(tmp_path):
    with open("/dev/full", "w") as full:
        proc = run_qia("plan", "a cat", "--llm", "fake", "--json", stdout=full)
    assert proc.returncode == 1 and "No space left on device" in proc.stderr and "unexpected" not in proc.stderr
    proc = run_qia("plan", "--llm", "fake", stdin=None, preexec_fn=lambda: os.close(0))
    assert proc.returncode == 2 and "stdin is closed" in proc.stderr


def test_an_editor_variable_that_cannot_be_parsed(qia, monkeypatch):
    monkeypatch.setenv("EDITOR", "vi 'x")
    monkeypatch.delenv("VISUAL", raising=False)
    rc, _, err = qia("config", "edit")
    assert rc == 2 and "No closing quotation" in err


@pytest.mark.parametrize("output", ["", "some-folder/"])
def test_an_output_file_that_names_a_folder(qia, tmp_path, tiny_model, monkeypatch, output):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "some-folder").mkdir()
    rc, _, err = qia("generate", "a cat", "--llm", "fake", "--model", str(tiny_model), "-o", output)
    assert rc == 2 and "is a folder" in err


def test_endless_answers_and_fixture_files_are_refused(qia):
    rc, _, err = qia("plan", "my dog", "--llm", "fake", "--answers", "/dev/zero")
    assert rc == 2 and "larger than" in err
    rc, _, err = qia("plan", "the newest phone", "--llm", "fake", "--search", "fixture:/dev/zero")
    assert rc == 2 and "larger than" in err
