"""`qia bench calibrate`: measure how far the planner may trust a model's answers.

Every knowledge item and ordinary request of the chosen split is asked everything the planner could ask
(the described phrase and the whole request, after each example block: reasoning.name_it's schedule, with
no early stop), once. Then the planner's rule (reasoning.decide) is replayed over a grid of thresholds, on
the same answers, stopping where the planner would stop. The calibration kept is the one that names the
most right answers (a wrong name counts against it) while no ordinary suite has more than 1% of its
requests harmed (an answer that adds a word to a request that needed none). "whole" (asking about
requests the grammar does not flag) is chosen the same way. Nothing here is tuned by hand.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from qia_cli.agent import rules
from qia_cli.agent.grounding import reasoning
from qia_cli.agent.grounding.reasoning import Candidate
from qia_cli.bench import scorers
from qia_cli.bench.suite import Item, Suite
from qia_cli.llm.base import LLM
from qia_cli.llm.calibration import Calibration

MAX_HARM = 0.01
WRONG_WEIGHT = 0.25  # a wrong name in the prompt costs a quarter of a right one
SURE = (None, -0.2, -0.35, -0.5, -0.75, -1.0, -1.5)
AGREE = (-0.2, -0.35, -0.5, -0.75, -1.0, -1.25, -1.5, -2.0, -3.0)
AGREE3 = (-0.5, -1.0, -1.5, -2.0, -3.0, -9.0)
WHOLE = (None, -0.1, -0.2, -0.35, -0.5, -0.75, -1.0)


@dataclass
class Asked:
    suite: str
    item: Item
    flagged: bool
    candidates: list[Candidate]  # in name_it's order


def collect(llm: LLM, suites: Sequence[Suite], on_item: Callable[[str, Item], None] | None = None) -> list[Asked]:
    """Ask every question once for each knowledge and ordinary item."""
    out = []
    for suite in suites:
        for item in suite.items:
            if item.capability not in ("reason", "ordinary"):
                continue
            if on_item:
                on_item(suite.name, item)
            analysis = rules.analyze(item.request)
            gap = next((g for g in analysis.gaps if g.kind == "knowledge"), None)
            a, b = reasoning.block_order(item.request)
            whole = reasoning.whole_question(item.request)
            schedule = [(a, gap.query), (a, whole), (b, gap.query), (b, whole)] if gap else [(a, whole), (b, whole)]
            candidates = [
                reasoning.ask(
                    llm,
                    block,
                    question,
                    max_tokens=reasoning.NAME_TOKENS,
                    max_words=reasoning.MAX_ANSWER_WORDS,
                    usage=None,
                )
                for block, question in schedule
                if question
            ]
            out.append(Asked(suite.name, item, gap is not None, candidates))
    return out


def replay(asked: Asked, cal: Calibration) -> tuple[str | None, int]:
    """What the planner would put in the prompt for this item under `cal`, and how many askings it took."""
    if not asked.flagged and cal.whole is None:
        return None, 0
    request = asked.item.request
    for n in range(1, len(asked.candidates) + 1):
        prefix = asked.candidates[:n]
        if n == 1 and not prefix[0].text:
            return None, 1
        chosen, _votes = reasoning.decide(prefix, request, cal, whole=not asked.flagged)
        if chosen is not None:
            return chosen.text, n
    return None, len(asked.candidates)


def score(rows: Sequence[Asked], cal: Calibration) -> dict:
    """right, wrong, askings, and harm per ordinary suite for one calibration."""
    right = wrong = askings = 0
    harm: dict[str, list[int]] = {}
    for row in rows:
        answer, n = replay(row, cal)
        askings += n
        if row.item.capability == "reason":
            if answer:
                ok = scorers.score_reason(f"{row.item.request}, {answer}", row.item.request, row.item.expect_any)
                right += ok.status == "pass"
                wrong += ok.status == "fail"
        else:
            counts = harm.setdefault(row.suite, [0, 0])
            counts[0] += bool(answer and reasoning.new_words(answer, row.item.request))
            counts[1] += 1
    return {"right": right, "wrong": wrong, "askings": askings, "harm": {k: tuple(v) for k, v in harm.items()}}


def search(rows: Sequence[Asked], source: str) -> tuple[Calibration, dict]:
    """The calibration with the best right - WRONG_WEIGHT * wrong under the harm bound (then fewer askings).
    The flagged requests' thresholds and the whole-request one are independent, so each is searched on
    its own rows."""
    flagged = [r for r in rows if r.flagged]
    best: tuple[tuple[float, int], Calibration] | None = None
    for sure, agree, agree3 in itertools.product(SURE, AGREE, AGREE3):
        if agree3 > agree:
            continue  # three agreeing askings never need more than two
        cal = Calibration(sure=sure, agree=agree, agree3=agree3, source=source)
        key = _key(score(flagged, cal))
        if key is not None and (best is None or key > best[0]):
            best = (key, cal)
    if best is None:  # nothing keeps harm down: trust no answer on its own and judge nothing
        return _cautious(rows, source)
    chosen = best[1]
    unflagged = [r for r in rows if not r.flagged]
    whole_best: tuple[tuple[float, int], float | None] = ((0.0, 0), None)
    for whole in WHOLE[1:]:
        key = _key(score(unflagged, replace(chosen, whole=whole)))
        if key is not None and key > whole_best[0]:
            whole_best = (key, whole)
    chosen = replace(chosen, whole=whole_best[1])
    return chosen, score(rows, chosen)


def _key(result: dict) -> tuple[float, int] | None:
    if any(h > MAX_HARM * n for h, n in result["harm"].values()):
        return None
    return (result["right"] - WRONG_WEIGHT * result["wrong"], -result["askings"])


def _cautious(rows: Sequence[Asked], source: str) -> tuple[Calibration, dict]:
    cal = replace(Calibration(), agree=1.0, agree3=1.0, source=source)  # above any log-probability
    return cal, score(rows, cal)
