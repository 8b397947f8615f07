"""`qia chat` (and `qia` alone on a terminal): an interactive session that keeps the models loaded.

The terminal side only: prompt_toolkit input (history, completion, toolbar, multi-line) and Rich
output. The session logic lives in qia_cli/repl.py.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from qia_cli.cli import common, console
from qia_cli.cli.root import app

BANNER = "qia chat: type what to picture. /help for commands, Ctrl-D to leave."


@app.command("chat")
def chat_command(
    model: common.ModelOpt = None,
    size: common.SizeOpt = None,
    steps: common.StepsOpt = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help=f"Fixed seed, {common.SEED_HELP} per render (a refinement keeps the last seed).",
            show_default=False,
        ),
    ] = None,
    device: common.DeviceOpt = None,
    outdir: common.OutdirOpt = None,
    release_llm: Annotated[
        bool | None,
        typer.Option(
            "--release-llm/--keep-llm",
            help="Free the planner LLM before each render, or keep it loaded (default: free it only when it shares a GPU with the image model).",
            show_default=False,
        ),
    ] = None,
    llm: common.LlmOpt = None,
    search: common.SearchOpt = None,
    no_ask: common.NoAskOpt = False,
    remember: common.RememberOpt = None,
    no_memory: common.NoMemoryOpt = False,
    no_log: common.NoLogOpt = False,
) -> None:
    """An interactive session: plan and render turn by turn, refine ("make it night"), models stay loaded.

    Examples:

      qia chat

      qia chat --model ./my-pipeline --seed 7 --search off
    """
    run_chat(
        model=model,
        size=size,
        steps=steps,
        seed=seed,
        device=device,
        outdir=outdir,
        release_llm=release_llm,
        llm=llm,
        search=search,
        no_ask=no_ask,
        remember=remember,
        no_memory=no_memory,
        no_log=no_log,
    )


def run_chat(
    *,
    model=None,
    size=None,
    steps=None,
    seed=None,
    device=None,
    outdir=None,
    release_llm=None,
    llm=None,
    search=None,
    no_ask=False,
    remember=None,
    no_memory=False,
    no_log=False,
) -> None:
    """Build the session from flags and run it: prompt_toolkit on a terminal, plain lines otherwise."""
    from qia_cli.agent.run import RenderOptions
    from qia_cli.errors import ModelError
    from qia_cli.imaging.pipeline import parse_size
    from qia_cli.repl import ChatSession

    common.check_device(device)
    width, height = parse_size(size) if size else (None, None)
    seed = common.check_seed(seed)
    flags = common.PlanFlags(
        llm=llm, search=search, no_ask=no_ask, remember=remember, no_memory=no_memory, no_log=no_log
    )
    agent = common.build_agent(flags, progress=common.progress_printer())
    opts = RenderOptions(
        model=model,
        steps=steps,
        width=width,
        height=height,
        seed=seed,
        device=device,
        outdir=outdir,
        release_llm=release_llm,
    )
    # A bad size, seed, folder or device stops here, before the first request. A model that is not there
    # yet is only a warning: planning works without it, and /gen says the same when it is tried.
    agent.check_render(opts, model_too=False)
    try:
        agent.renderer.check_model(opts.model or agent.settings.image_model)
    except ModelError as exc:
        console.warn(f"{exc.message}: /plan works, /gen needs the model" + (f" ({exc.hint})" if exc.hint else ""))
    interactive = console.interactive()
    session = ChatSession(
        agent,
        TerminalUI() if interactive else PlainUI(),
        opts,
        ask=interactive and not no_ask and agent.settings.ask,
        on_plan=lambda plan: common.learn_from_answers(plan, flags, agent),
    )
    if interactive:
        prompt_loop(session)
    else:
        plain_loop(session, sys.stdin)


# -- the loops ---------------------------------------------------------------------------------------
def prompt_loop(session, *, history=None) -> None:
    """Read lines with prompt_toolkit until /quit or Ctrl-D. Ctrl-C clears the line."""
    from prompt_toolkit import PromptSession

    prompt: PromptSession[str] = PromptSession(
        history=history if history is not None else _file_history(),
        completer=_completer(session),
        complete_while_typing=True,
        key_bindings=_key_bindings(),
        multiline=True,
        bottom_toolbar=session.toolbar,
        prompt_continuation=lambda width, _line, _soft: "." * (width - 1) + " ",
    )
    session.ui.note(BANNER)
    while True:
        try:
            line = prompt.prompt("qia> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        if not session.handle(line):
            break
    session.ui.note("bye")


def plain_loop(session, stream) -> None:
    """Lines from a pipe or file (no terminal): no questions, no toolbar; a trailing \\ joins lines."""
    pending = ""
    for raw in stream:
        line = raw.rstrip("\n")
        if line.endswith("\\"):
            pending += line[:-1] + "\n"
            continue
        if not session.handle(pending + line):
            return
        pending = ""
    if pending:
        session.handle(pending)


def _file_history():
    from prompt_toolkit.history import FileHistory

    from qia_cli import paths

    path = paths.history_file()
    from qia_cli.fsutil import make_private_dirs

    make_private_dirs(path.parent)
    if not path.exists():  # requests can be personal: readable by the user only
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return FileHistory(str(path))


def _key_bindings():
    """Enter sends; a line ending in \\ or Esc+Enter (Alt+Enter) continues on a new line."""
    from prompt_toolkit.key_binding import KeyBindings

    kb = KeyBindings()

    @kb.add("enter")
    def _enter(event) -> None:
        buf = event.current_buffer
        state = buf.complete_state
        if state is not None and state.current_completion is not None:
            buf.apply_completion(state.current_completion)
            return
        if buf.document.text_before_cursor.endswith("\\"):
            buf.delete_before_cursor(1)
            buf.insert_text("\n")
            return
        buf.validate_and_handle()

    @kb.add("escape", "enter")
    def _newline(event) -> None:
        event.current_buffer.insert_text("\n")

    return kb


def _completer(session):
    """Slash commands and their first argument (/model llm|image, /search on|off, ...)."""
    from prompt_toolkit.completion import Completer, Completion

    class SlashCompleter(Completer):
        def get_completions(self, document, complete_event):
            before = document.text_before_cursor
            word = before.rsplit(" ", 1)[-1]
            for text in session.completions(before):
                yield Completion(text, start_position=-len(word))

    return SlashCompleter()


# -- output ------------------------------------------------------------------------------------------
class TerminalUI:
    """Rich output, and questions and edits through prompt_toolkit in the same terminal."""

    def __init__(self) -> None:
        self._ask = None

    def _prompt(self):
        if self._ask is None:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import InMemoryHistory

            self._ask = PromptSession(history=InMemoryHistory())  # answers stay out of the chat history
        return self._ask

    # What the session says, by kind (qia_cli/repl.py's UI): the markup lives here, every text is escaped.
    def _print(self, markup: str, note: str = "") -> None:
        if note:
            markup += f"  [dim]({console.safe(note)})[/dim]"
        console.out().print(markup, markup=True, highlight=False)

    def say(self, text: str, note: str = "") -> None:
        self._print(console.safe(text), note)

    def note(self, text: str) -> None:
        self._print(f"[dim]{console.safe(text)}[/dim]")

    def labelled(self, label: str, text: str, note: str = "", *, strong: bool = False) -> None:
        style = "bold" if strong else "dim"
        self._print(f"[{style}]{console.safe(label)}[/{style}]" + (f" {console.safe(text)}" if text else ""), note)

    def warning(self, text: str) -> None:
        self._print(f"[yellow]warning:[/yellow] {console.safe(text)}")

    def saved(self, path: str, seed: int, width: int, height: int) -> None:
        self._print(f"[green]saved[/green] {console.safe(path)}", f"seed {seed}, {width}x{height}")

    def entry(self, verb: str, entry_id: str, text: str) -> None:
        self._print(
            (f"{console.safe(verb)} " if verb else "") + f"[dim]{console.safe(entry_id)}[/dim] {console.safe(text)}"
        )

    def error(self, message: str, hint: str | None = None) -> None:
        text = f"[bold red]error:[/bold red] {console.safe(message)}"
        if hint:
            text += f"  [dim]({console.safe(hint)})[/dim]"
        console.err().print(text, markup=True, highlight=False, soft_wrap=True)

    def show_plan(self, plan) -> None:
        common.print_plan(plan)

    def ask(self, text: str, default: str | None) -> str:
        return self._prompt().prompt(common.question_label(text, default), default="")

    def edit(self, text: str) -> str:
        return self._prompt().prompt("edit prompt> ", default=text)

    def progress(self):
        """A step bar on stderr while rendering (on a terminal, without --quiet)."""
        from qia_cli.cli.progress import step_progress

        return step_progress("rendering (Ctrl-C cancels)")

    def preview(self, path: str, setting: str, *, asked: bool) -> None:
        """Draw the image in the terminal; when asked (/preview) and it can't, say why."""
        from qia_cli.cli.preview import show

        if show(path, setting) is None and asked:
            self.note(
                "no inline image: this terminal speaks none of the kitty, iTerm2 or sixel graphics protocols "
                "that qia can tell from its environment (qia config set preview kitty|iterm2|sixel picks one)"
            )


class PlainUI(TerminalUI):
    """No terminal: nobody to ask and no line editor."""

    def ask(self, text: str, default: str | None) -> str:
        raise EOFError

    def edit(self, text: str) -> str:
        from qia_cli.errors import UsageError

        raise UsageError("/edit needs a terminal")

    def preview(self, path: str, setting: str, *, asked: bool) -> None:
        """No terminal: nothing is drawn."""
