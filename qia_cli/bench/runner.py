"""Run suites: the agent (the real planner, non-interactive) and the baselines on the same LLM
(`enhance` and `single` call it; `raw` costs nothing and always runs).

Each item gets a fresh, empty home folder (a temp folder, passed to the agent in place of QIA_HOME) with its
own memory store, so nothing of the user's memory, calibration or search cache is read or written. Search items get their recorded results
through `FixtureBackend`; other items plan with search off. The LLM is loaded once for the run.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from qia_cli.bench import baselines, scorers
from qia_cli.bench.household import HOUSEHOLD
from qia_cli.bench.suite import Item, Suite, subset
from qia_cli.llm.base import LLM
from qia_cli.llm.calibration import Calibration

SYSTEMS = ("agent", "enhance", "single", "raw")
OnItem = Callable[[str, Item], None]


def score_item(item: Item, prompt: str, plan: dict | None) -> scorers.Score:
    """The same scorer for every system; baselines have no plan (on ordinary items the single-call
    baseline passes its answer as reasoning evidence)."""
    if item.capability == "reason":
        score = scorers.score_reason(prompt, item.request, item.expect_any)
        outcome = scorers.reason_outcome(plan, item.request, item.expect_any)
        if outcome is not None:
            score.extra["outcome"] = outcome
        return score
    if item.capability in ("search", "memory"):
        return scorers.score_facts(prompt, item.request, item.expect, item.forbid)
    if item.capability == "ordinary":
        return scorers.score_harm(prompt, item.request, plan)
    return scorers.score_plan(prompt, item.request, item.label or "specified", plan)


def _result(prompt: str, score: scorers.Score, tokens: int, seconds: float) -> dict:
    return {
        "prompt": prompt,
        "status": score.status,
        "detail": score.detail,
        "tokens": tokens,
        "seconds": round(seconds, 4),
        **score.extra,
    }


class Runner:
    def __init__(
        self,
        llm,
        settings,
        *,
        out_dir: Path | None = None,
        on_item: OnItem | None = None,
        baselines: bool | tuple[str, ...] = True,
        knowledge: LLM | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.llm = llm
        # which LLM baselines run: True = enhance and single, False = none, or a tuple of their names
        self.systems = ("enhance", "single") if baselines is True else () if baselines is False else tuple(baselines)
        # The model that answers knowledge questions (Gemma beside the bundled planner); None: the agent picks
        # it from settings on the first item that asks, and it is kept for the rest. `single` runs on it.
        self.knowledge: LLM | None = knowledge
        # the knowledge model's calibration as the user has it (items plan in empty homes, which have none)
        self.calibration = calibration
        self.settings = settings
        self.out_dir = out_dir
        self.on_item = on_item or (lambda _suite, _item: None)

    def plan_item(self, suite: Suite, item: Item):
        """The agent's plan for one item, in a fresh home folder; returns (plan, tokens)."""
        from qia_cli.agent.planner import PlanOptions
        from qia_cli.agent.run import Agent
        from qia_cli.memory.store import MemoryStore
        from qia_cli.search.fixture import FixtureBackend

        with tempfile.TemporaryDirectory(prefix="qia-bench-") as home:
            memory = MemoryStore(Path(home) / "memory.json")
            setup = item.setup or (HOUSEHOLD if item.capability == "ordinary" else [])
            for entry in setup:
                memory.add(entry.text, kind=entry.kind, names=entry.names)
            search = None
            if item.fixture is not None:
                path = suite.fixture_path(item)
                if path is None:
                    path = Path(home) / "fixture.json"
                    path.write_text(json.dumps(item.fixture), encoding="utf-8")
                search = FixtureBackend(path)
            agent = Agent(
                settings=self.settings,
                memory=memory,
                search=search,
                llm=self.llm,
                knowledge=self.knowledge,
                home=Path(home),
                calibration=self.calibration,
            )
            plan = agent.plan(item.request, PlanOptions())
            self.knowledge = agent.knowledge
            return plan, agent.planner.usage.tokens

    def run_item(self, suite: Suite, item: Item) -> dict:
        row: dict = {"suite": suite.name, "id": item.id, "capability": item.capability, "request": item.request}
        if item.capability == "memory":
            row["expects"] = bool([p for p in item.expect if scorers.new_words(p, item.request)])
        if item.label:
            row["label"] = item.label
        start = time.perf_counter()
        try:
            plan, tokens = self.plan_item(suite, item)
        except Exception as exc:  # one broken item must not end a long run; it scores as a failure
            seconds = time.perf_counter() - start
            fail = scorers.Score("fail", f"error: {type(exc).__name__}: {exc}")
            row["agent"] = _result("", fail, 0, seconds)
            row["error"] = f"{type(exc).__name__}: {exc}"
            row["timings"] = {}
        else:
            seconds = time.perf_counter() - start
            data = json.loads(plan.model_dump_json())
            row["agent"] = _result(plan.prompt, score_item(item, plan.prompt, data), tokens, seconds)
            row["timings"] = dict(plan.timings)
            row["questions"] = len(plan.questions)
            self._keep(suite, item, plan)

        if "enhance" in self.systems:
            start = time.perf_counter()
            prompt, tokens = baselines.enhance(self.llm, item.request)
            row["enhance"] = _result(prompt, score_item(item, prompt, None), tokens, time.perf_counter() - start)
        if "single" in self.systems:
            start = time.perf_counter()
            prompt, answer, tokens = baselines.single(self.knowledge or self.llm, item.request)
            # on ordinary items the answer is what reasoning would have added: score it as such
            added = None
            if item.capability == "ordinary":
                added = {"evidence": [{"source": "reasoning", "content": answer}]}
            row["single"] = _result(prompt, score_item(item, prompt, added), tokens, time.perf_counter() - start)
        prompt = baselines.raw(item.request)
        row["raw"] = _result(prompt, score_item(item, prompt, None), 0, 0.0)
        return row

    def _keep(self, suite: Suite, item: Item, plan) -> None:
        if self.out_dir is None:
            return
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{suite.name}-{item.id}")[:120]
        (self.out_dir / f"{name}.json").write_text(plan.model_dump_json(indent=2) + "\n", encoding="utf-8")

    def run(self, suites: list[Suite], *, limit: int | None = None, seed: int | None = None) -> list[dict]:
        log = None
        if self.out_dir is not None:  # results.jsonl grows item by item: an interrupted run keeps its rows
            self.out_dir.mkdir(parents=True, exist_ok=True)
            log = (self.out_dir / "results.jsonl").open("w", encoding="utf-8")
        rows = []
        try:
            for suite in suites:
                for item in subset(suite.items, limit, seed):
                    self.on_item(suite.name, item)
                    rows.append(self.run_item(suite, item))
                    if log is not None:
                        log.write(json.dumps(rows[-1], ensure_ascii=False) + "\n")
                        log.flush()
        finally:
            if log is not None:
                log.close()
        return rows


def planned(suites: list[Suite], limit: int | None, seed: int | None) -> int:
    """How many items a run will take (for the progress bar)."""
    return sum(len(subset(s.items, limit, seed)) for s in suites)
