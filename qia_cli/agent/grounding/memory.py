"""Memory grounding: what the per-user store knows about the people, pets and things the request names."""

from __future__ import annotations

import re

from qia_cli.agent.types import Evidence, Gap

FIRST_PERSON = [
    (re.compile(r"\bI\s+(?:always\s+)?(?:prefer|like|love|want)\s+", re.I), ""),
    (re.compile(r"\b(?:always\s+)?use\s+", re.I), ""),
    (re.compile(r"\bmy\b", re.I), "the"),
    (re.compile(r"\bour\b", re.I), "the"),
]


def visual_text(text: str) -> str:
    """'Biscuit is my dog, a three-legged corgi' -> 'Biscuit is the dog, a three-legged corgi'."""
    out = text.strip().rstrip(".")
    for pattern, repl in FIRST_PERSON:
        out = pattern.sub(repl, out)
    return re.sub(r"\s+", " ", out).strip()


def ground_memory(store, request: str, gaps: list[Gap]) -> tuple[list[Evidence], list[str]]:
    """Evidence from memory for personal gaps, style preferences and relevant facts; returns the used ids."""
    recall = store.recall(request)
    evidence: list[Evidence] = []
    used: list[str] = []
    personal = [g for g in gaps if g.kind == "personal"]
    style = next((g for g in gaps if g.kind == "style"), None)

    for entry in list(recall.entities) + list(recall.facts):
        if entry.id in used:
            continue
        target = _match_gap(entry, personal)
        if target is not None:
            target.filled = True
            target.action = "recall"
        evidence.append(
            Evidence(
                gap_id=target.id if target else None, source="memory", content=visual_text(entry.text), detail=entry.id
            )
        )
        used.append(entry.id)
    if style is not None and recall.preferences:
        for entry in recall.preferences[:2]:
            evidence.append(
                Evidence(gap_id=style.id, source="memory", content=visual_text(entry.text), detail=entry.id)
            )
            used.append(entry.id)
        style.filled = True
        style.action = "recall"
    return evidence, used


def _match_gap(entry, gaps: list[Gap]) -> Gap | None:
    names = {n.lower() for n in entry.names}
    text = entry.text.lower()
    for gap in gaps:
        span = (gap.span or "").lower()
        noun = span.split()[-1] if span else ""
        if span in names or (span and span in text) or (noun and re.search(rf"\b(my|our)\s+{re.escape(noun)}\b", text)):
            return gap
    # An entity named in the request ("Biscuit") fills the first open personal gap only if it says so.
    return None
