"""Grounded context -> the final prompt, negative prompt and checklist.

Order matters: CLIP reads about 77 tokens, so the named subject and the user's own facts come first,
then searched facts and visual details, then style, composition and light.
"""

from __future__ import annotations

import re

from qia_cli.agent.rules import Analysis, content_words
from qia_cli.agent.types import Evidence, Gap

BASE_NEGATIVE = "blurry, low quality, distorted, deformed, watermark, jpeg artifacts"
MAX_PROMPT_WORDS = 90
MAX_CHECK_WORDS = 8


def _clip(text: str, n: int) -> str:
    return " ".join(text.split()[:n])


def _dedupe(parts: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for part in parts:
        part = part.strip(" ,.;")
        key = part.lower()
        if part and key not in seen:
            seen.add(key)
            out.append(part)
    return out


def _by_kind(gaps: list[Gap], evidence: list[Evidence], kind: str) -> list[Evidence]:
    ids = {g.id for g in gaps if g.kind == kind}
    return [e for e in evidence if e.gap_id in ids]


def compose(
    analysis: Analysis,
    gaps: list[Gap],
    evidence: list[Evidence],
    user_negative: str | None = None,
    max_words: int = MAX_PROMPT_WORDS,
):
    """Returns (prompt, negative_prompt, checklist). `max_words`: the prompt's word budget, sized for the image
    model's text encoder (MAX_PROMPT_WORDS for CLIP's 77 tokens; more for T5 or Qwen, imaging/families.py).

    Only image content reaches the prompt. An assumption about what only the user knows (who "my dog" is,
    what the poster says, which headquarters) is a note for the user: it stays in the plan's evidence,
    and the gap adds nothing to the prompt ("a generic headquarters" would only invent)."""
    # The request leads, every word of it as typed: what reasoning adds follows it and never replaces or
    # leads a subject the request names.
    request = analysis.request.strip().rstrip(" .")
    head: list[str] = [request]
    details: list[str] = []
    look: list[str] = []
    checklist: list[str] = []

    reasoning = [e for e in evidence if e.source == "reasoning" and e.used]
    names = [e for e in reasoning if e.role == "name"]
    looks = [e for e in reasoning if e.role == "look"]
    if names:
        head.append(names[0].content)
        checklist.append(_clip(names[0].content, MAX_CHECK_WORDS))
    else:
        checklist.append(_clip(analysis.core.rstrip(" ."), MAX_CHECK_WORDS))
    details += [e.content for e in looks]

    # A recorded session the request points back to: what it showed comes right after the request.
    head += [e.content for e in evidence if e.source == "session"]

    for e in evidence:
        if e.source in {"memory", "user", "search"} and e.gap_id not in _style_ids(gaps):
            details.append(e.content)
            if e.source in {"memory", "user"}:
                checklist.append(_clip(_short_fact(e.content), MAX_CHECK_WORDS))
            elif e.source == "search":
                checklist.append(_clip(e.content, MAX_CHECK_WORDS))

    for text in analysis.quoted_text:
        details.append(f'the text "{text}"')
        checklist.append(f'text "{_clip(text, MAX_CHECK_WORDS - 1)}"')

    style = [e.content for e in _by_kind(gaps, evidence, "style")]
    look += style
    if style:
        checklist.append(_clip(style[0], MAX_CHECK_WORDS))
    look += [e.content for e in _by_kind(gaps, evidence, "composition")]
    look += [e.content for e in _by_kind(gaps, evidence, "setting")]

    parts = _dedupe(head + details + look)
    # The request is never cut; what the plan adds fills the room left in the word budget.
    prompt = parts[0]
    room = max_words - len(prompt.split())
    for part in parts[1:]:
        size = len(part.split())
        if size > room:
            break
        prompt += ", " + part
        room -= size

    negative = [BASE_NEGATIVE]
    if not analysis.quoted_text and not any(g.kind == "text" for g in gaps):
        negative.append("text, letters, caption")
    if user_negative:
        negative.insert(0, user_negative)
    return prompt, ", ".join(negative), _dedupe(checklist)[:6]


def _style_ids(gaps: list[Gap]) -> set[str]:
    return {g.id for g in gaps if g.kind in {"style", "composition", "setting"}}


def _short_fact(text: str) -> str:
    """'Biscuit is the dog, a three-legged corgi' -> 'Biscuit, a three-legged corgi'."""
    m = re.match(r"^(.+?)\s+is\s+(?:the|a|an)\s+\w+,\s*(.+)$", text)
    if m:
        return f"{m.group(1)}, {m.group(2)}"
    return text if content_words(text) else ""
