"""Grounding: each mechanism reads the plan's gaps and returns what it found (evidence) and what it proposes
for each gap (`GapChange`); it changes no gap itself. The planner applies the changes in one step
(`Planner` `_Draft.take`), so why a gap ended as it did is the list of changes it was given."""

from __future__ import annotations

from dataclasses import dataclass, field

from qia_cli.agent.types import Action, Evidence, Gap


@dataclass(frozen=True)
class GapChange:
    """A proposal for one gap: fill it (`fill`) and/or fill it another way (`action`)."""

    gap_id: str
    fill: bool = True
    action: Action | None = None


@dataclass
class Grounding:
    """What one grounding step returns."""

    evidence: list[Evidence] = field(default_factory=list)
    changes: list[GapChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def apply(gaps: list[Gap], changes: list[GapChange]) -> None:
    """The one place a plan's gaps change: a change fills its gap (never unfills one) and may set its action."""
    by_id = {gap.id: gap for gap in gaps}
    for change in changes:
        gap = by_id.get(change.gap_id)
        if gap is None:
            continue
        if change.fill:
            gap.filled = True
        if change.action is not None:
            gap.action = change.action
