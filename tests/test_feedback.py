"""The feedback loop: revision rules, the loop in the Agent (scripted scores), the CLIP scorer, the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from qia_cli.agent.feedback import NEGATIVE_TERMS, FeedbackLoop
from qia_cli.agent.run import Agent, RenderOptions
from qia_cli.agent.types import ItemScore, Plan, Round
from qia_cli.config import Settings
from qia_cli.errors import ModelError
from qia_cli.imaging import pipeline, scoring
from qia_cli.imaging.output import read_metadata

RENDERER = pipeline.DiffusersRenderer()  # one for the module: the pipeline stays warm between tests
CHECKLIST = ["a red bicycle", "a brick wall"]
PROMPT = "a red bicycle, leaning on a brick wall, watercolor"


def rnd(index: int, scores: list[float], prompt: str = PROMPT, seed: int = 7, items=CHECKLIST) -> Round:
    return Round(
        index=index,
        prompt=prompt,
        negative_prompt="blurry",
        seed=seed,
        scores=[ItemScore(item=i, score=s) for i, s in zip(items, scores)],
        overall=round(sum(scores) / len(scores), 4),
    )


# --- revision rules (pure logic) -----------------------------------------------------------------


def test_weakest_items_move_to_the_front_with_explicit_wording():
    items = ["a red bicycle", "a brick wall", "watercolor"]
    loop = FeedbackLoop(items, threshold=0.22)
    loop.record(rnd(0, [0.30, 0.15, 0.20], items=items))
    rev = loop.next()
    assert rev.prompt.startswith("clearly showing a brick wall, clearly showing watercolor, a red bicycle")
    assert rev.prompt.count("watercolor") == 1  # the plain mention went to the front, not duplicated
    assert rev.seed == 7  # same seed: the change is the prompt's
    assert rev.negative_prompt == f"blurry, {NEGATIVE_TERMS}"
    assert "'a brick wall' 0.15" in rev.reason and "0.22" in rev.reason
    assert "a brick wall" in rev.change


def test_no_revision_when_every_item_passes():
    loop = FeedbackLoop(CHECKLIST, threshold=0.22)
    loop.record(rnd(0, [0.30, 0.25]))
    assert loop.done() and loop.next() is None


def test_new_seed_when_the_weak_item_already_leads():
    loop = FeedbackLoop(CHECKLIST, threshold=0.22)
    loop.record(rnd(0, [0.12, 0.30]))  # "a red bicycle" opens the prompt already
    rev = loop.next()
    assert rev.prompt == PROMPT and rev.seed != 7
    assert "new seed" in rev.change and "already leads" in rev.reason


def test_a_worse_revision_goes_back_to_the_best_round_and_reseeds():
    loop = FeedbackLoop(CHECKLIST, threshold=0.22)
    loop.record(rnd(0, [0.30, 0.10]))
    first = loop.next()
    loop.record(rnd(1, [0.20, 0.12], prompt=first.prompt))  # worse overall than round 0
    second = loop.next()
    assert loop.best.index == 0
    assert second.prompt == PROMPT and second.seed not in {7}
    assert "round 0" in second.reason and "did not raise" in second.reason


def test_llm_phrase_and_text_items_and_no_negative_without_guidance():
    items = ["cherry blossoms", 'text "SPRING"']
    loop = FeedbackLoop(items, 0.22, phrase=lambda item: "pale pink flowers on dark branches", use_negative=False)
    loop.record(rnd(0, [0.1, 0.12], prompt='a poster, cherry blossoms, the text "SPRING"', items=items))
    rev = loop.next()
    assert rev.prompt == (
        "clearly showing cherry blossoms, pale pink flowers on dark branches, "
        'with the text "SPRING" clearly legible, a poster'
    )
    assert "planner LLM" in rev.change
    assert rev.negative_prompt == "blurry"


# --- the loop inside Agent.render, with scripted scores --------------------------------------------


class ScriptedScorer:
    """Returns the next list of item scores on each call."""

    name = "scripted"

    def __init__(self, *scores: list[float]) -> None:
        self.scores = list(scores)
        self.calls = 0

    def score(self, image, items):
        self.calls += 1
        return self.scores.pop(0)

    def close(self) -> None:
        pass


def make_plan() -> Plan:
    return Plan(request="a red bicycle", prompt=PROMPT, negative_prompt="blurry", checklist=list(CHECKLIST))


def opts(model: Path, outdir: Path, **kw) -> RenderOptions:
    base = dict(model=str(model), device="cpu", steps=2, guidance=0.0, seed=11, outdir=outdir)
    base.update(kw)
    return RenderOptions(**base)


def no_real_scorer(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the scorer must not load")

    monkeypatch.setattr(scoring.ClipScorers, "load", refuse)
    monkeypatch.setattr(scoring, "check_available", refuse)


@pytest.mark.parametrize("rounds", [0, None])  # None: the default, 0 rounds on the CPU
def test_rounds_zero_or_cpu_default_renders_once_and_loads_no_scorer(tiny_pipeline_dir, tmp_path, monkeypatch, rounds):
    no_real_scorer(monkeypatch)
    scorer = ScriptedScorer()
    agent = Agent(Settings(), scorer=scorer, renderer=RENDERER)
    result = agent.render(make_plan(), opts(tiny_pipeline_dir, tmp_path, rounds=rounds, count=2))
    assert scorer.calls == 0 and result.rounds == []
    assert [o.seed for o in result.outputs] == [11, 12]
    assert len(list(tmp_path.glob("*.png"))) == 2
    assert "feedback" not in result.timings
    assert "qia:rounds" not in read_metadata(Path(result.outputs[0].path))


def test_loop_stops_when_items_pass_and_keeps_the_best(tiny_pipeline_dir, tmp_path):
    scorer = ScriptedScorer([0.30, 0.10], [0.31, 0.28])
    agent = Agent(Settings(threshold=0.22), scorer=scorer, renderer=RENDERER)
    result = agent.render(make_plan(), opts(tiny_pipeline_dir, tmp_path, rounds=3))
    assert scorer.calls == 2 and len(result.rounds) == 2  # round 1 passed: no third render
    first, second = result.rounds
    assert second.prompt.startswith("clearly showing a brick wall") and second.reason
    assert [r.kept for r in result.rounds] == [False, True]
    assert first.output is None and second.output == result.outputs[0].path
    assert len(list(tmp_path.glob("*.png"))) == 1  # only the best is saved by default
    meta = read_metadata(Path(second.output))
    assert meta["qia:prompt"] == second.prompt and meta["qia:round"] == "1"
    recorded = json.loads(meta["qia:rounds"])
    assert [r["overall"] for r in recorded] == [0.2, 0.295]
    sidecar = json.loads(Path(result.outputs[0].sidecar).read_text())
    assert len(sidecar["rounds"]) == 2 and sidecar["render"]["prompt"] == second.prompt
    assert result.timings["feedback"] > 0 and "scorer_load" in result.timings


def test_keep_all_saves_every_round_and_the_best_is_the_output(tiny_pipeline_dir, tmp_path):
    scorer = ScriptedScorer([0.30, 0.10], [0.20, 0.10], [0.25, 0.12])
    agent = Agent(Settings(threshold=0.22), scorer=scorer, renderer=RENDERER)
    result = agent.render(make_plan(), opts(tiny_pipeline_dir, tmp_path, rounds=2, keep_all=True))
    assert len(result.rounds) == 3 and [r.kept for r in result.rounds] == [True, False, False]
    paths = [r.output for r in result.rounds]
    assert all(paths) and len(set(paths)) == 3 and len(list(tmp_path.glob("*.png"))) == 3
    assert result.outputs[0].path == paths[0] and len(result.outputs) == 1
    kept = Path(paths[0]).stem  # the other rounds are named after the kept image, as the README says
    assert "_r" not in kept and [Path(p).stem for p in paths[1:]] == [f"{kept}_r1", f"{kept}_r2"]
    kept_meta = json.loads(read_metadata(Path(paths[0]))["qia:rounds"])
    assert [r["output"] for r in kept_meta[1:]] == paths[1:]  # the kept file names the others


def test_keep_all_with_an_output_file_names_the_rounds_after_it(tiny_pipeline_dir, tmp_path):
    scorer = ScriptedScorer([0.30, 0.10], [0.31, 0.28])
    agent = Agent(Settings(threshold=0.22), scorer=scorer, renderer=RENDERER)
    target = tmp_path / "mine.png"
    result = agent.render(make_plan(), opts(tiny_pipeline_dir, tmp_path, rounds=3, keep_all=True, output=target))
    assert result.outputs[0].path == str(target) and [r.kept for r in result.rounds] == [False, True]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["mine.png", "mine_r0.png"]


def test_explicit_rounds_with_missing_scorer_fail_before_loading(tiny_pipeline_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    agent = Agent(Settings())
    with pytest.raises(ModelError, match="not in the Hugging Face cache") as info:
        agent.render(make_plan(), opts(tiny_pipeline_dir, tmp_path / "out", rounds=1, scorer="qia-tests/no-clip"))
    assert "--rounds 0" in info.value.hint and "hf download qia-tests/no-clip" in info.value.hint
    assert agent.renderer.loads == 0 and not (tmp_path / "out").exists()


def test_default_loop_on_a_gpu_without_the_scorer_warns_and_turns_off(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    warnings: list[str] = []
    assert Agent(Settings())._feedback_rounds(make_plan(), None, "cuda", "qia-tests/no-clip", warnings) == 0
    assert warnings and warnings[0].startswith("feedback off")
    assert Agent(Settings(), scorer=ScriptedScorer())._feedback_rounds(make_plan(), None, "cuda", "x", []) == 1


# --- the CLIP scorer ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> Path:
    from qia_cli.imaging.tiny import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


def test_clip_scorer_scores_images_per_item_and_is_cached(tiny_clip_dir, tiny_pipeline_dir):
    from qia_cli.agent.types import RenderSpec

    spec = RenderSpec(
        prompt="a red bicycle",
        model=str(tiny_pipeline_dir),
        width=64,
        height=64,
        steps=2,
        guidance=0.0,
        seed=1,
        device="cpu",
    )
    (image, _), (other, _) = RENDERER.render(spec, count=2)
    scorers = scoring.ClipScorers()
    scorer = scorers.load(str(tiny_clip_dir), "cpu")
    assert isinstance(scorer, scoring.Scorer) and scorer.device == "cpu"
    items = ["a red bicycle", "a brick wall", 'text "HELLO"']
    scores = scorer.score(image, items)
    assert len(scores) == 3 and all(-1.0 <= s <= 1.0 for s in scores)
    assert len(set(scores)) == 3  # each item is scored on its own
    assert scorer.score(image, items) == scores  # deterministic
    assert scorer.score(other, items) != scores  # and it looks at the image
    assert scorers.load(str(tiny_clip_dir), "cpu") is scorer and scorers.loads == 1
    scorers.release()
    assert scorers.cached() == [] and scorer.model is None


def test_scorer_folder_must_hold_a_model(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        scoring.ClipScorers().load(str(tmp_path), "cpu")
    with pytest.raises(ModelError, match="does not exist"):
        scoring.ClipScorers().load(str(tmp_path / "nope"), "cpu")


def test_uncached_scorer_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    start = time.perf_counter()
    with pytest.raises(ModelError, match="scorer qia-tests/no-clip is not in the Hugging Face cache"):
        scoring.ClipScorers().load("qia-tests/no-clip", "cpu")
    assert time.perf_counter() - start < 10


# --- end to end ----------------------------------------------------------------------------------------


def test_generate_with_rounds_records_every_round(tiny_pipeline_dir, tiny_clip_dir, tmp_path, qia, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("QIA_THRESHOLD", "1")  # no cosine reaches 1: every round revises, so all 3 render
    code, stdout, err = qia(
        "generate",
        "a red bicycle leaning on a wall",
        "--model",
        str(tiny_pipeline_dir),
        "--scorer",
        str(tiny_clip_dir),
        "--rounds",
        "2",
        "--json",
        "--llm",
        "fake",
        "--search",
        "off",
        "--no-memory",
        "--device",
        "cpu",
        "--steps",
        "2",
        "--seed",
        "3",
        "--outdir",
        str(out),
    )
    assert code == 0, err
    result = json.loads(stdout)
    rounds = result["rounds"]
    assert [r["index"] for r in rounds] == [0, 1, 2]
    checklist = result["plan"]["checklist"]
    assert checklist and all([s["item"] for s in r["scores"]] == checklist for r in rounds)
    assert rounds[0]["change"] is None and all(r["change"] and r["reason"] for r in rounds[1:])
    kept = [r for r in rounds if r["kept"]]
    assert len(kept) == 1 and kept[0]["overall"] == max(r["overall"] for r in rounds)
    assert [o["path"] for o in result["outputs"]] == [kept[0]["output"]]
    assert len(list(out.glob("*.png"))) == 1
    assert len(json.loads(read_metadata(Path(kept[0]["output"]))["qia:rounds"])) == 3
    assert result["timings"]["feedback"] > 0 and result["timings"]["scorer_load"] > 0


def test_scorer_placement_and_release_follow_free_cuda_memory(monkeypatch):
    import torch

    monkeypatch.setattr(scoring, "_cuda_free", lambda device: 512 << 20)
    assert scoring.placement("cuda", torch.float16) == ("cpu", torch.float32)  # tight: score on the CPU
    monkeypatch.setattr(scoring, "_cuda_free", lambda device: 8 << 30)
    assert scoring.placement("cuda", torch.float16) == ("cuda", torch.float16)
    warm = scoring.ClipScorer(model=object(), tokenizer=None, processor=None, name="x", device="cuda", dtype=None)
    scorers = scoring.ClipScorers()
    scorers._cache[("x", "cuda", "fp16")] = warm
    assert scorers.release_if_tight() is False and scorers.cached() == [warm]  # room left: stays warm
    monkeypatch.setattr(scoring, "_cuda_free", lambda device: 256 << 20)
    assert scorers.release_if_tight() is True and scorers.cached() == []


def test_agent_phrase_is_the_description_text():
    """The feedback loop's phrase callback hands the prompt a string (not describe()'s Answer), or None."""
    from qia_cli.llm.fake import FakeLLM

    look = "pale pink five-petal flowers on dark branches"
    phrase = Agent(Settings(), llm=FakeLLM(default=look))._phrase_fn("cpu")
    assert phrase is not None
    assert phrase("cherry blossoms") == look
    assert phrase("text 'hello'") is None
    assert Agent(Settings(), llm=FakeLLM(default=""))._phrase_fn("cpu")("cherry blossoms") is None
