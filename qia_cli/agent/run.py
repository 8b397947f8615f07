"""The loop that ties the stages together: plan -> render spec -> images -> saved outputs.

The CLI, the REPL, batch and the benchmark are thin faces over `Agent`. It reports progress through
callbacks and never prints.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from qia_cli.agent.planner import Planner, PlanOptions
from qia_cli.agent.types import GenerateResult, Output, Plan, RenderSpec
from qia_cli.config import Settings

MAX_SEED = 2**32 - 1


@dataclass
class RenderOptions:
    model: str | None = None
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    count: int = 1
    negative: str | None = None
    device: str | None = None
    outdir: Path | None = None
    output: Path | None = None
    overwrite: bool = False
    rounds: int | None = None
    keep_all: bool = False
    scorer: str | None = None


@dataclass
class Callbacks:
    progress: Callable[[str], None] = lambda _msg: None
    on_step: Callable[[int, int], None] | None = None
    cancel: Callable[[], bool] | None = None


@dataclass
class Agent:
    settings: Settings
    verbose: bool = False
    memory: object | None = None
    search: object | None = None
    llm: object | None = None  # an LLM, or None to build it lazily from settings
    callbacks: Callbacks = field(default_factory=Callbacks)
    _planner: Planner | None = None

    @property
    def planner(self) -> Planner:
        if self._planner is None:
            llm = self.llm if self.llm is not None else self._make_llm
            self._planner = Planner(
                llm,
                memory=self.memory,
                search=self.search,
                search_deadline=self.settings.search_timeout,
                search_ttl=self.settings.search_ttl,
                progress=self.callbacks.progress,
            )
        return self._planner

    def _make_llm(self):
        from qia_cli.llm.factory import make_llm

        self.llm = make_llm(self.settings, verbose=self.verbose)
        return self.llm

    def plan(self, request: str, options: PlanOptions | None = None) -> Plan:
        options = options or PlanOptions()
        mode = self.settings.llm_gaps
        # Measured: the 135M bundled model proposes no gap that survives validation, at 0.3-3 s a call.
        options.llm_gaps = mode == "on" or (mode == "auto" and self.settings.llm != "bundled")
        plan = self.planner.plan(request, options)
        if self.memory is not None and self.planner.recalled:
            self.memory.touch(self.planner.recalled)
        return plan

    def release_llm(self) -> None:
        """Free the planner LLM before diffusion loads, so the two don't compete for VRAM."""
        llm = self.llm
        if llm is not None and hasattr(llm, "close"):
            llm.close()

    # -- rendering ------------------------------------------------------------------------------
    def spec_for(self, plan: Plan, opts: RenderOptions) -> RenderSpec:
        from qia_cli.imaging.families import defaults_for

        s = self.settings
        model = opts.model or s.image_model
        fam = defaults_for(model)
        negative = plan.negative_prompt
        if opts.negative and opts.negative not in negative:
            negative = f"{opts.negative}, {negative}" if negative else opts.negative
        return RenderSpec(
            prompt=plan.prompt,
            negative_prompt=negative,
            model=model,
            width=opts.width or s.width or fam.width,
            height=opts.height or s.height or fam.height,
            steps=opts.steps or s.steps or fam.steps,
            guidance=opts.guidance if opts.guidance is not None else (s.guidance if s.guidance is not None else fam.guidance),
            seed=opts.seed if opts.seed is not None else random.randint(0, MAX_SEED - 64),
            device=opts.device or s.device,
        )

    def render(self, plan: Plan, opts: RenderOptions, spec: RenderSpec | None = None) -> GenerateResult:
        from qia_cli.imaging import diffusers as renderer
        from qia_cli.imaging.output import build_metadata, check_output_file, check_writable, save_image

        spec = spec or self.spec_for(plan, opts)
        renderer.validate_size(spec.width, spec.height)
        outdir = opts.outdir or Path(self.settings.outdir or Path.cwd() / "qia-out").expanduser()
        if opts.output is not None:
            check_output_file(opts.output, overwrite=opts.overwrite)
        else:
            check_writable(outdir)  # fail before any model loads, and leave nothing behind

        timings = {"plan": plan.timings.get("total", 0.0)}
        self.release_llm()
        start = time.perf_counter()
        loaded = renderer.load_pipeline(spec.model, spec.device, progress=self.callbacks.progress, verbose=self.verbose)
        timings["load_pipeline"] = round(time.perf_counter() - start, 4)

        start = time.perf_counter()
        images = renderer.render(
            spec, count=opts.count, on_step=self.callbacks.on_step, cancel=self.callbacks.cancel, loaded=loaded,
            verbose=self.verbose,
        )
        timings["render"] = round(time.perf_counter() - start, 4)

        result = GenerateResult(plan=plan, render=spec, timings=timings, device=loaded.device)
        start = time.perf_counter()
        for index, (image, seed) in enumerate(images):
            output = opts.output
            if output is not None and len(images) > 1:
                output = output.with_name(f"{output.stem}-{index + 1}{output.suffix}")
            record = result.model_copy(update={"outputs": []})
            record.render = spec.model_copy(update={"seed": seed})
            plan_json = plan.model_dump_json()
            png, side = save_image(
                image,
                outdir=outdir,
                output=output,
                metadata=build_metadata(plan.request, record.render, seed, plan_json),
                sidecar=json.loads(record.model_dump_json()),
                overwrite=opts.overwrite,
            )
            result.outputs.append(Output(path=str(png), sidecar=str(side), seed=seed, width=image.width, height=image.height))
        timings["save"] = round(time.perf_counter() - start, 4)
        timings["total"] = round(sum(v for k, v in timings.items() if k != "total"), 4)
        result.timings = timings
        return result

    def record_session(self, plan: Plan, outputs: list[str], kind: str) -> None:
        if self.memory is None:
            return
        self.memory.add_session({"request": plan.request, "prompt": plan.prompt, "outputs": outputs, "kind": kind})
