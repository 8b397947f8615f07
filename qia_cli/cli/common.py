"""What `qia plan`, `qia generate`, `qia chat` and `qia batch` share: the planning flags, reading
the prompt, building the agent, asking questions on a terminal and printing a plan for people.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional

import typer

from qia_cli.cli import console
from qia_cli.errors import UsageError

# -- the planning options, declared once and used by every command that plans -----------------------
PromptArg = Annotated[
    Optional[str],
    typer.Argument(help="What to picture. Use '-' (or pipe text) to read it from stdin.", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")]
LlmOpt = Annotated[
    Optional[str],
    typer.Option("--llm", help="Planner model: a GGUF path, 'bundled', or openai:BASE_URL[#MODEL]. Env: QIA_LLM_MODEL.",
                 show_default=False),
]
SearchOpt = Annotated[
    Optional[str],
    typer.Option("--search", help="Web search: ddgs, off, or fixture:PATH. Env: QIA_SEARCH.", show_default=False),
]
NoAskOpt = Annotated[bool, typer.Option("--no-ask", help="Never ask; fill open gaps with recorded assumptions.")]
AnswerOpt = Annotated[
    Optional[list[str]],
    typer.Option("--answer", "-a", help="Answer to the next open question (repeatable, in order).", show_default=False),
]
AnswersOpt = Annotated[
    Optional[Path],
    typer.Option("--answers", help="JSON file mapping question ids (q1) or gap ids (g1) to answers.", show_default=False),
]
RememberOpt = Annotated[
    Optional[bool],
    typer.Option("--remember/--no-remember", help="Save answers about lasting facts to memory without asking / never.",
                 show_default=False),
]
NoMemoryOpt = Annotated[bool, typer.Option("--no-memory", help="Don't read or write the memory store for this run.")]

# -- the render options that `qia generate` and `qia batch` share ------------------------------------
DEVICES = ["auto", "cuda", "mps", "cpu"]


def complete_device(incomplete: str) -> list[str]:
    return [d for d in DEVICES if d.startswith(incomplete)]


ModelOpt = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Diffusers model: Hugging Face id or local folder.", show_default=False),
]
StepsOpt = Annotated[
    Optional[int],
    typer.Option("--steps", min=1, max=500, help="Denoising steps (default: from the model family).", show_default=False),
]
SizeOpt = Annotated[Optional[str], typer.Option("--size", help="WxH, e.g. 768x512 (multiples of 8).", show_default=False)]
GuidanceOpt = Annotated[
    Optional[float],
    typer.Option("--guidance", min=0, max=50, help="Guidance scale (default: from the model family).", show_default=False),
]
NegativeOpt = Annotated[Optional[str], typer.Option("--negative", help="Extra negative prompt.", show_default=False)]
CountOpt = Annotated[int, typer.Option("--count", "-n", min=1, max=64, help="Images to render (seeds seed, seed+1, ...).")]
OutdirOpt = Annotated[
    Optional[Path], typer.Option("--outdir", help="Folder for images (default: ./qia-out).", show_default=False)
]
DeviceOpt = Annotated[
    Optional[str],
    typer.Option("--device", help="auto, cuda, mps or cpu.", autocompletion=complete_device, show_default=False),
]

DTYPES = ["auto", "fp32", "bf16", "fp16"]


def complete_dtype(incomplete: str) -> list[str]:
    return [d for d in DTYPES if d.startswith(incomplete)]


DtypeOpt = Annotated[
    Optional[str],
    typer.Option("--dtype", help="Precision: auto (fp16 on a GPU; bf16 on a CPU with AMX or AVX-512 BF16, else fp32), "
                 "fp32, bf16 or fp16.", autocompletion=complete_dtype, show_default=False),
]
VaeOpt = Annotated[
    Optional[str],
    typer.Option("--vae", help="Decoder: full (default), tiny (AutoencoderTiny: decodes about 10x faster on a "
                 "CPU, with softer fine detail), or a VAE folder or Hugging Face id.", show_default=False),
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

    def settings_overrides(self) -> dict:
        return {"llm": self.llm, "search": self.search}


def read_prompt(prompt: str | None) -> str:
    """The prompt from the argument, or from stdin when it is '-' or piped."""
    if prompt is None or prompt == "-":
        if prompt is None and sys.stdin.isatty():
            raise UsageError("no prompt given", hint='qia plan "a red bicycle", or pipe the prompt on stdin')
        try:
            prompt = sys.stdin.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the prompt from stdin: {exc}") from None
    from qia_cli.agent.planner import validate_request

    return validate_request(prompt)


def read_answers(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"answers file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"answers file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UsageError(f"answers file {path} must be a JSON object of id -> answer text")
    return {str(k): v for k, v in data.items()}


def can_ask(flags: PlanFlags, settings) -> bool:
    return not flags.no_ask and not flags.json and settings.ask and console.interactive()


def terminal_asker(questions):
    """Ask on the terminal with prompt_toolkit: Enter accepts the default, 'skip' leaves the gap open."""
    from prompt_toolkit import prompt as ask

    answers: dict[str, str | None] = {}
    console.err().print("[bold]A few questions[/bold] (Enter accepts the suggestion, 'skip' leaves it open):", markup=True)
    for q in questions:
        try:
            value = ask(f"{q.text} ", default=q.default or "")
        except EOFError:
            break
        answers[q.id] = value.strip() or None
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
    return Agent(settings=settings, verbose=console.state.verbose, memory=memory, search=search, callbacks=callbacks)


def plan_options(flags: PlanFlags, agent, *, previous=None):
    from qia_cli.agent.planner import PlanOptions

    return PlanOptions(
        answers=read_answers(flags.answers),
        answer_list=list(flags.answer or []),
        asker=terminal_asker if can_ask(flags, agent.settings) else None,
        previous=previous,
    )


def learn_from_answers(plan, flags: PlanFlags, agent) -> list[str]:
    """Offer answers about lasting facts (people, pets, our things) for memory; returns saved ids."""
    if agent.memory is None:
        return []
    mode = agent.settings.remember
    if flags.remember is True:
        mode = "always"
    elif flags.remember is False:
        mode = "never"
    if mode == "never":
        return []
    saved = []
    for q in plan.questions:
        gap = plan.gap(q.gap_id)
        if q.status != "answered" or gap is None or gap.kind != "personal" or not gap.span:
            continue
        fact = f"{gap.span}: {q.answer}"
        if mode == "ask":
            if not console.interactive() or flags.json:
                continue
            from prompt_toolkit.shortcuts import confirm

            if not confirm(f"Remember “{fact}” for next time?"):
                continue
        entry = agent.memory.add(fact, kind="entity", names=[gap.span])
        saved.append(entry.id)
    return saved


def progress_printer():
    """Stage names on stderr for people; nothing with --quiet or when stderr is not a terminal."""
    if console.state.quiet or not console.stderr_is_tty():
        return lambda _msg: None
    err = console.err()
    return lambda msg: err.print(f"[dim]… {msg}[/dim]", markup=True)


def print_plan(plan) -> None:
    """A readable plan: the gaps, the evidence and assumptions, then the final prompt."""
    from rich.panel import Panel
    from rich.table import Table

    out = console.out()
    out.print(f"[bold]Request[/bold]  {plan.request}", markup=True, highlight=False)
    if plan.gaps:
        table = Table(title="Gaps", title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("id", style="dim")
        table.add_column("kind")
        table.add_column("action")
        table.add_column("what is missing")
        for g in plan.gaps:
            table.add_row(g.id, g.kind, g.action, g.description)
        out.print(table)
    if plan.evidence:
        table = Table(title="Context", title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("source")
        table.add_column("gap", style="dim")
        table.add_column("content")
        for e in plan.evidence:
            table.add_row(e.source, e.gap_id or "", e.content + (f"  [dim]({e.detail})[/dim]" if e.detail and e.source in {"search", "memory"} else ""))
        out.print(table)
    for q in plan.questions:
        status = q.answer if q.status == "answered" else q.status
        out.print(f"[dim]{q.id}[/dim] {q.text} → {status}", markup=True, highlight=False)
    for w in plan.warnings:
        console.warn(w)
    out.print(Panel(plan.prompt, title="Prompt", title_align="left", border_style="green"))
    out.print(f"[dim]negative:[/dim] {plan.negative_prompt}", markup=True, highlight=False)
    model = plan.model.name if plan.model else "?"
    out.print(f"[dim]planned by {model} in {plan.timings.get('total', 0):.2f} s[/dim]", markup=True, highlight=False)


def print_json(model) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")
    sys.stdout.flush()
