"""The loop that ties the stages together: plan -> render spec -> images -> saved outputs.

The CLI, the REPL, batch and the benchmark are thin faces over `Agent`. It reports progress through
callbacks and never prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qia_cli import paths
from qia_cli.agent.planner import Planner, PlanOptions
from qia_cli.agent.types import GenerateResult, Output, Plan, RenderSpec
from qia_cli.calllog.record import Call, Sink, new_plan_id, now, recording, unwrap, wrap
from qia_cli.config import Settings
from qia_cli.seeds import MAX_SEED, random_seed  # noqa: F401  (MAX_SEED: re-exported)

if TYPE_CHECKING:  # pragma: no cover
    from qia_cli.agent.parts import Memory, Renderer, ScorerLoader
    from qia_cli.imaging.families import FamilyDefaults
    from qia_cli.imaging.scoring import Scorer
    from qia_cli.llm.base import LLM
    from qia_cli.llm.calibration import Calibration
    from qia_cli.llm.types import ModelInfo
    from qia_cli.search.base import SearchBackend


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
    dtype: str | None = None
    vae: str | None = None
    outdir: Path | None = None
    output: Path | None = None
    overwrite: bool = False
    rounds: int | None = None
    keep_all: bool = False
    scorer: str | None = None
    # A batch line's {"line", "hash"}: written, with the image's number, into each image's sidecar ("batch")
    # and PNG metadata ("qia:batch"), so that a rerun finds the images of a line that has no record yet.
    batch: dict[str, Any] | None = None
    # Free the planner LLM before the pipeline loads: True (one-shot commands), False (keep it warm),
    # None = auto: only when the LLM sits on a GPU (llm_gpu_layers != 0) and images render on one too.
    release_llm: bool | None = True


@dataclass
class Callbacks:
    """What the agent reports while it works, whatever the call. The hooks of one render (step progress,
    cancel) are arguments of `Agent.render`."""

    progress: Callable[[str], None] = lambda _msg: None


class _LazyKnowledge:
    """The agent's knowledge LLM, built when a plan first asks it a question (the planner calls this);
    `info` names the model it is, or would be, without building or loading it."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def __call__(self) -> LLM:
        return self.agent._noted(self.agent._make_knowledge())

    @property
    def info(self) -> ModelInfo:
        if self.agent.knowledge is not None:
            return self.agent.knowledge.info
        from qia_cli.llm.factory import knowledge_info

        return knowledge_info(self.agent.settings, lambda: self.agent.planner.model_info())


def _diffusers_renderer() -> Renderer:
    from qia_cli.imaging.pipeline import DiffusersRenderer

    return DiffusersRenderer()


def _clip_scorers() -> ScorerLoader:
    from qia_cli.imaging.scoring import ClipScorers

    return ClipScorers()


@dataclass
class Agent:
    settings: Settings
    verbose: bool = False
    memory: Memory | None = None
    search: SearchBackend | None = None
    llm: LLM | None = None  # None: built lazily from settings
    knowledge: LLM | None = None  # the LLM for knowledge questions; None: picked from settings
    scorer: Scorer | None = None  # a fixed scorer for the feedback loop; None: `scorers` loads settings.scorer
    # The renderer and the scorer loader keep the models they loaded warm between renders. Nothing loads
    # until a render needs it; dataclasses.replace(agent, ...) shares them.
    renderer: Renderer = field(default_factory=_diffusers_renderer)
    scorers: ScorerLoader = field(default_factory=_clip_scorers)
    callbacks: Callbacks = field(default_factory=Callbacks)
    # Where every model call is recorded (qia_cli/calllog: the SQLite log, or a batch worker's buffer);
    # None: nowhere, unless the LLM given is already noted with a log of its own (the benchmark's).
    calllog: Sink | None = None
    last_calls: list[Call] = field(default_factory=list)  # the last plan's calls, linked (qia plan --explain)
    # The per-user folders for what the agent reads by itself (the calibration of the knowledge model), in
    # place of QIA_HOME: a benchmark gives each item an empty one. None: qia_cli.paths' (QIA_HOME, platformdirs).
    home: Path | None = None
    # How far the knowledge model's answers are trusted; None: its saved or measured calibration (home's).
    calibration: Calibration | None = None
    _planner: Planner | None = None

    @property
    def planner(self) -> Planner:
        if self._planner is None:
            calibration = self.calibration or self._calibration_at_home()  # first: it may build the LLM
            # The planner gets its models noted: each call it makes is recorded with the stage it marks.
            self._planner = Planner(
                self._noted(self.llm) if self.llm is not None else lambda: self._noted(self._make_llm()),
                memory=self.memory,
                search=self.search,
                search_deadline=self.settings.search_timeout,
                search_ttl=self.settings.search_ttl,
                progress=self.callbacks.progress,
                knowledge=self._noted(self.knowledge) if self.knowledge is not None else _LazyKnowledge(self),
                calibration=calibration,
            )
        return self._planner

    def _calibration_at_home(self) -> Calibration | None:
        """The knowledge model's calibration as saved under `home` (None without one: the planner loads it
        from qia_cli.paths when it first needs it)."""
        if self.home is None:
            return None
        from qia_cli.llm.calibration import load
        from qia_cli.llm.factory import knowledge_info

        if self.knowledge is not None:
            info = self.knowledge.info
        else:
            info = knowledge_info(self.settings, lambda: (self.llm or self._make_llm()).info)
        return load(info, paths.calibration_file(self.home))

    def call_sink(self) -> Sink | None:
        """Where this agent's model calls go: its call log, or the one the LLM it was given carries."""
        return self.calllog if self.calllog is not None else getattr(self.llm, "calllog", None)

    def _noted(self, llm: LLM) -> LLM:
        return wrap(llm, self.call_sink(), secrets=(self.settings.llm_api_key,))

    def _make_llm(self) -> LLM:
        from qia_cli.llm.factory import make_llm

        self.llm = make_llm(self.settings, verbose=self.verbose)
        return self.llm

    def _make_knowledge(self) -> LLM:
        from qia_cli.llm.factory import make_knowledge_llm

        if self.knowledge is not None:  # built already (share_knowledge)
            return self.knowledge
        planner = unwrap(self.planner.llm)
        assert planner is not None  # the planner builds its LLM from settings when the agent has none
        knowledge = make_knowledge_llm(self.settings, planner, verbose=self.verbose)
        self.knowledge = knowledge
        return knowledge

    def share_knowledge(self) -> None:
        """Build the knowledge LLM now (its weights load on first use), so that copies of this agent made with
        dataclasses.replace share it. A model that cannot be built fails later, in the plan that asks it."""
        from qia_cli.errors import QiaError

        with contextlib.suppress(QiaError):
            self._make_knowledge()

    def plan(self, request: str, options: PlanOptions | None = None, *, model: str | None = None) -> Plan:
        """A new plan for `request`, its prompt sized for the text encoder of the image model `model` (by
        default the configured one); `options` are read, never changed."""
        from qia_cli.imaging.families import defaults_for

        mode = self.settings.llm_gaps
        gaps = mode == "on" or (mode == "auto" and self._llm_gaps_auto())
        family = defaults_for(model or self.settings.image_model)
        options = dataclasses.replace(options or PlanOptions(), llm_gaps=gaps, prompt_words=family.prompt_words)
        plan_id = new_plan_id()
        with recording(plan_id, request) as rec:
            try:
                plan = self.planner.plan(request, options)
            except BaseException as exc:
                self._log_failed(plan_id, request, rec.calls, exc)
                raise
        plan.id = plan_id
        self._log_plan(plan, rec.calls)
        if plan.knowledge_model is None and options.previous is not None:  # a refinement asks no new question
            plan.knowledge_model = options.previous.knowledge_model
        for note in (long_request_note(plan, family), cut_note(plan, family.prompt_words)):
            if note:
                plan.warnings.append(note)
        memory, recalled = self.memory, plan.recalled
        if memory is not None and recalled:
            self._remember(plan, lambda: memory.touch(recalled))
        return plan

    def _log_plan(self, plan: Plan, calls: list[Call]) -> None:
        """Link the plan's calls to its evidence (which answers reached the prompt) and record them."""
        from qia_cli.calllog.link import link

        redact = self._redactor()
        link(calls, plan)
        for call in calls:  # what linking quoted from the plan (evidence, gaps) is redacted like the calls
            call.request, call.why, call.detail = redact(plan.request), redact(call.why), redact(call.detail)
        self.last_calls = calls
        sink = self.call_sink()
        if sink is not None:
            model = plan.model.name if plan.model is not None else None
            row = {"id": plan.id, "time": now(), "request": plan.request, "prompt": plan.prompt}
            row.update(negative_prompt=plan.negative_prompt, model=model)
            sink.write({k: redact(v) if k != "time" else v for k, v in row.items()}, calls)

    def _redactor(self):
        from qia_cli.calllog.redact import Redactor

        return Redactor((self.settings.llm_api_key,))

    def _log_failed(self, plan_id: str, request: str, calls: list[Call], exc: BaseException) -> None:
        """A plan that failed keeps the calls it made (a server that stopped answering, say)."""
        self.last_calls = calls
        sink = self.call_sink()
        if sink is None or not calls:
            return
        from qia_cli.errors import first_line

        redact = self._redactor()
        error = getattr(exc, "message", None) or first_line(exc)
        sink.write({"id": plan_id, "time": now(), "request": redact(request), "error": redact(error)}, calls)

    def record_images(self, plan: Plan, outputs: list[str]) -> None:
        """Link the plan to the images it produced, in the call log."""
        sink = self.call_sink()
        if sink is not None and plan.id and outputs:
            sink.add_images(plan.id, outputs)

    @staticmethod
    def _remember(plan: Plan, write: Callable[[], object]) -> None:
        """A write to memory that must not undo the work done (a plan, saved images): a warning if it fails."""
        from qia_cli.errors import MemoryCorruptError, QiaError

        try:
            write()
        except MemoryCorruptError:
            raise
        except QiaError as exc:
            plan.warnings.append(f"not recorded in memory: {exc.message}")

    def _llm_gaps_auto(self) -> bool:
        """llm_gaps=auto: as the backend says (never for the bundled 135M, always for servers); for a GGUF,
        what its profile says (instruct, 1.2B parameters and up); on for anything without a profile."""
        from qia_cli.llm import registry

        default = registry.parse(self.settings.llm).capabilities.llm_gaps
        if default is not None:
            return default
        profile = getattr(getattr(self.planner.llm, "info", None), "profile", None)
        return True if profile is None else profile.llm_gaps

    def release_llm(self) -> None:
        """Free the planner LLM before diffusion loads, so the two don't compete for VRAM."""
        for llm in {id(m): m for m in (self.llm, self.knowledge) if m is not None}.values():
            if hasattr(llm, "close"):
                llm.close()

    def should_release_llm(self, opts: RenderOptions, device: str, model: str | None = None) -> bool:
        """opts.release_llm, or for None (auto): True when the LLM and the pipeline share a GPU, or when the
        pipeline `model` is large: its weights take more than half the memory it loads into (the GPU's, or
        the machine's RAM on the CPU), where a planner held beside it could push it into offload or swap."""
        from qia_cli.llm import registry

        if opts.release_llm is not None:
            return opts.release_llm
        if not registry.parse(self.settings.llm).capabilities.gpu_memory:
            return False  # the LLM holds no memory here (a server runs in another process)
        if device == "auto":
            from qia_cli.imaging.device import resolve_device

            device = resolve_device(device)[0]
        if model is not None and _large_pipeline(model, device):
            return True
        if self.settings.llm_gpu_layers == 0:
            return False  # the LLM holds no VRAM: keep it warm
        return not device.startswith("cpu")

    def set_llm(self, llm, settings: Settings | None = None) -> None:
        """Swap the planner LLM (a session's /model llm); the old one is freed."""
        self.release_llm()
        self.llm, self._planner = llm, None
        if settings is not None:
            self.settings = settings

    def set_search(self, backend) -> None:
        self.search = backend
        if self._planner is not None:
            self._planner.search = backend

    # -- rendering ------------------------------------------------------------------------------
    def check_render(self, opts: RenderOptions, *, model_too: bool = True) -> None:
        """Every render input that can be checked without loading anything, so that a command fails at
        once and not after planning: the model (on paper, unless `model_too` is False), size, seed, output
        place, device and, when feedback rounds are asked for, the scorer. Raises a QiaError; imports no
        torch for device auto/cpu."""
        from qia_cli.imaging.families import defaults_for
        from qia_cli.imaging.output import check_output_file, check_writable
        from qia_cli.seeds import check_seed

        s = self.settings
        model = opts.model or s.image_model
        if model_too:
            self.renderer.check_model(model)
        fam = defaults_for(model)
        self.renderer.validate_size(opts.width or s.width or fam.width, opts.height or s.height or fam.height)
        check_seed(opts.seed, opts.count)
        if opts.output is not None:
            check_output_file(opts.output, overwrite=opts.overwrite)
        else:
            check_writable(opts.outdir or Path(s.outdir or paths.default_outdir()).expanduser())
        device = (opts.device or s.device or "auto").strip().lower()
        if device not in {"auto", "cpu"}:
            from qia_cli.imaging.device import resolve_device

            resolve_device(device)  # an unknown or absent device (needs torch: only when one is named)
        wanted = opts.rounds if opts.rounds is not None else s.rounds
        if wanted and self.scorer is None:
            from qia_cli.imaging.scoring import check_available

            check_available(opts.scorer or s.scorer)

    def spec_for(self, plan: Plan, opts: RenderOptions) -> RenderSpec:
        from qia_cli.imaging.families import defaults_for

        s = self.settings
        # "Like the one I made yesterday": that session's seed and model, unless the user names others.
        session_seed = plan.session.seed if plan.session is not None else None
        model = (
            opts.model
            or (plan.session.model if plan.session is not None and plan.session.model else None)
            or s.image_model
        )
        fam = defaults_for(model)
        negative = plan.negative_prompt
        if opts.negative and opts.negative not in negative:
            negative = f"{opts.negative}, {negative}" if negative else opts.negative
        guidance = (
            opts.guidance if opts.guidance is not None else (s.guidance if s.guidance is not None else fam.guidance)
        )
        return RenderSpec(
            prompt=plan.prompt,
            negative_prompt=negative,
            model=model,
            width=opts.width or s.width or fam.width,
            height=opts.height or s.height or fam.height,
            steps=opts.steps or s.steps or fam.steps,
            guidance=guidance,
            family=fam.family,
            # Qwen-Image's CFG runs through true_cfg_scale: --guidance sets it there
            true_cfg_scale=guidance if fam.true_cfg_scale is not None else None,
            seed=opts.seed
            if opts.seed is not None
            else session_seed
            if session_seed is not None
            else random_seed(opts.count),
            device=opts.device or s.device,
            dtype=opts.dtype or s.dtype,
            vae=opts.vae or s.vae,
        )

    def render(
        self,
        plan: Plan,
        opts: RenderOptions,
        spec: RenderSpec | None = None,
        *,
        on_step: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> GenerateResult:
        """Render `plan`; with feedback rounds, score each image against the checklist, revise, render again.

        `on_step(step, total)` after each denoising step; `cancel()` returning True stops the render
        (RenderCancelled). `plan` is not changed: what rendering notes goes into the result's copy of it."""
        from qia_cli.imaging.output import check_output_file, check_writable
        from qia_cli.imaging.pipeline import is_black

        spec = spec or self.spec_for(plan, opts)
        self.renderer.validate_size(spec.width, spec.height)
        outdir = opts.outdir or Path(self.settings.outdir or paths.default_outdir()).expanduser()
        if opts.output is not None:
            check_output_file(opts.output, overwrite=opts.overwrite)
        else:
            check_writable(outdir)  # fail before any model loads, and leave nothing behind
        wanted = opts.rounds if opts.rounds is not None else self.settings.rounds
        scorer_source = opts.scorer or self.settings.scorer
        if wanted and plan.checklist and self.scorer is None:
            from qia_cli.imaging.scoring import check_available

            check_available(scorer_source)  # asked for feedback: a missing scorer fails before any render

        timings = {"plan": plan.timings.get("total", 0.0)}
        warnings = list(plan.warnings)
        if self.should_release_llm(opts, spec.device, spec.model):
            self.release_llm()
        start = time.perf_counter()
        loaded = self.renderer.load(
            spec.model,
            spec.device,
            dtype=spec.dtype,
            vae=spec.vae,
            progress=self.callbacks.progress,
            verbose=self.verbose,
        )
        timings["load_pipeline"] = round(time.perf_counter() - start, 4)
        for note in (getattr(loaded, "note", None), encoder_note(loaded.pipe, spec.prompt, loaded.family)):
            if note and note not in warnings:
                warnings.append(note)
        spec = spec.model_copy(update={"dtype": loaded.dtype_name, "vae": loaded.vae, "family": loaded.family.family})
        rounds = self._feedback_rounds(plan, wanted, loaded.device, scorer_source, warnings)

        start = time.perf_counter()
        images = self.renderer.render(
            spec, loaded=loaded, count=opts.count, on_step=on_step, cancel=cancel, verbose=self.verbose
        )
        timings["render"] = round(time.perf_counter() - start, 4)
        if any(is_black(image) for image, _seed in images):
            warnings.append(
                f"the image came out all black (NaNs in {spec.dtype}?)"
                + ("; try --dtype fp32" if spec.dtype != "fp32" else "")
            )
        plan = plan.model_copy(update={"warnings": warnings})

        from qia_cli.agent.feedback import Shot

        result = GenerateResult(plan=plan, render=spec, timings=timings, device=loaded.device)
        chains = [[Shot(image, spec.model_copy(update={"seed": seed}))] for image, seed in images]
        if rounds:
            with recording(plan.id, plan.request) as rec:
                try:
                    chains = self._feedback(plan, chains, rounds, loaded, scorer_source, timings, on_step, cancel)
                except BaseException:
                    self._log_feedback(rec.calls, [])  # a cancelled or failed loop keeps the calls it made
                    raise
            result.rounds = [shot.round for chain in chains for shot in chain if shot.round is not None]
            self._log_feedback(rec.calls, result.rounds)
        start = time.perf_counter()
        self._save(plan, result, chains, opts, outdir)
        timings["save"] = round(time.perf_counter() - start, 4)
        timings["total"] = round(sum(v for k, v in timings.items() if k != "total"), 4)
        result.timings = timings
        return result

    # -- the feedback loop ------------------------------------------------------------------------
    def _feedback_rounds(self, plan: Plan, wanted: int | None, device: str, source: str, warnings: list[str]) -> int:
        """Rounds to run: as asked, or by default 1 on a GPU and 0 on the CPU (0 when it can't run, with
        the reason added to `warnings`)."""
        rounds = wanted if wanted is not None else (0 if device == "cpu" else 1)
        if rounds and not plan.checklist:
            warnings.append("feedback off: the plan has no checklist to score")
            return 0
        if rounds and wanted is None and self.scorer is None:
            from qia_cli.errors import ModelError
            from qia_cli.imaging.scoring import check_available

            try:  # the default loop: a scorer that isn't downloaded turns it off with a warning
                check_available(source)
            except ModelError as exc:
                warnings.append(f"feedback off: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
                return 0
        return rounds

    def _log_feedback(self, calls: list[Call], rounds: list) -> None:
        from qia_cli.calllog.link import link_feedback

        sink = self.call_sink()
        if calls and sink is not None:
            link_feedback(calls, [r.prompt for r in rounds])
            sink.write(None, calls)

    def _phrase_fn(self, device: str):
        """A visual description of a missing item from the planner LLM, or None for rules only.

        Rules only when no LLM was built (--no-plan) or the LLM would sit on the GPU next to the pipeline;
        a CPU GGUF that was freed before diffusion reloads on first use (the bundled one in well under a
        second) and then holds only CPU memory.
        """
        llm = self.llm
        if llm is None or (bool(getattr(llm, "n_gpu_layers", 0)) and device != "cpu"):
            return None
        from qia_cli.agent.grounding.reasoning import describe
        from qia_cli.errors import QiaError
        from qia_cli.llm import calls

        noted = self._noted(llm)

        def phrase(item: str) -> str | None:
            if item.lower().startswith("text "):
                return None
            try:
                with calls.stage(calls.FEEDBACK, detail=item):
                    return describe(noted, item).text
            except (QiaError, OSError, RuntimeError, ValueError):
                return None

        return phrase

    def _feedback(
        self,
        plan: Plan,
        chains: list,
        rounds: int,
        loaded,
        source: str,
        timings: dict,
        on_step: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> list:
        from qia_cli.agent.feedback import FeedbackLoop, run_rounds
        from qia_cli.imaging import scoring
        from qia_cli.imaging.families import negative_applies

        start = time.perf_counter()
        scorer = self.scorer
        if scorer is None:
            device, dtype = scoring.placement(loaded.device, loaded.dtype)
            scorer = self.scorers.load(source, device, dtype, progress=self.callbacks.progress, verbose=self.verbose)
        timings["scorer_load"] = round(time.perf_counter() - start, 4)

        start = time.perf_counter()
        phrase = self._phrase_fn(loaded.device)

        def draw(spec: RenderSpec):
            return self.renderer.render(
                spec, loaded=loaded, count=1, on_step=on_step, cancel=cancel, verbose=self.verbose
            )[0][0]

        done = []
        for index, (first,) in enumerate(chains):
            loop = FeedbackLoop(
                list(plan.checklist),
                self.settings.threshold,
                phrase=phrase,
                use_negative=negative_applies(loaded.family, first.spec.guidance, first.spec.true_cfg_scale),
            )
            done.append(
                run_rounds(loop, first, draw, scorer.score, rounds, image=index, progress=self.callbacks.progress)
            )
        if self.scorer is None:
            self.scorers.release_if_tight()
        timings["feedback"] = round(time.perf_counter() - start, 4)
        return done

    def _save(self, plan: Plan, result: GenerateResult, chains: list, opts: RenderOptions, outdir: Path) -> None:
        """Save the kept image of each chain (and with --keep-all every round's), recording every round."""
        from qia_cli.imaging.output import build_metadata, output_name, save_image

        plan_json = plan.model_dump_json()
        for index, shots in enumerate(chains):
            kept = next((s for s in shots if s.round is None or s.round.kept), shots[0])
            rounds = [s.round for s in shots if s.round is not None]
            extra = [s for s in shots if s is not kept] if opts.keep_all else []
            # Every file of a chain is named after the kept image: NAME.png, and NAME_r0.png (the first
            # render), NAME_r1.png, ... for the rounds --keep-all keeps.
            stem = output_name(plan.request, kept.spec.seed)[: -len(".png")]
            for shot in extra + [kept]:  # the kept image last, so its files name all the others
                output, name = opts.output, None
                tag = "" if shot is kept else f"_r{shot.round.index}"
                if output is not None:
                    number = f"-{index + 1}" if len(chains) > 1 else ""
                    output = output.with_name(f"{output.stem}{number}{tag}{output.suffix or '.png'}")
                else:
                    name = stem + tag
                metadata = build_metadata(plan.request, shot.spec, shot.spec.seed, plan_json)
                if rounds:
                    metadata["qia:round"] = str(shot.round.index)
                    metadata["qia:rounds"] = json.dumps([r.model_dump() for r in rounds], ensure_ascii=False)
                record = result.model_copy(update={"outputs": [], "rounds": rounds, "render": shot.spec})
                sidecar = json.loads(record.model_dump_json())
                if opts.batch is not None:
                    sidecar["batch"] = {**opts.batch, "image": index, "kept": shot is kept}
                    metadata["qia:batch"] = json.dumps(sidecar["batch"])
                png, side = save_image(
                    shot.image,
                    outdir=outdir,
                    output=output,
                    metadata=metadata,
                    sidecar=sidecar,
                    name=name,
                    overwrite=opts.overwrite,
                )
                if shot.round is not None:
                    shot.round.output = str(png)
                if shot is kept:
                    result.outputs.append(
                        Output(
                            path=str(png),
                            sidecar=str(side),
                            seed=shot.spec.seed,
                            width=shot.image.width,
                            height=shot.image.height,
                        )
                    )

    def record_session(self, plan: Plan, outputs: list[str], kind: str, spec: RenderSpec | None = None) -> None:
        """The plan and its images in the call log, and the session in memory (when memory is on)."""
        self.record_images(plan, outputs)
        memory = self.memory
        if memory is None:
            return
        record = {
            "request": plan.request,
            "prompt": plan.prompt,
            "outputs": outputs,
            "kind": kind,
            "seed": spec.seed if spec else None,
            "model": spec.model if spec else None,
            "plan_id": plan.id,
        }
        self._remember(plan, lambda: memory.add_session(record))


def _short(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _large_pipeline(model: str, device: str) -> bool:
    """Whether `model`'s weights on disk take more than half the memory of `device` (a GPU's, else RAM);
    False when either is unknown (a hub id not cached, no reading of memory)."""
    from qia_cli.imaging.device import gpu_memory
    from qia_cli.imaging.pipeline import disk_weights
    from qia_cli.models.catalog import total_ram

    weights = disk_weights(model)
    if not weights:
        return False
    gpu = gpu_memory(device)
    memory = gpu[1] if gpu is not None else (total_ram() if device.startswith("cpu") else None)
    return memory is not None and weights > memory / 2


def _encoder(family: FamilyDefaults | None) -> tuple[str, int, int]:
    """(what reads the prompt, its tokens, the word budget) for a family; CLIP's for none."""
    from qia_cli.agent.compose import MAX_PROMPT_WORDS

    if family is None:
        return "CLIP", 77, MAX_PROMPT_WORDS
    return family.encoder, family.max_tokens, family.prompt_words


def long_request_note(plan: Plan, family: FamilyDefaults | None = None) -> str | None:
    """A warning when the request alone passes the prompt's word budget: the request always goes in whole, so
    nothing the plan found fits, and the image model's text encoder stops before its end."""
    words = plan.request.split()
    encoder, tokens, budget = _encoder(family)
    if len(words) <= budget or plan.previous_prompt:
        return None
    name = f"{family.family}'s" if family is not None and family.known else "the image model's"
    return (
        f"the request has {len(words)} words, past the prompt's {budget}-word cap for {name} {encoder} text "
        f"encoder ({tokens} tokens): nothing the plan found fits, and the encoder will not read the end "
        f"('{_short(' '.join(words[budget:]), 60)}')"
    )


def cut_note(plan: Plan, max_words: int | None = None) -> str | None:
    """A warning naming what the plan found but the prompt had no room for (the request always goes in
    whole, then the additions while the word budget lasts: a long request crowds them out)."""
    from qia_cli.agent.compose import MAX_PROMPT_WORDS

    budget = max_words or MAX_PROMPT_WORDS
    prompt = plan.prompt.lower()
    room = budget - len(plan.prompt.split())
    missing = [
        e.content.strip(" ,.;")
        for e in plan.evidence
        if e.used
        and e.source in {"memory", "user", "search", "session", "reasoning"}
        and e.content.strip(" ,.;")
        and e.content.strip(" ,.;").lower() not in prompt
    ]
    missing = list(dict.fromkeys(missing))
    if not any(len(text.split()) > room for text in missing):  # left out by choice, not for room
        return None
    shown = "; ".join(f"'{_short(text, 60)}'" for text in missing[:3]) + (" ..." if len(missing) > 3 else "")
    return (
        f"the prompt is capped at {budget} words and the request fills it: "
        f"{len(missing)} thing(s) the plan found were left out: {shown}"
    )


def _reader(pipe, family: FamilyDefaults | None) -> tuple[Any, int]:
    """The tokenizer of the encoder that reads the whole prompt, and how many tokens it reads."""
    if family is not None and family.known:
        name = f"tokenizer_{family.long_prompt_arg[-1]}" if family.long_prompt_arg else "tokenizer"
        tokenizer = getattr(pipe, name, None)
        if tokenizer is not None:
            return tokenizer, family.max_tokens
        # SD3 without its T5: the CLIP encoders read the prompt
    tokenizer = getattr(pipe, "tokenizer", None)
    limit = int(getattr(tokenizer, "model_max_length", 0) or 0) if tokenizer is not None else 0
    return tokenizer, limit


def encoder_note(pipe, prompt: str, family: FamilyDefaults | None = None) -> str | None:
    """A warning naming what the image model will not read: past the token budget of the text encoder that
    reads the whole prompt (CLIP's 77 tokens; T5's 256 or 512; Qwen's 512)."""
    tokenizer, limit = _reader(pipe, family)
    if tokenizer is None or not prompt:
        return None
    try:
        if not 8 <= limit <= 4096:
            return None
        ids = tokenizer(prompt, truncation=False).input_ids
        if len(ids) <= limit:
            return None
        dropped = tokenizer.decode(ids[limit - 1 : -1], skip_special_tokens=True).strip()
    except Exception:  # noqa: BLE001 - only a warning: never fail a render over it
        return None
    return f"the image model reads {limit} tokens and the prompt has {len(ids)}; it will not see: '{_short(dropped)}'"
