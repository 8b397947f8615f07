"""What `qia plan`, `qia generate`, `qia chat` and `qia batch` share: the planning flags, reading
the prompt, building the agent, asking questions on a terminal and printing a plan for people.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from qia_cli.choices import DEVICES, DTYPES
from qia_cli.cli import console
from qia_cli.errors import UsageError
from qia_cli.seeds import SEED_HELP, check_seed  # noqa: F401  (check_seed: used by the commands)

# -- the planning options, declared once and used by every command that plans -----------------------
PromptArg = Annotated[
    str | None,
    typer.Argument(help="What to picture. Use '-' (or pipe text) to read it from stdin.", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")]
LlmOpt = Annotated[
    str | None,
    typer.Option(
        "--llm",
        help="Planner model: a GGUF path, a pulled name (qia models pull), 'bundled', or openai:BASE_URL[#MODEL]. Env: QIA_LLM_MODEL.",
        show_default=False,
    ),
]
SearchOpt = Annotated[
    str | None,
    typer.Option("--search", help="Web search: ddgs, off, or fixture:PATH. Env: QIA_SEARCH.", show_default=False),
]
NoAskOpt = Annotated[bool, typer.Option("--no-ask", help="Never ask; fill open gaps with recorded assumptions.")]
AnswerOpt = Annotated[
    list[str] | None,
    typer.Option("--answer", "-a", help="Answer to the next open question (repeatable, in order).", show_default=False),
]
AnswersOpt = Annotated[
    Path | None,
    typer.Option(
        "--answers", help="JSON file mapping question ids (q1) or gap ids (g1) to answers.", show_default=False
    ),
]
RememberOpt = Annotated[
    bool | None,
    typer.Option(
        "--remember/--no-remember",
        help="Save answers about lasting facts to memory without asking / never.",
        show_default=False,
    ),
]
NoMemoryOpt = Annotated[bool, typer.Option("--no-memory", help="Don't read or write the memory store for this run.")]
NoLogOpt = Annotated[
    bool, typer.Option("--no-log", help="Don't record this run's model calls in the call log (qia logs).")
]

# -- the render options that `qia generate` and `qia batch` share ------------------------------------


def complete_device(incomplete: str) -> list[str]:
    return [d for d in DEVICES if d.startswith(incomplete)]


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Diffusers model: Hugging Face id or local folder; BASE+TRANSFORMER.gguf for a GGUF-quantized transformer.",
        show_default=False,
    ),
]
StepsOpt = Annotated[
    int | None,
    typer.Option(
        "--steps", min=1, max=500, help="Denoising steps (default: from the model family).", show_default=False
    ),
]
SizeOpt = Annotated[
    str | None,
    typer.Option("--size", metavar="WxH", help="Width x height, e.g. 768x512 (multiples of 8).", show_default=False),
]
GuidanceOpt = Annotated[
    float | None,
    typer.Option(
        "--guidance", min=0, max=50, help="Guidance scale (default: from the model family).", show_default=False
    ),
]
NegativeOpt = Annotated[str | None, typer.Option("--negative", help="Extra negative prompt.", show_default=False)]
CountOpt = Annotated[
    int, typer.Option("--count", "-n", min=1, max=64, help="Images to render (seeds seed, seed+1, ...).")
]
OutdirOpt = Annotated[
    Path | None, typer.Option("--outdir", help="Folder for images (default: ./qia-out).", show_default=False)
]
SeedOpt = Annotated[
    int | None,
    typer.Option("--seed", help=f"Seed, {SEED_HELP} (a random seed is recorded).", show_default=False),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="auto, cuda, mps or cpu.", autocompletion=complete_device, show_default=False),
]


def complete_dtype(incomplete: str) -> list[str]:
    return [d for d in DTYPES if d.startswith(incomplete)]


DtypeOpt = Annotated[
    str | None,
    typer.Option(
        "--dtype",
        help="Precision: auto (fp16 on a GPU; bf16 on a CPU with AMX or AVX-512 BF16, else fp32), fp32, bf16 or fp16.",
        autocompletion=complete_dtype,
        show_default=False,
    ),
]
VaeOpt = Annotated[
    str | None,
    typer.Option(
        "--vae",
        help="Decoder: full (default), tiny (AutoencoderTiny: decodes about 10x faster on a "
        "CPU, with softer fine detail), or a VAE folder or Hugging Face id.",
        show_default=False,
    ),
]


def check_render_choices(dtype: str | None, vae: str | None) -> None:
    """--dtype and --vae are known values, before any planning (no torch import)."""
    from qia_cli.imaging.device import check_dtype
    from qia_cli.imaging.vae import check_vae

    if dtype is not None:
        check_dtype(dtype)
    if vae is not None:
        check_vae(vae)


def check_device(device: str | None) -> None:
    if device is not None and device not in DEVICES:
        raise UsageError(f"unknown device '{device}'", hint="choose one of: " + ", ".join(DEVICES))


@dataclass
class PlanFlags:
    prompt: str | None = None
    json: bool = False
    llm: str | None = None
    search: str | None = None
    no_ask: bool = False
    answer: list[str] = field(default_factory=list)
    answers: Path | None = None
    remember: bool | None = None
    no_memory: bool = False
    no_log: bool = False

    def settings_overrides(self) -> dict:
        return {"llm": self.llm, "search": self.search}


MAX_STDIN_BYTES = 1 << 20  # a prompt is at most 4,000 characters; more than this is not a prompt


def read_stdin_text(what: str = "the prompt on stdin") -> str:
    """All of stdin as UTF-8 text (a BOM is dropped), bounded; a UsageError for bytes that are not UTF-8."""
    stream = getattr(sys.stdin, "buffer", None)
    try:
        if stream is None:  # a text stream without bytes underneath (tests)
            return sys.stdin.read(MAX_STDIN_BYTES)
        data = stream.read(MAX_STDIN_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > MAX_STDIN_BYTES:
        raise UsageError(f"{what} is over {MAX_STDIN_BYTES >> 20} MB; a prompt is at most a few thousand characters")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{what} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            hint="convert it first, e.g. iconv -f latin1 -t utf-8",
        ) from None


def _dash_hint() -> str | None:
    """A hint when the prompt looks like it was taken for a flag: `qia plan "-a cat"`."""
    args = sys.argv[1:]
    if "--" in args:
        return None
    if any(a.startswith("-") and not a.startswith("--") and (" " in a or len(a) > 3) for a in args):
        return 'a prompt that starts with "-" goes after --, e.g. qia plan -- "-a cat"'
    return None


def read_prompt(prompt: str | None) -> str:
    """The prompt from the argument, or from stdin when it is '-' or piped; checked and cleaned."""
    from qia_cli.agent.planner import validate_request

    if prompt is None or prompt == "-":
        if sys.stdin is None:  # started with stdin closed (<&-)
            raise UsageError("no prompt given, and stdin is closed", hint='qia plan "a red bicycle"')
        if prompt is None and sys.stdin.isatty():
            raise UsageError(
                "no prompt given", hint=_dash_hint() or 'qia plan "a red bicycle", or pipe the prompt on stdin'
            )
        prompt = read_stdin_text()
    try:
        return validate_request(prompt)
    except UsageError as exc:
        hint = _dash_hint()
        if hint and "empty" in exc.message:
            raise UsageError(exc.message, hint=hint) from None
        raise


def clean_text_flag(value: str | None, flag: str) -> str | None:
    """A free-text flag (--negative, --answer): no control characters; None when nothing visible is left."""
    if value is None:
        return None
    from qia_cli.textsafe import clean_input, visible

    text = clean_input(value, what=flag).strip()
    return text if visible(text) else None


ANSWER_ID = re.compile(r"^[qg][1-9][0-9]{0,3}$")


def read_answers(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    from qia_cli.fsutil import read_bounded

    try:
        data = json.loads(read_bounded(path, MAX_STDIN_BYTES).decode("utf-8-sig"))
    except FileNotFoundError:
        raise UsageError(f"answers file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"answers file {path} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"answers file {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise UsageError(f"answers file {path} is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UsageError(f"answers file {path} must be a JSON object of id -> answer text")
    bad = [str(k) for k in data if not ANSWER_ID.match(str(k).strip())]
    if bad:
        raise UsageError(
            f"answers file {path}: {', '.join(repr(b) for b in bad[:5])} is not a question or gap id",
            hint="ids look like q1 (a question) or g2 (a gap); see them with qia plan --json",
        )
    out = {}
    for key, value in data.items():
        text = clean_text_flag(value, f"the answer to {key}")
        if text:
            out[str(key).strip()] = text
    return out


def note_unused_answers(plan, flags: PlanFlags) -> None:
    """Warn (in the plan) about --answers ids the plan has no question or gap for, and --answer values
    beyond its questions: they would otherwise be ignored without a word."""
    known = {q.id for q in plan.questions} | {g.id for g in plan.gaps}
    if flags.answers is not None:
        unknown = [k for k in read_answers(flags.answers) if k not in known]
        if unknown:
            have = ", ".join(q.id for q in plan.questions) or "none"
            plan.warnings.append(
                f"answers file: no question or gap {', '.join(unknown)} in this plan (its questions: {have}); ignored"
            )
    extra = len(flags.answer or []) - len(plan.questions)
    if extra > 0:
        plan.warnings.append(f"{extra} --answer value(s) ignored: the plan asked {len(plan.questions)} question(s)")


def can_ask(flags: PlanFlags, settings) -> bool:
    return not flags.no_ask and not flags.json and settings.ask and console.interactive()


def question_label(text: str, default: str | None) -> str:
    """A question as the terminal shows it, with the suggestion that a bare Enter accepts."""
    from qia_cli.textsafe import printable

    return f"{printable(text)} [Enter: {printable(default)}] " if default else f"{printable(text)} "


def terminal_asker(questions):
    """Ask on the terminal with prompt_toolkit: Enter accepts the default, 'skip' leaves the gap open.
    The line starts empty (the suggestion is in the question): what is typed replaces the suggestion,
    never adds to it."""
    from prompt_toolkit import prompt as ask

    answers: dict[str, str | None] = {}
    console.err().print(
        "[bold]A few questions[/bold] (Enter accepts the suggestion, 'skip' leaves it open):", markup=True
    )
    for q in questions:
        try:
            value = ask(question_label(q.text, q.default)).strip()
        except EOFError:
            break
        answers[q.id] = "skip" if value.lower() == "skip" else (value or q.default or None)
    return answers


def build_agent(flags: PlanFlags, extra: dict | None = None, *, progress=None):
    """Settings (defaults < file < env < flags), memory, search and the agent, from the flags."""
    from qia_cli.agent.run import Agent, Callbacks
    from qia_cli.config import load_settings
    from qia_cli.search.service import make_backend

    overrides = flags.settings_overrides()
    overrides.update(extra or {})
    loaded = load_settings(overrides)
    settings = loaded.settings
    memory = None
    if not flags.no_memory:
        from qia_cli.memory.store import MemoryStore

        memory = MemoryStore()
        memory.list()  # a corrupt memory file stops here, before any work, with its own message
    search = make_backend(settings.search, timeout=settings.search_timeout)
    callbacks = Callbacks(progress=progress or (lambda msg: None))
    return Agent(
        settings=settings,
        verbose=console.state.verbose,
        memory=memory,
        search=search,
        callbacks=callbacks,
        calllog=open_call_log(settings, flags.no_log),
    )


def open_call_log(settings, no_log: bool = False):
    """The call log (qia logs), unless the `logs` setting or --no-log turns it off. Its one warning, if it
    cannot be written, goes to stderr."""
    from qia_cli.calllog.store import open_log

    return open_log(settings, enabled=not no_log, on_warning=console.warn)


def plan_options(flags: PlanFlags, agent, *, previous=None):
    from qia_cli.agent.planner import PlanOptions

    return PlanOptions(
        answers=read_answers(flags.answers),
        answer_list=[clean_text_flag(a, "--answer") or "" for a in flags.answer or []],
        asker=terminal_asker if can_ask(flags, agent.settings) else None,
        previous=previous,
    )


def learn_from_answers(plan, flags: PlanFlags, agent) -> list[str]:
    """Offer answers about lasting facts (people, pets, our things) for memory, as --remember and the
    `remember` setting say (the policy is qia_cli/agent/remember.py); returns the saved ids."""
    from qia_cli.agent.remember import learn_from_answers as learn
    from qia_cli.agent.remember import remember_mode

    confirm = _confirm_remember if console.interactive() and not flags.json else None
    return learn(plan, agent.memory, remember_mode(agent.settings.remember, flags.remember), confirm)


def _confirm_remember(fact: str) -> bool:
    from prompt_toolkit.shortcuts import confirm

    return confirm(f"Remember “{fact}” for next time?")


def progress_printer():
    """Stage names on stderr for people; nothing with --quiet or when stderr is not a terminal."""
    if console.state.quiet or not console.stderr_is_tty():
        return lambda _msg: None
    err = console.err()
    return lambda msg: err.print(f"[dim]… {console.safe(msg)}[/dim]", markup=True)


def print_plan(plan) -> None:
    """A readable plan: the gaps, the evidence and assumptions, then the final prompt.

    Every piece of it can quote untrusted text (the request, search results, memory), so each goes
    through console.safe(): brackets are not markup, control characters are not sent raw."""
    from rich.panel import Panel
    from rich.table import Table

    safe = console.safe
    out = console.out()
    out.print(f"[bold]Request[/bold]  {safe(plan.request)}", markup=True, highlight=False)
    if plan.gaps:
        table = Table(title="Gaps", title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("id", style="dim")
        table.add_column("kind")
        table.add_column("action")
        table.add_column("what is missing")
        for g in plan.gaps:
            table.add_row(safe(g.id), g.kind, g.action, safe(g.description))
        out.print(table)
    if plan.evidence:
        table = Table(title="Context", title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("source")
        table.add_column("gap", style="dim")
        table.add_column("in prompt")
        table.add_column("content")
        for e in plan.evidence:
            detail = f"  [dim]({safe(e.detail)})[/dim]" if e.detail and e.source in {"search", "memory"} else ""
            if e.used:
                table.add_row(e.source, safe(e.gap_id or ""), "✓", safe(e.content) + detail)
            else:  # a guess the plan kept out of the prompt: shown, but not like what was used
                why = f": {safe(e.why)}" if e.why else ""
                content = f"[dim italic]{safe(e.content)}[/dim italic]{detail}  [yellow](withheld{why})[/yellow]"
                table.add_row(e.source, safe(e.gap_id or ""), "[yellow]✗ withheld[/yellow]", content)
        out.print(table)
    for q in plan.questions:
        status = q.answer if q.status == "answered" else q.status
        out.print(f"[dim]{safe(q.id)}[/dim] {safe(q.text)} → {safe(status)}", markup=True, highlight=False)
    for w in plan.warnings:
        console.warn(w)
    out.print(Panel(safe(plan.prompt), title="Prompt", title_align="left", border_style="green"))
    out.print(f"[dim]negative:[/dim] {safe(plan.negative_prompt)}", markup=True, highlight=False)
    out.print(
        f"[dim]planned by {safe(models_text(plan))} in {plan.timings.get('total', 0):.2f} s[/dim]",
        markup=True,
        highlight=False,
    )


def models_text(plan) -> str:
    """The planner's model, and the knowledge model when it is another one."""
    model = plan.model.name if plan.model else "?"
    knowledge = plan.knowledge_model.name if plan.knowledge_model else None
    return f"{model} (knowledge questions: {knowledge})" if knowledge and knowledge != model else model


def print_json(model) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")
    sys.stdout.flush()


def print_data(data) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()
