"""The feedback loop's decisions: scores per checklist item in, the next revision out. Pure logic, no torch.

An item is *weak* when it scores below the threshold (`settings.threshold`, 0.22 by default; CLIP cosine for
a matching image and text is typically 0.25-0.35, for an unrelated pair 0.15-0.2). An absolute threshold
rather than "below the best item by a margin": a relative rule always finds a weakest item, so it would
revise images that already show everything, and style words score lower than nouns even when present.

Revisions escalate, starting from the best round so far:
1. strengthen the weakest items (at most two): move them to the front of the prompt with explicit wording
   ("clearly showing X", plus a visual description from the planner LLM when one is at hand), and add
   generic terms to the negative prompt that fight a missing or cut-off subject (only where the pipeline
   uses a negative prompt: guidance > 1; sd-turbo runs at 0);
2. when every weak item already leads the prompt, or making it explicit did not beat the best round, the
   prompt is as explicit as rules make it: keep the best prompt and try a new seed (another composition).
The best round by overall score (mean of the item scores) is the image delivered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qia_cli.agent.types import ItemScore, RenderSpec, Round

EMPHASIS = "clearly showing"
NEGATIVE_TERMS = "cropped, out of frame, missing subject"
MAX_FOCUS = 2
SEED_STRIDE = 100_003  # a prime: re-seeds stay far from the seeds of the other --count images
SEED_SPACE = 2**32 - 64


@dataclass
class Revision:
    prompt: str
    negative_prompt: str
    seed: int
    change: str
    reason: str
    focus: list[str] = field(default_factory=list)


def weak_items(scores: list[ItemScore], threshold: float) -> list[ItemScore]:
    """Items below `threshold`, weakest first."""
    return sorted((s for s in scores if s.score < threshold), key=lambda s: s.score)


def overall(scores: list[float]) -> float | None:
    return round(sum(scores) / len(scores), 4) if scores else None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def explicit(item: str, phrase: str | None = None) -> str:
    """'cherry blossoms' -> 'clearly showing cherry blossoms'; text items ask for legible lettering."""
    if item.lower().startswith("text "):
        return f"with the {item} clearly legible"
    return f"{EMPHASIS} {item}" + (f", {phrase}" if phrase else "")


def _drop(prompt: str, item: str) -> str:
    """`prompt` without the comma-separated mentions of `item`."""
    pattern = r"(?:^|,)\s*(?:the\s+)?" + re.escape(item.strip()) + r"\s*(?=,|$)"
    return re.sub(pattern, "", prompt, flags=re.I).strip(" ,")


def emphasize(prompt: str, items: list[str], phrases: dict[str, str | None] | None = None) -> str:
    """Put `items` (explicit wording) at the front of `prompt`, dropping their earlier plain mentions."""
    phrases = phrases or {}
    rest = prompt
    for item in items:
        rest = _drop(rest, item)
    return ", ".join([explicit(i, phrases.get(i)) for i in items] + ([rest] if rest else []))


def leads(prompt: str, item: str) -> bool:
    """Whether the prompt already starts with `item` or names it explicitly (as `emphasize` does)."""
    norm = _norm(prompt)
    return norm.startswith(_norm(item)) or _norm(explicit(item)) in norm


def next_seed(seed: int, tried: set[int]) -> int:
    candidate = seed
    while candidate in tried:
        candidate = (candidate + SEED_STRIDE) % SEED_SPACE
    return candidate


@dataclass
class FeedbackLoop:
    """Keeps the rounds of one image and decides the next revision.

    `phrase(item)` may return a more explicit visual description of an item (from the planner LLM), or None.
    """

    checklist: list[str]
    threshold: float
    phrase: Callable[[str], str | None] | None = None
    use_negative: bool = True  # False where the pipeline ignores the negative prompt (guidance <= 1)
    rounds: list[Round] = field(default_factory=list)
    _phrases: dict[str, str | None] = field(default_factory=dict)
    _focused: set[str] = field(default_factory=set)

    def record(self, rnd: Round) -> Round:
        self.rounds.append(rnd)
        return rnd

    @property
    def best(self) -> Round:
        """The round with the highest overall score (the earliest on a tie)."""
        return max(self.rounds, key=lambda r: (r.overall if r.overall is not None else float("-inf"), -r.index))

    def done(self) -> bool:
        return not weak_items(self.rounds[-1].scores, self.threshold)

    def _phrase(self, item: str) -> str | None:
        if item.lower().startswith("text "):  # lettering: the wording is the item itself
            return None
        if item not in self._phrases:
            self._phrases[item] = self.phrase(item) if self.phrase else None
        return self._phrases[item]

    def next(self) -> Revision | None:
        """The next revision, or None when every item passes."""
        if not self.rounds or self.done():
            return None
        base = self.best
        weak = weak_items(base.scores, self.threshold) or weak_items(self.rounds[-1].scores, self.threshold)
        reason = ", ".join(f"'{s.item}' {s.score:.2f}" for s in weak[:MAX_FOCUS]) + f" below {self.threshold:.2f}"
        if base is not self.rounds[-1]:
            reason += f"; starting again from round {base.index}, the best so far"
        fresh = [s.item for s in weak if s.item not in self._focused and not leads(base.prompt, s.item)]
        if fresh:
            focus = fresh[:MAX_FOCUS]
            self._focused.update(focus)
            phrases = {i: self._phrase(i) for i in focus}
            prompt = emphasize(base.prompt, focus, phrases)
            negative = base.negative_prompt
            change = "moved " + " and ".join(f"'{i}'" for i in focus) + " to the front with explicit wording"
            if any(phrases.values()):
                change += " and a description from the planner LLM"
            if self.use_negative and NEGATIVE_TERMS not in negative:
                negative = f"{negative}, {NEGATIVE_TERMS}" if negative else NEGATIVE_TERMS
                change += f"; negative + '{NEGATIVE_TERMS}'"
            return Revision(prompt, negative, base.seed, change, reason, focus)
        weakest = weak[0].item
        if leads(base.prompt, weakest):
            reason += f"; '{weakest}' already leads the prompt"
        else:
            reason += f"; making '{weakest}' explicit did not raise the overall score"
        seed = next_seed(base.seed, {r.seed for r in self.rounds})
        return Revision(
            base.prompt, base.negative_prompt, seed, f"new seed {seed} (another composition)", reason, [weakest]
        )


@dataclass
class Shot:
    """One rendered image of a chain, with the spec that made it and its round (None: the loop was off)."""

    image: Any
    spec: RenderSpec
    round: Round | None = None


def run_rounds(
    loop: FeedbackLoop,
    first: Shot,
    draw: Callable[[Any], Any],
    score: Callable[[Any, list[str]], list[float]],
    extra_rounds: int,
    *,
    image: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[Shot]:
    """Score `first`, then revise and `draw(spec)` up to `extra_rounds` times; marks the best round kept."""
    shots: list[Shot] = []

    def take(shot: Shot, change: str | None, reason: str | None) -> None:
        values = score(shot.image, loop.checklist)
        shot.round = Round(
            index=len(shots),
            image=image,
            prompt=shot.spec.prompt,
            negative_prompt=shot.spec.negative_prompt,
            seed=shot.spec.seed,
            scores=[ItemScore(item=i, score=v) for i, v in zip(loop.checklist, values)],
            overall=overall(values),
            change=change,
            reason=reason,
        )
        loop.record(shot.round)
        shots.append(shot)

    take(first, None, None)
    while len(shots) <= extra_rounds:
        revision = loop.next()
        if revision is None:
            break
        if progress:
            progress(f"feedback round {len(shots)}: {revision.change}")
        spec = first.spec.model_copy(
            update={"prompt": revision.prompt, "negative_prompt": revision.negative_prompt, "seed": revision.seed}
        )
        take(Shot(draw(spec), spec), revision.change, revision.reason)
    loop.best.kept = True
    return shots
