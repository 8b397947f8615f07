"""`qia generate`: plan exactly as `qia plan` does, then render with a local diffusers pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from qia_cli.cli import common, console
from qia_cli.cli.app import app

DEVICES = ["auto", "cuda", "mps", "cpu"]


def _complete_device(incomplete: str) -> list[str]:
    return [d for d in DEVICES if d.startswith(incomplete)]


@app.command("generate")
def generate_command(
    prompt: common.PromptArg = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Diffusers model: Hugging Face id or local folder.", show_default=False)] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, max=500, help="Denoising steps (default: from the model family).", show_default=False)] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="WxH, e.g. 768x512 (multiples of 8).", show_default=False)] = None,
    width: Annotated[Optional[int], typer.Option("--width", show_default=False, help="Width in pixels.")] = None,
    height: Annotated[Optional[int], typer.Option("--height", show_default=False, help="Height in pixels.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", min=0, help="Seed (default: random, and recorded).", show_default=False)] = None,
    guidance: Annotated[Optional[float], typer.Option("--guidance", min=0, max=50, help="Guidance scale (default: from the model family).", show_default=False)] = None,
    negative: Annotated[Optional[str], typer.Option("--negative", help="Extra negative prompt.", show_default=False)] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=64, help="Images to render (seeds seed, seed+1, ...).")] = 1,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG file to write (no overwrite).", show_default=False)] = None,
    outdir: Annotated[Optional[Path], typer.Option("--outdir", help="Folder for images (default: ./qia-out).", show_default=False)] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cuda, mps or cpu.", autocompletion=_complete_device, show_default=False)] = None,
    no_plan: Annotated[bool, typer.Option("--no-plan", help="Render the prompt exactly as typed: no planning.")] = False,
    rounds: Annotated[Optional[int], typer.Option("--rounds", min=0, max=10, help="Feedback rounds after the first render (default: 1 on a GPU, 0 on the CPU).", show_default=False)] = None,
    keep_all: Annotated[bool, typer.Option("--keep-all", help="Keep every feedback round's image, not only the best.")] = False,
    scorer: Annotated[Optional[str], typer.Option("--scorer", help="CLIP model id or folder that scores images for feedback.", show_default=False)] = None,
    json_out: common.JsonOpt = False,
    llm: common.LlmOpt = None,
    search: common.SearchOpt = None,
    no_ask: common.NoAskOpt = False,
    answer: common.AnswerOpt = None,
    answers: common.AnswersOpt = None,
    remember: common.RememberOpt = None,
    no_memory: common.NoMemoryOpt = False,
) -> None:
    """Plan the request, then render it and save PNGs with their plan embedded (plus a NAME.json sidecar).

    Examples:

      qia generate "a red bicycle leaning on a wall"

      qia generate "a poster for my dog's birthday" --seed 7 --count 2

      qia generate "a cat" --no-plan --model ./my-pipeline --steps 4 --json
    """
    from qia_cli.agent.run import RenderOptions
    from qia_cli.errors import UsageError
    from qia_cli.imaging.diffusers import parse_size, validate_size

    if size and (width or height):
        raise UsageError("use --size or --width/--height, not both")
    if size:
        width, height = parse_size(size)
    if width or height:
        validate_size(width or 512, height or 512)
    if device is not None and device not in DEVICES:
        raise UsageError(f"unknown device '{device}'", hint="choose one of: " + ", ".join(DEVICES))

    flags = common.PlanFlags(prompt, json_out, llm, search, no_ask, answer or [], answers, remember, no_memory)
    request = common.read_prompt(prompt)
    show = not json_out
    agent = common.build_agent(flags, progress=common.progress_printer() if show else None)
    opts = RenderOptions(
        model=model, steps=steps, guidance=guidance, width=width, height=height, seed=seed, count=count,
        negative=negative, device=device, outdir=outdir, output=output, rounds=rounds, keep_all=keep_all, scorer=scorer,
    )
    if no_plan:
        from qia_cli.agent.types import ModelInfo, Plan

        plan = Plan(request=request, prompt=request, negative_prompt=negative or "", checklist=[request[:80]],
                    model=ModelInfo(name="none (--no-plan)", backend="none"))
    else:
        plan = agent.plan(request, common.plan_options(flags, agent))
        common.learn_from_answers(plan, flags, agent)
        if show:
            common.print_plan(plan)

    with _step_progress(show) as on_step:
        agent.callbacks.on_step = on_step
        result = agent.render(plan, opts)
    agent.record_session(plan, [o.path for o in result.outputs], "generate")
    if json_out:
        common.print_json(result)
        return
    out = console.out()
    for o in result.outputs:
        out.print(f"[green]saved[/green] {o.path}  [dim](seed {o.seed}, {o.width}x{o.height})[/dim]", markup=True, highlight=False)
    t = result.timings
    console.info(
        f"[dim]plan {t.get('plan', 0):.2f} s · "
        f"load {t.get('load_pipeline', 0):.2f} s · render {t.get('render', 0):.2f} s on {result.device}[/dim]"
    )


class _step_progress:
    """A Rich progress bar for denoising steps on stderr; none with --json or when stderr is not a TTY."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and console.stderr_is_tty() and not console.state.quiet
        self.progress = None
        self.task = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=console.err(), transient=True)
        self.progress.start()
        self.task = self.progress.add_task("render", total=None)

        def on_step(step: int, total: int) -> None:
            self.progress.update(self.task, completed=step, total=total)

        return on_step

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
