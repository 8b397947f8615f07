"""The Agent's parts: an injected renderer gets the hooks of each call, nothing the caller passes in is changed,
and copies of an agent share what it loaded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PIL import Image

from qia_cli.agent.planner import PlanOptions
from qia_cli.agent.run import Agent, RenderOptions
from qia_cli.agent.types import Plan
from qia_cli.batch.ray_runner import MemoryView
from qia_cli.batch.runner import renderer_of
from qia_cli.config import Settings
from qia_cli.imaging.families import defaults_for
from qia_cli.imaging.pipeline import LoadedPipeline
from qia_cli.llm.fake import FakeLLM


class FakeRenderer:
    """Draws flat images of one colour; records what each call was given."""

    def __init__(self, colour=(0, 0, 0)) -> None:
        self.colour = colour
        self.loads = 0
        self.calls: list[dict] = []
        self.checked: list[str] = []

    def check_model(self, model: str) -> None:
        self.checked.append(model)

    def validate_size(self, width: int, height: int) -> None:
        pass

    def load(self, model, device="auto", *, dtype="auto", vae="full", progress=None, verbose=False):
        import torch

        self.loads += 1
        return LoadedPipeline(None, model, "cpu", torch.float32, defaults_for(model), 0.0)

    def render(self, spec, *, loaded=None, count=1, on_step=None, cancel=None, verbose=False):
        self.calls.append({"on_step": on_step, "cancel": cancel, "loaded": loaded})
        if on_step is not None:
            on_step(1, 1)
        return [(Image.new("RGB", (spec.width, spec.height), self.colour), spec.seed + i) for i in range(count)]

    def release(self) -> None:
        pass


def make_plan() -> Plan:
    return Plan(request="a red bicycle", prompt="a red bicycle", warnings=["from planning"])


def opts(tmp_path: Path, **kw) -> RenderOptions:
    return RenderOptions(model="x/sd-turbo", device="cpu", width=64, height=64, seed=5, outdir=tmp_path, rounds=0, **kw)


def test_render_uses_the_injected_renderer_with_the_hooks_of_the_call(tmp_path):
    renderer = FakeRenderer(colour=(9, 9, 9))
    agent = Agent(Settings(llm="fake"), renderer=renderer)
    agent.check_render(opts(tmp_path))
    steps: list[tuple[int, int]] = []

    def cancel() -> bool:
        return False

    result = agent.render(make_plan(), opts(tmp_path), on_step=lambda s, t: steps.append((s, t)), cancel=cancel)
    assert renderer.checked == ["x/sd-turbo"] and renderer.loads == 1
    assert renderer.calls[0]["cancel"] is cancel and steps == [(1, 1)]
    assert len(result.outputs) == 1 and Path(result.outputs[0].path).is_file()
    agent.render(make_plan(), opts(tmp_path))  # the next call's hooks are its own: none
    assert renderer.calls[1]["on_step"] is None and renderer.calls[1]["cancel"] is None


def test_render_leaves_the_plan_as_given_and_the_result_has_what_it_noted(tmp_path):
    plan = make_plan()
    before = plan.model_dump()
    result = Agent(Settings(llm="fake"), renderer=FakeRenderer()).render(plan, opts(tmp_path))
    assert plan.model_dump() == before
    assert result.plan.warnings[0] == "from planning"
    assert any("all black" in w for w in result.plan.warnings[1:])


def test_plan_leaves_the_options_as_given():
    agent = Agent(Settings(llm="fake", llm_gaps="off", search="off"), llm=FakeLLM())
    seen: list[bool] = []
    real = agent.planner.plan
    agent.planner.plan = lambda request, options: seen.append(options.llm_gaps) or real(request, options)
    options = PlanOptions()
    agent.plan("a red bicycle", options)
    assert seen == [False] and options.llm_gaps is True


def test_a_ray_workers_memory_view_plans_a_request_about_a_past_session():
    agent = Agent(Settings(llm="fake", search="off"), memory=MemoryView([]), llm=FakeLLM())
    plan = agent.plan("like the one I made yesterday, but at night")
    assert plan.session is None and "night" in plan.prompt


def test_copies_of_an_agent_share_its_renderer_scorers_and_knowledge_model(monkeypatch):
    from qia_cli.calllog.record import unwrap
    from qia_cli.llm import factory

    monkeypatch.setattr(factory, "make_knowledge_llm", lambda *a, **k: FakeLLM())  # a new model per call
    agent = Agent(Settings(llm="fake", search="off"), llm=FakeLLM())
    copy = renderer_of(agent)
    assert copy.renderer is agent.renderer and copy.scorers is agent.scorers and copy.llm is None
    agent.share_knowledge()
    thread_copy = dataclasses.replace(agent, _planner=None)
    shared = agent.knowledge
    # (the planners get the model wrapped, so that its calls are recorded: the model inside is the one)
    assert shared is not None and shared is not agent.llm and unwrap(thread_copy.planner.knowledge_llm) is shared
    assert unwrap(agent.planner.knowledge_llm) is shared and agent.knowledge is shared  # built once, for both


def test_each_agent_has_its_own_renderer_and_scorers():
    one, two = Agent(Settings()), Agent(Settings())
    assert one.renderer is not two.renderer and one.scorers is not two.scorers


def test_a_plan_names_the_knowledge_model_without_building_it(monkeypatch):
    from qia_cli.llm import bundled, factory

    def never(*_a, **_k):
        raise AssertionError("the knowledge model was built (or unpacked) only to be named")

    monkeypatch.setattr(factory, "make_knowledge_llm", never)
    monkeypatch.setattr(bundled, "knowledge_path", never)
    monkeypatch.setattr(bundled, "knowledge_installed", lambda: True)
    request = "a lighthouse on a cliff"  # no knowledge question: nothing asks the knowledge model
    bundled_planner = Agent(Settings(llm="bundled", search="off"), llm=FakeLLM())  # the bundled planner's settings
    plan = bundled_planner.plan(request)
    assert (plan.model.name, plan.knowledge_model.name) == ("fake", bundled.KNOWLEDGE_NAME)
    assert bundled_planner.knowledge is None
    plan = Agent(Settings(llm="fake", search="off"), llm=FakeLLM()).plan(request)  # a planner the user chose
    assert plan.knowledge_model.name == "fake"
    named = Agent(Settings(llm="fake", search="off", knowledge_llm="/models/gemma-2b.gguf"), llm=FakeLLM())
    assert named.plan(request).knowledge_model.name == "gemma-2b.gguf"
    refined = named.plan("make it night", PlanOptions(previous=named.plan(request)))
    assert refined.previous_prompt and refined.knowledge_model.name == "gemma-2b.gguf"


def test_a_plan_names_the_knowledge_model_that_answered():
    gemma = FakeLLM()
    gemma.info = gemma.info.model_copy(update={"name": "gemma"})
    agent = Agent(Settings(llm="fake", search="off"), llm=FakeLLM(), knowledge=gemma)
    plan = agent.plan("a lighthouse on a cliff")
    assert (plan.model.name, plan.knowledge_model.name) == ("fake", "gemma")
