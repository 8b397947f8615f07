"""Memory grounding: what the per-user store knows about the people, pets and things the request names."""

from __future__ import annotations

import re

from qia_cli.agent.grounding import GapChange, Grounding
from qia_cli.agent.types import Evidence, Gap

_OWNER = r"(?i:my|our)\s+(?:[\w-]+\s+){0,2}?[\w-]+(?:'s\s+(?:[\w-]+\s+){0,2}?[\w-]+)?"
_NAME = r"[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*"
# "Biscuit is my dog, a three-legged corgi" / "My dog Pepper is a black labrador ..." / "Our cabin is a red
# log cabin ...": who it is and what it looks like, without the sentence about the user.
_NAMED_IS_MINE = re.compile(rf"^(?P<name>{_NAME})\s+(?:is|was)\s+(?P<owner>{_OWNER})\s*(?:,\s*(?P<rest>.+))?$")
_MINE_NAMED = re.compile(rf"^(?P<owner>{_OWNER}?)\s+(?P<name>{_NAME})\s+(?P<verb>is|has|wears)\s+(?P<rest>.+)$")
_MINE_IS = re.compile(rf"^(?P<owner>{_OWNER})\s+(?P<verb>is|are|has|have|wears)\s+(?P<rest>.+)$", re.I)
_VERBS = [
    (re.compile(r"^(?:has|have)\s+", re.I), "with "),
    (re.compile(r"^(?:always\s+|usually\s+|often\s+)?(?:wears|is\s+wearing)\s+", re.I), "wearing "),
    (re.compile(r"\band\s+(?:always\s+|usually\s+|often\s+)?(?:wears|is\s+wearing)\s+", re.I), "and wearing "),
    (re.compile(r"\band\s+(?:has|have)\s+", re.I), "and with "),
]
_PREFERENCE = re.compile(
    r"\bI\s+(?:always\s+|usually\s+|really\s+)?(?:prefer|like|love|want)\s+|\b(?:always\s+)?use\s+", re.I
)


def _head(owner: str) -> str:
    """'my dog' -> 'dog'; "my sister's cat" -> 'cat'."""
    return owner.split()[-1]


def _predicate(verb: str, rest: str) -> str:
    text = f"{verb} {rest}" if verb.lower() not in ("is", "are") else rest
    for pattern, repl in _VERBS:
        text = pattern.sub(repl, text)
    return text


def visual_text(text: str) -> str:
    """A memory entry as what to draw, not as a sentence about the user:
    'Biscuit is my dog, a three-legged corgi' -> 'Biscuit, a three-legged corgi';
    'My dog Pepper is a black labrador' -> 'Pepper, a black labrador';
    'My grandfather Tomas has a white beard and always wears a cap' -> 'Tomas, with a white beard and wearing a cap';
    'Our cabin is a red log cabin by a lake' -> 'a red log cabin by a lake';
    'I prefer watercolour illustrations' -> 'watercolour illustrations'."""
    out = re.sub(r"\s+", " ", text.strip().rstrip("."))
    m = _NAMED_IS_MINE.match(out)
    if m:
        return f"{m['name']}, {m['rest']}" if m["rest"] else f"{m['name']}, a {_head(m['owner'])}"
    m = _MINE_NAMED.match(out)
    if m and m["owner"].strip():
        return f"{m['name']}, {_predicate(m['verb'], m['rest'])}"
    m = _MINE_IS.match(out)
    if m:
        predicate = _predicate(m["verb"], m["rest"])
        return predicate if m["verb"].lower() in ("is", "are") else f"the {_head(m['owner'])} {predicate}"
    out = _PREFERENCE.sub("", out)
    return re.sub(r"\b(?:my|our)\b", "the", out, flags=re.I).strip()


def ground_memory(store, request: str, gaps: list[Gap]) -> Grounding:
    """Evidence from memory for personal gaps, style preferences and relevant facts, and the gaps it fills."""
    recall = store.recall(request)
    found = Grounding()
    used: set[str] = set()
    personal = [g for g in gaps if g.kind == "personal"]
    style = next((g for g in gaps if g.kind == "style"), None)

    for entry in list(recall.entities) + list(recall.facts):
        if entry.id in used:
            continue
        target = _match_gap(entry, personal)
        if target is not None:
            found.changes.append(GapChange(target.id, action="recall"))
        found.evidence.append(
            Evidence(
                gap_id=target.id if target else None, source="memory", content=visual_text(entry.text), detail=entry.id
            )
        )
        used.add(entry.id)
    if style is not None and recall.preferences:
        for entry in recall.preferences[:2]:
            found.evidence.append(
                Evidence(gap_id=style.id, source="memory", content=visual_text(entry.text), detail=entry.id)
            )
        found.changes.append(GapChange(style.id, action="recall"))
    return found


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
