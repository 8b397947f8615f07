"""Clarifying questions for gaps only the user can fill, and explicit assumptions when nobody answers.

The asking itself happens in the CLI (prompt_toolkit); here are the questions, their order, the
defaults, and how answers and assumptions become evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from qia_cli.agent.grounding import GapChange, Grounding
from qia_cli.agent.types import Evidence, Gap, Question

MAX_QUESTIONS = 3
PRIORITY = {"personal": 0, "subject": 1, "purpose": 2, "text": 3, "time": 4}

# Asker: gets the open questions, returns answers by question id (None = skipped).
Asker = Callable[[list[Question]], dict[str, str | None]]


def _noun(gap: Gap) -> str:
    """What a personal gap is about, without its owner: "my sister's cat" -> "sister's cat"."""
    span = gap.span or "it"
    if gap.kind == "personal":
        return re.sub(r"^(?:my|our)\s+", "", span, flags=re.I)
    return span.split()[-1]


def question_for(gap: Gap, request: str) -> tuple[str, str | None]:
    """The question text and its suggested default."""
    if gap.kind == "personal":
        noun = _noun(gap)
        return f"What does your {noun} look like (name, kind, colours)?", None
    if gap.kind == "subject":
        if gap.span and re.match(r"(?:something|anything|stuff)\s+\S", gap.span, re.I):
            return f"What should the image show (you said “{gap.span}”)?", None
        if gap.span and len(gap.span.split()) > 3:  # "the thing we talked about yesterday"
            return f"What do you mean by “{gap.span}”?", None
        if gap.span and gap.span.lower() not in {"something", "anything", "it", "this", "that"}:
            return f"Which or whose {gap.span.removeprefix('the ').strip()} do you mean?", None
        return "What should the image show?", None
    if gap.kind == "purpose":
        return "Which event is it for (name, date, place)?", None
    if gap.kind == "text":
        default = "Happy Birthday" if "birthday" in request.lower() else None
        return f"What should the {gap.span or 'image'} say?", default
    return f"Can you say more about {gap.span or gap.description}?", None


def assumption_for(gap: Gap, request: str, purpose: str | None) -> str:
    low = request.lower()
    if gap.kind == "personal":
        return f"a typical, friendly-looking {_noun(gap)}"
    if gap.kind == "subject":
        if gap.span and len(gap.span.split()) <= 3:
            return f"a generic {gap.span.removeprefix('the ').strip()}"
        return "a simple, pleasant scene"
    if gap.kind == "purpose":
        return "a generic celebration"
    if gap.kind == "text":
        return "a short headline: Happy Birthday" if "birthday" in low else "a short, legible headline"
    if gap.kind == "time":
        return "as generally known; current facts were not checked"
    if gap.kind == "style":
        return {
            "poster": "bold, colourful flat-design poster illustration",
            "flyer": "bold, colourful flat-design flyer",
            "card": "warm illustrated greeting card",
            "invitation": "elegant illustrated invitation card",
            "logo": "clean minimal vector logo on a plain background",
        }.get(purpose or "", "high-detail photograph")
    if gap.kind == "composition":
        return (
            "clear layout with the subject centred and room for the text" if purpose else "subject centred, medium shot"
        )
    if gap.kind == "setting":
        return "soft natural light"
    return "a sensible default"


def build_questions(gaps: list[Gap], request: str) -> list[Question]:
    askable = [g for g in gaps if g.action == "ask" and not g.filled]
    askable.sort(key=lambda g: PRIORITY.get(g.kind, 9))
    questions: list[Question] = []
    for gap in askable[:MAX_QUESTIONS]:
        text, default = question_for(gap, request)
        questions.append(Question(id=f"q{len(questions) + 1}", gap_id=gap.id, text=text, default=default))
    return questions


def apply_answers(questions: list[Question], answers: Mapping[str, str | None]) -> Grounding:
    """Answers keyed by question id or gap id become user evidence and fill their gaps; each question records
    its answer or that it was skipped."""
    found = Grounding()
    for q in questions:
        value = answers.get(q.id, answers.get(q.gap_id))
        if value is None:
            continue
        value = value.strip()
        if not value or value.lower() == "skip":
            q.status = "skipped"
            continue
        q.answer, q.status = value, "answered"
        found.changes.append(GapChange(q.gap_id))
        found.evidence.append(Evidence(gap_id=q.gap_id, source="user", content=value, detail=q.text))
    return found


def assume_rest(gaps: list[Gap], questions: list[Question], request: str, purpose: str | None) -> Grounding:
    """Every gap still open gets an explicit, recorded assumption."""
    found = Grounding()
    for gap in gaps:
        if gap.filled:
            continue
        if gap.kind == "knowledge":  # reasoning found nothing: the request stands as written
            continue
        content = assumption_for(gap, request, purpose)
        found.changes.append(GapChange(gap.id, action="assume"))
        for q in questions:
            if q.gap_id == gap.id and q.status == "open":
                q.status = "assumed"
        found.evidence.append(Evidence(gap_id=gap.id, source="assumption", content=content))
    return found
