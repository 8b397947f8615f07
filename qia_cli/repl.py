"""The `qia chat` session logic: turns, refinements, slash commands and settings that last a session.

No prompt_toolkit or Rich here: the terminal side (qia_cli/cli/chat.py) gives a `UI`, which decides
how each kind of line looks, and feeds lines to `ChatSession.handle`. One Agent lives for the whole session, so the planner LLM and the diffusion
pipeline load once and stay loaded between turns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qia_cli.agent.run import Agent, RenderOptions
from qia_cli.agent.types import GenerateResult, Plan
from qia_cli.errors import QiaError, UsageError, home_error
from qia_cli.seeds import parse_seed
from qia_cli.textsafe import clean_input

HELP = """\
Type what to picture and press Enter: qia plans it (asking here when only you
know) and renders it. "make it night", "now as a watercolor" or "same but with
Biscuit" refines the last plan and keeps its seed (unless /seed is set).
End a line with \\ or press Esc then Enter (Alt+Enter) for a new line.
Ctrl-C cancels a render or clears the line; Ctrl-D or /quit leaves.

  /plan TEXT          plan (or refine) without rendering
  /gen                render the current plan again
  /show               the current plan: gaps, context and the final prompt
  /edit               edit the final prompt in place (then /gen renders it)
  /undo               back to the previous plan
  /seed N|random      fix the seed, or a new random one per render (default)
  /size WxH|default   image size, e.g. 768x512
  /steps N|default    denoising steps
  /model              show the models
  /model llm PATH     the planner: a GGUF file, a pulled name, bundled, or openai:URL
  /model image ID     the image model: a Hugging Face id or a local folder
  /search on|off      web search for time-sensitive facts
  /memory             list memory; /memory add TEXT, /memory search TEXT, /memory rm ID
  /open               open the last image with the system viewer
  /preview            draw the last image here (kitty, iTerm2 or sixel terminals)
  /save [FILE]        save the current plan as JSON (default ./qia-plan-TIME.json)
  /help, /quit"""

SUBCOMMANDS = {
    "/model": ["llm", "image"],
    "/search": ["on", "off"],
    "/seed": ["random"],
    "/size": ["default", "512x512", "768x512", "512x768"],
    "/steps": ["default"],
    "/memory": ["list", "add", "search", "rm", "forget"],
}


class UI(Protocol):
    """What the session shows, by kind; every argument is plain text (the UI escapes it)."""

    def say(self, text: str, note: str = "") -> None: ...  # a line, and a note in parentheses after it
    def note(self, text: str) -> None: ...  # a line that matters less (dim)
    def labelled(self, label: str, text: str, note: str = "", *, strong: bool = False) -> None: ...
    def warning(self, text: str) -> None: ...
    def saved(self, path: str, seed: int, width: int, height: int) -> None: ...
    def entry(self, verb: str, entry_id: str, text: str) -> None: ...  # a memory entry: "remembered m1a2b3 ..."
    def error(self, message: str, hint: str | None = None) -> None: ...
    def show_plan(self, plan: Plan) -> None: ...
    def ask(self, text: str, default: str | None) -> str: ...  # EOFError / KeyboardInterrupt pass through
    def edit(self, text: str) -> str: ...
    def progress(self) -> contextlib.AbstractContextManager: ...  # yields on_step(step, total) or None
    def preview(self, path: str, setting: str, *, asked: bool) -> None: ...  # draw an image, where it can


@dataclass
class ChatSession:
    agent: Agent
    ui: UI
    opts: RenderOptions = field(default_factory=RenderOptions)
    ask: bool = True
    on_plan: Callable[[Plan], object] | None = None  # e.g. offer answers for memory
    plan: Plan | None = None
    history: list[Plan] = field(default_factory=list)  # earlier plans, for /undo
    last_result: GenerateResult | None = None
    device: str | None = None  # the device the pipeline really runs on, once loaded
    search_spec: str = "ddgs"

    def __post_init__(self) -> None:
        configured = (self.agent.settings.search or "").strip()
        if configured.lower() not in {"", "off", "none", "no", "false"}:
            self.search_spec = configured
        self.commands: dict[str, Callable[[str], bool | None]] = {
            "/help": self.cmd_help,
            "/plan": self.cmd_plan,
            "/gen": self.cmd_gen,
            "/show": self.cmd_show,
            "/edit": self.cmd_edit,
            "/undo": self.cmd_undo,
            "/seed": self.cmd_seed,
            "/size": self.cmd_size,
            "/steps": self.cmd_steps,
            "/model": self.cmd_model,
            "/search": self.cmd_search,
            "/memory": self.cmd_memory,
            "/open": self.cmd_open,
            "/preview": self.cmd_preview,
            "/save": self.cmd_save,
            "/quit": self.cmd_quit,
            "/exit": self.cmd_quit,
        }

    # -- one line in ------------------------------------------------------------------------------
    def handle(self, line: str) -> bool:
        """Run one line; False when the session should end. Errors are reported, never raised."""
        try:
            text = clean_input(line, what="the line").strip()
        except QiaError as exc:
            self.ui.error(exc.message, exc.hint)
            return True
        if not text:
            return True
        try:
            if text.startswith("/"):
                name, _, arg = text.partition(" ")
                command = self.commands.get(name.lower())
                if command is None:
                    raise UsageError(f"unknown command {name}", hint="type /help for the commands")
                return command(arg.strip()) is not False
            self.turn(text, render=True)
        except KeyboardInterrupt:  # includes RenderCancelled
            self.ui.error("cancelled; the session goes on")
        except QiaError as exc:
            self.ui.error(exc.message, exc.hint)
        except OSError as exc:  # a file or folder a command named: a normal error, not a crash
            where = f": {exc.filename}" if exc.filename else ""
            self.ui.error(f"{exc.strerror or exc}{where}")
        except Exception as exc:  # one failed turn must not end the session
            usage = home_error(exc)
            if usage is not None:
                self.ui.error(usage.message, usage.hint)
                return True
            if self.agent.verbose:
                import traceback

                traceback.print_exc()
            self.ui.error(
                f"unexpected {type(exc).__name__}: {exc}", "run `qia -v chat` for the traceback, and report it"
            )
        return True

    # -- turns ----------------------------------------------------------------------------------------
    def turn(self, request: str, *, render: bool) -> None:
        from qia_cli.agent.planner import PlanOptions

        options = PlanOptions(previous=self.plan, asker=self._ask_questions if self.ask else None)
        plan = self.agent.plan(request, options, model=self.image_model())
        if self.on_plan is not None:
            self.on_plan(plan)
        self._push(plan)
        if plan.previous_prompt:
            self.ui.labelled("refines:", plan.previous_prompt)
        self.ui.labelled("prompt:", plan.prompt, strong=True)
        for warning in plan.warnings:
            self.ui.warning(warning)
        if render:
            self.render()
        else:
            self.agent.record_session(plan, [], "plan")

    def render(self) -> GenerateResult:
        plan = self._need_plan()
        opts = RenderOptions(**{**self.opts.__dict__, "seed": self._seed_for(plan)})
        cancel, noted = threading.Event(), len(plan.warnings)
        with _sigint_sets(cancel), self.ui.progress() as on_step:
            result = self.agent.render(plan, opts, on_step=on_step, cancel=cancel.is_set)
        self.last_result, self.device = result, result.device
        self.plan = result.plan  # with what rendering noted, for /show, /save and the next /gen
        self.agent.record_session(result.plan, [o.path for o in result.outputs], "generate", result.render)
        t = result.timings
        for warning in result.plan.warnings[noted:]:  # what rendering noted (e.g. feedback off)
            self.ui.warning(warning)
        for o in result.outputs:
            self.ui.saved(o.path, o.seed, o.width, o.height)
            if self.agent.settings.preview != "off":
                self.ui.preview(o.path, self.agent.settings.preview, asked=False)
        self.ui.note(
            f"plan {plan.timings.get('total', 0):.2f} s · load {t.get('load_pipeline', 0):.2f} s · "
            f"render {t.get('render', 0):.2f} s on {result.device}"
        )
        return result

    def _seed_for(self, plan: Plan) -> int | None:
        """The fixed /seed; else a refinement of the last rendered plan keeps its seed; else random."""
        if self.opts.seed is not None:
            return self.opts.seed
        last = self.last_result
        if last is not None and last.outputs and plan.previous_prompt and plan.previous_prompt == last.plan.prompt:
            return last.outputs[0].seed
        return None

    def _ask_questions(self, questions) -> dict[str, str | None]:
        """The planner's asker: inline in this session. Enter accepts the default, 'skip' leaves it open."""
        self.ui.labelled("A few questions", "", "Enter accepts the suggestion, 'skip' leaves it open", strong=True)
        answers: dict[str, str | None] = {}
        for q in questions:
            try:
                value = self.ui.ask(q.text, q.default).strip()
            except EOFError:  # Ctrl-D: no more questions; Ctrl-C cancels the whole turn
                break
            answers[q.id] = "skip" if value.lower() == "skip" else (value or q.default)
        return answers

    def _push(self, plan: Plan) -> None:
        if self.plan is not None:
            self.history.append(self.plan)
        self.plan = plan

    def _need_plan(self) -> Plan:
        if self.plan is None:
            raise UsageError("there is no plan yet", hint="type what to picture first")
        return self.plan

    # -- slash commands -------------------------------------------------------------------------
    def cmd_help(self, _arg: str) -> None:
        self.ui.say(HELP)

    def cmd_quit(self, _arg: str) -> bool:
        return False

    def cmd_plan(self, arg: str) -> None:
        if not arg:
            raise UsageError("/plan needs a request", hint="/plan a red bicycle")
        self.turn(arg, render=False)

    def cmd_gen(self, _arg: str) -> None:
        self.render()

    def cmd_show(self, _arg: str) -> None:
        self.ui.show_plan(self._need_plan())

    def cmd_edit(self, _arg: str) -> None:
        plan = self._need_plan()
        text = self.ui.edit(plan.prompt).strip()
        if not text:
            raise UsageError("the prompt is empty; nothing changed")
        if text == plan.prompt:
            self.ui.note("unchanged")
            return
        self._push(plan.model_copy(update={"prompt": text, "warnings": [*plan.warnings, "prompt edited by hand"]}))
        self.ui.labelled("prompt:", text, "/gen renders it", strong=True)

    def cmd_undo(self, _arg: str) -> None:
        if not self.history:
            raise UsageError("nothing to undo")
        self.plan = self.history.pop()
        self.ui.labelled("back to:", self.plan.prompt)

    def cmd_seed(self, arg: str) -> None:
        self.opts.seed = parse_seed(arg)  # N, or random / -1
        self.ui.say(f"seed: {self.opts.seed if self.opts.seed is not None else 'random'}")

    def cmd_size(self, arg: str) -> None:
        if arg.lower() in {"default", "auto", ""}:
            self.opts.width = self.opts.height = None
        else:
            from qia_cli.imaging.pipeline import parse_size

            self.opts.width, self.opts.height = parse_size(arg)
        self.ui.say(f"size: {self._size_text()}")

    def cmd_steps(self, arg: str) -> None:
        if arg.lower() in {"default", "auto", ""}:
            self.opts.steps = None
        elif arg.isascii() and arg.isdigit() and 1 <= int(arg) <= 500:
            self.opts.steps = int(arg)
        else:
            raise UsageError(f"steps '{arg}' is invalid", hint="/steps N (1 to 500) or /steps default")
        self.ui.say(f"steps: {self.opts.steps or 'from the model family'}")

    def cmd_model(self, arg: str) -> None:
        kind, _, value = arg.partition(" ")
        value = value.strip()
        if not kind:
            self.ui.say(f"llm: {self.llm_name()}\nimage: {self.image_model()}")
            return
        if kind not in {"llm", "image"} or not value:
            raise UsageError("usage: /model llm PATH|bundled, or /model image ID|FOLDER")
        if kind == "image":
            path = Path(value).expanduser()
            if value.startswith((".", "~", os.sep)) and not path.is_dir():
                raise UsageError(f"model folder {value} does not exist")
            self.opts.model = str(path) if path.is_dir() else value
            self.ui.say(f"image model: {self.opts.model}", "loads on the next render")
            return
        from qia_cli.llm.factory import make_llm

        settings = self.agent.settings.model_copy(update={"llm": value})
        llm = make_llm(settings, verbose=self.agent.verbose)  # a missing or non-GGUF file fails here
        try:  # a server is asked for its models now: one that is down (or refuses the key) fails here
            check = getattr(llm, "check", None)
            if check is not None:
                check()
            _ = llm.info.name
        except QiaError as exc:
            if hasattr(llm, "close"):
                llm.close()
            still = f"the planner is still {self.llm_name()}"  # nothing was swapped
            exc.hint = f"{exc.hint}; {still}" if exc.hint else still
            raise
        self.agent.set_llm(llm, settings)
        self.ui.say(f"llm: {self.llm_name()}", "loads on the next plan")

    def cmd_search(self, arg: str) -> None:
        low = arg.lower()
        if low in {"on", "off"}:
            backend = None
            if low == "on":
                from qia_cli.search.service import make_backend

                backend = make_backend(self.search_spec, timeout=self.agent.settings.search_timeout)
            self.agent.set_search(backend)
        elif low:
            raise UsageError(f"/search {arg}: use on or off")
        self.ui.say(f"search: {self.search_text()}")

    def cmd_memory(self, arg: str) -> None:
        from qia_cli.memory.store import MemoryStore

        store = self.agent.memory
        if not isinstance(store, MemoryStore):
            raise UsageError("memory is off in this session", hint="start qia chat without --no-memory")
        action, _, rest = arg.partition(" ")
        action, rest = action.lower() or "list", rest.strip()
        if action == "list":
            entries = store.list()
            if not entries:
                self.ui.note("memory is empty; /memory add Biscuit is my dog, a corgi")
            for e in entries:
                self.ui.entry("", e.id, f"{e.kind:<10} {e.text}")
        elif action == "add":
            entry = store.add(rest)
            self.ui.entry("remembered", entry.id, entry.text)
        elif action == "search":
            found = store.search(rest)
            if not found:
                self.ui.note(f"no entry has '{rest}'")
            for e in found:
                self.ui.entry("", e.id, f"{e.kind:<10} {e.text}")
        elif action in ("forget", "rm"):
            if not rest:
                raise UsageError(f"/memory {action} needs an id", hint="/memory lists the ids")
            entry = store.forget(rest)
            self.ui.entry("forgot", entry.id, entry.text)
        else:
            raise UsageError(f"/memory {action}: use list, add TEXT, search TEXT or rm ID")

    def cmd_open(self, _arg: str) -> None:
        if self.last_result is None or not self.last_result.outputs:
            raise UsageError("no image yet in this session")
        path = self.last_result.outputs[-1].path
        if not open_file(path):
            raise QiaError("no image viewer found (xdg-open, open)", hint=f"open {path} yourself")
        self.ui.note(f"opened {path}")

    def cmd_preview(self, _arg: str) -> None:
        if self.last_result is None or not self.last_result.outputs:
            raise UsageError("no image yet in this session")
        setting = self.agent.settings.preview
        self.ui.preview(self.last_result.outputs[-1].path, setting if setting != "off" else "auto", asked=True)

    def cmd_save(self, arg: str) -> None:
        from qia_cli.fsutil import atomic_write_bytes

        plan = self._need_plan()
        path = Path(arg).expanduser() if arg else Path.cwd() / time.strftime("qia-plan-%Y%m%d-%H%M%S.json")
        if path.is_dir():
            path = path / time.strftime("qia-plan-%Y%m%d-%H%M%S.json")
        if path.exists():
            raise UsageError(f"{path} exists; not overwritten", hint="give another file name")
        if not path.parent.is_dir():
            raise UsageError(f"folder {path.parent} does not exist")
        try:
            atomic_write_bytes(path, (plan.model_dump_json(indent=2) + "\n").encode("utf-8"))
        except OSError as exc:
            raise UsageError(
                f"cannot save the plan to {path}: {exc.strerror or exc}",
                hint="give a file in a folder you can write to",
            ) from None
        self.ui.say(f"saved the plan to {path}")

    # -- what the toolbar and the completer show ------------------------------------------------
    def llm_name(self) -> str:
        llm = self.agent.llm
        return getattr(getattr(llm, "info", None), "name", None) or self.agent.settings.llm

    def image_model(self) -> str:
        return self.opts.model or self.agent.settings.image_model

    def search_text(self) -> str:
        return f"on ({self.search_spec})" if self.agent.search is not None else "off"

    def _size_text(self) -> str:
        return f"{self.opts.width}x{self.opts.height}" if self.opts.width else "from the model family"

    def toolbar(self) -> str:
        seed = self.opts.seed if self.opts.seed is not None else "random"
        device = self.device or self.opts.device or self.agent.settings.device
        search = "on" if self.agent.search is not None else "off"
        return (
            f" llm: {self.llm_name()} · image: {self.image_model()} · device: {device} · seed: {seed}"
            f" · search: {search} · /help "
        )

    def completions(self, text: str) -> list[str]:
        """Completions for the text before the cursor: command names, then their first argument."""
        if not text.startswith("/"):
            return []
        name, space, rest = text.partition(" ")
        if not space:
            return [c for c in self.commands if c.startswith(name.lower())]
        if " " in rest:
            return []
        return [s for s in SUBCOMMANDS.get(name.lower(), []) if s.startswith(rest.lower())]


@contextlib.contextmanager
def _sigint_sets(event: threading.Event):
    """While rendering, the first Ctrl-C sets `event` (the render stops after its current step);
    a second one interrupts at once. Outside the main thread signals can't be caught: no change."""

    def handler(_signum, _frame):
        if event.is_set():
            raise KeyboardInterrupt
        event.set()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def open_file(path: str) -> bool:
    """Open `path` with the system viewer; False when there is none."""
    if sys.platform.startswith("win"):
        os.startfile(path)  # type: ignore[attr-defined]
        return True
    opener = shutil.which("open" if sys.platform == "darwin" else "xdg-open")
    if opener is None:
        return False
    subprocess.Popen(
        [opener, path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return True
