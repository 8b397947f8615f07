"""`qia generate`: plan exactly as `qia plan` does, then render with a local diffusers pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qia_cli.cli import common, console
from qia_cli.cli.progress import step_progress
from qia_cli.cli.root import app


@app.command("generate")
def generate_command(
    prompt: common.PromptArg = None,
    model: common.ModelOpt = None,
    steps: common.StepsOpt = None,
    size: common.SizeOpt = None,
    width: Annotated[int | None, typer.Option("--width", show_default=False, help="Width in pixels.")] = None,
    height: Annotated[int | None, typer.Option("--height", show_default=False, help="Height in pixels.")] = None,
    seed: common.SeedOpt = None,
    guidance: common.GuidanceOpt = None,
    negative: common.NegativeOpt = None,
    count: common.CountOpt = 1,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="PNG file to write (an existing one only with --overwrite).", show_default=False
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the -o file (and its NAME.json sidecar) if it exists.")
    ] = False,
    outdir: common.OutdirOpt = None,
    device: common.DeviceOpt = None,
    dtype: common.DtypeOpt = None,
    vae: common.VaeOpt = None,
    no_plan: Annotated[
        bool, typer.Option("--no-plan", help="Render the prompt exactly as typed: no planning.")
    ] = False,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            min=0,
            max=10,
            help="Feedback rounds after the first render (default: 1 on a GPU, 0 on the CPU).",
            show_default=False,
        ),
    ] = None,
    keep_all: Annotated[
        bool, typer.Option("--keep-all", help="Keep every feedback round's image, not only the best.")
    ] = False,
    scorer: Annotated[
        str | None,
        typer.Option("--scorer", help="CLIP model id or folder that scores images for feedback.", show_default=False),
    ] = None,
    json_out: common.JsonOpt = False,
    llm: common.LlmOpt = None,
    search: common.SearchOpt = None,
    no_ask: common.NoAskOpt = False,
    answer: common.AnswerOpt = None,
    answers: common.AnswersOpt = None,
    remember: common.RememberOpt = None,
    no_memory: common.NoMemoryOpt = False,
    preview: Annotated[
        bool | None,
        typer.Option(
            "--preview/--no-preview",
            help="Draw the saved image in the terminal (kitty, iTerm2 or sixel graphics; nothing elsewhere). "
            "Default: the preview setting.",
            show_default=False,
        ),
    ] = None,
    no_log: common.NoLogOpt = False,
) -> None:
    """Plan the request, then render it and save PNGs with their plan embedded (plus a NAME.json sidecar).

    Examples:

      qia generate "a red bicycle leaning on a wall"

      qia generate "a poster for my dog's birthday" --seed 7 --count 2

      qia generate "a cat" --no-plan --model ./my-pipeline --steps 4 --json

      qia generate "a lighthouse at dusk" --preview
    """
    from qia_cli.agent.run import RenderOptions

    width, height = _check_size(size, width, height)
    common.check_device(device)
    seed = common.check_seed(seed, count)
    negative = common.clean_text_flag(negative, "--negative")
    common.check_render_choices(dtype, vae)

    flags = common.PlanFlags(
        prompt, json_out, llm, search, no_ask, answer or [], answers, remember, no_memory, no_log=no_log
    )
    request = common.read_prompt(prompt)
    show = not json_out
    agent = common.build_agent(flags, progress=common.progress_printer() if show else None)
    opts = RenderOptions(
        model=model,
        steps=steps,
        guidance=guidance,
        width=width,
        height=height,
        seed=seed,
        count=count,
        negative=negative,
        device=device,
        dtype=dtype,
        vae=vae,
        outdir=outdir,
        output=output,
        overwrite=overwrite,
        rounds=rounds,
        keep_all=keep_all,
        scorer=scorer,
    )
    agent.check_render(opts)  # every render input fails here, before a plan that can take a minute
    plan = _as_typed(request, negative) if no_plan else _planned(agent, request, flags, show=show, model=model)
    warned = len(plan.warnings)
    with step_progress(enabled=show) as on_step:
        result = agent.render(plan, opts, on_step=on_step)
    agent.record_session(result.plan, [o.path for o in result.outputs], "generate", result.render)
    if json_out:
        common.print_json(result)
    else:
        print_result(result, warned)
        if preview if preview is not None else agent.settings.preview != "off":
            show_images([o.path for o in result.outputs], agent.settings.preview)


def show_images(images: list[str], setting: str) -> None:
    """Each saved image drawn in the terminal, where it can draw them (see qia_cli/cli/preview.py)."""
    from qia_cli.cli.preview import show

    for image in images:
        show(image, setting)


def _check_size(size: str | None, width: int | None, height: int | None) -> tuple[int | None, int | None]:
    """--size WxH, or --width and --height: one way, multiples of 8, within bounds."""
    from qia_cli.errors import UsageError
    from qia_cli.imaging.pipeline import parse_size, validate_size

    if size and (width or height):
        raise UsageError("use --size or --width/--height, not both")
    if size:
        width, height = parse_size(size)
    if width or height:
        validate_size(width or 512, height or 512)
    return width, height


def _as_typed(request: str, negative: str | None):
    """--no-plan: a plan that is the request, word for word."""
    from qia_cli.agent.types import ModelInfo, Plan

    return Plan(
        request=request,
        prompt=request,
        negative_prompt=negative or "",
        checklist=[request[:80]],
        model=ModelInfo(name="none (--no-plan)", backend="none"),
    )


def _planned(agent, request: str, flags: common.PlanFlags, *, show: bool, model: str | None = None):
    """Plan as `qia plan` does (answers, memory, the plan printed for people), the prompt sized for `model`."""
    plan = agent.plan(request, common.plan_options(flags, agent), model=model)
    common.note_unused_answers(plan, flags)
    common.learn_from_answers(plan, flags, agent)
    if show:
        common.print_plan(plan)
    return plan


def print_result(result, warned: int) -> None:
    """After the render: its new warnings (the first `warned` were printed with the plan), the feedback
    rounds, the files saved and where the time went."""
    for w in result.plan.warnings[warned:]:
        console.warn(w)
    out = console.out()
    if result.rounds:
        print_rounds(result.rounds)
    for o in result.outputs:
        out.print(
            f"[green]saved[/green] {console.safe(o.path)}  [dim](seed {o.seed}, {o.width}x{o.height})[/dim]",
            markup=True,
            highlight=False,
        )
    t = result.timings
    console.info(
        f"[dim]plan {t.get('plan', 0):.2f} s · "
        f"load {t.get('load_pipeline', 0):.2f} s · render {t.get('render', 0):.2f} s"
        + (f" · feedback {t.get('feedback', 0) + t.get('scorer_load', 0):.2f} s" if result.rounds else "")
        + f" on {result.device} ({result.render.dtype}"
        + (f", VAE {result.render.vae}" if result.render.vae != "full" else "")
        + ")[/dim]"
    )


def print_rounds(rounds) -> None:
    """The feedback rounds for people: scores, the weakest item, what changed, which image was kept."""
    from rich.table import Table

    table = Table(title="Feedback", title_justify="left", show_edge=False, pad_edge=False)
    for name in ("round", "seed", "overall", "weakest item", "change", "kept"):
        table.add_column(name, style="dim" if name == "round" else None)
    for r in rounds:
        weakest = min(r.scores, key=lambda s: s.score, default=None)
        label = f"{r.image + 1}.{r.index}" if any(x.image for x in rounds) else str(r.index)
        table.add_row(
            label,
            str(r.seed),
            f"{r.overall:.3f}" if r.overall is not None else "-",
            f"{console.safe(weakest.item)} ({weakest.score:.3f})" if weakest else "-",
            console.safe(r.change or "first render"),
            "✓" if r.kept else "",
        )
    console.out().print(table)
