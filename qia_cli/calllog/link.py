"""After a plan: which recorded call's answer reached the final prompt, and why the others did not.

Matching is by gap id and answer text, so that it holds however many askings a question takes:
- a call whose answer became evidence the prompt uses is `used` (a later call with the same answer, a
  second asking that agreed, is a `confirmation`);
- a call whose answer became evidence kept out of the prompt is `withheld`, with the evidence's `why`;
- any other call is `not used`, with the reason as far as the plan shows it.
"""

from __future__ import annotations

import json
from typing import Any

from qia_cli.calllog.record import Call
from qia_cli.llm import calls as stages
from qia_cli.text import content_words

# What evidence a stage's answers become (source, role); a stage not listed may become any.
BECOMES: dict[str, tuple[str, str | None]] = {
    stages.KNOWLEDGE: ("reasoning", "name"),
    stages.LOOK: ("reasoning", "look"),
    stages.SEARCH: ("search", None),
}
ANSWER_SOURCES = {"reasoning", "search"}
USED, WITHHELD, CONFIRMATION, NOT_USED, FAILED = "used", "withheld", "confirmation", "not used", "failed"


def _norm(text: str | None) -> str:
    text = " ".join((text or "").lower().replace("\u2019", "'").split())
    if text.startswith(("a:", "answer:")):
        text = text.split(":", 1)[1]
    return text.strip(" \"'`.,;:!")


def _matches(answer: str | None, content: str) -> bool:
    a, c = _norm(answer), _norm(content)
    if not a or not c:
        return False
    return c in a or (len(a) >= 3 and a in c) or (bool(content_words(c)) and content_words(c) == content_words(a))


def _candidates(call: Call, evidence: list[Any]) -> list[Any]:
    source, role = BECOMES.get(call.stage, (None, None))
    found = []
    for e in evidence:
        if e.source not in ANSWER_SOURCES:
            continue
        if call.gap_id is not None and e.gap_id != call.gap_id:
            continue
        if source is not None and (e.source != source or (role is not None and e.role != role)):
            continue
        found.append(e)
    return found


def link(calls: list[Call], plan: Any) -> None:
    """Set `used`, `outcome` and `why` on each call of `plan` (in the order they were made)."""
    seen: set[int] = set()
    for call in calls:
        if call.gap_id is None:
            call.gap_id = _gap_of(call, plan)
        if call.error is not None:
            call.used, call.outcome, call.why = False, FAILED, call.why or "the call failed"
            continue
        if call.stage == stages.GAPS:
            _link_gaps(call, plan)
            continue
        candidates = _candidates(call, plan.evidence)
        match = next((e for e in candidates if _matches(call.answer, e.content)), None)
        if match is not None:
            if match.used and id(match) in seen:
                call.used, call.outcome = False, CONFIRMATION
                call.why = f"asked again to check '{match.content}': it agreed"
            elif match.used:
                call.used, call.outcome, call.why = True, USED, None
            else:
                call.used, call.outcome = False, WITHHELD
                call.why = match.why or "kept out of the prompt: not sure enough"
            seen.add(id(match))
        elif candidates:
            first = candidates[0]
            call.used, call.outcome = False, NOT_USED
            call.why = f"asked again to check '{first.content}': the answer differed"
        elif call.stage in BECOMES or call.gap_id is not None:
            call.used, call.outcome, call.why = False, NOT_USED, _why_nothing(call, plan)
        elif call.outcome is None:
            call.used, call.outcome, call.why = False, NOT_USED, "its answer is not part of the plan"


def _gap_of(call: Call, plan: Any) -> str | None:
    """The gap a call marked with none asked about, when its question names exactly one gap's words
    (search extraction asks 'What is SPAN?')."""
    if call.stage not in BECOMES:
        return None
    question = _norm(call.question)
    found = {g.id for g in plan.gaps if any(t and _norm(t) in question for t in (g.span, g.query))}
    return found.pop() if len(found) == 1 else None


def _why_nothing(call: Call, plan: Any) -> str:
    """A call of a stage whose answers become evidence, when none of its gap's did."""
    answer = (call.answer or "").strip()
    if not answer:
        return "no answer"
    if call.finish_reason not in (None, "stop"):
        return f"the answer was cut off ({call.finish_reason})"
    said = content_words(plan.request)
    words = content_words(answer)
    if not words or words <= said:
        return "only the request's own words"
    if call.stage == stages.SEARCH:
        return "not found in the search results: a result sentence was used instead"
    return "no usable answer: the plan kept nothing from it"


def _link_gaps(call: Call, plan: Any) -> None:
    """The LLM's gap proposals: used when a gap it proposed was kept (origin 'llm')."""
    try:
        data = json.loads(call.answer or "")
    except ValueError:
        call.used, call.outcome, call.why = False, NOT_USED, "not valid JSON (asked again, or the rules stood alone)"
        return
    items = data.get("missing") if isinstance(data, dict) else None
    if not isinstance(items, list):
        call.used, call.outcome, call.why = False, NOT_USED, "no list of gaps in the answer"
        return
    spans = {_norm(str(i.get("span", ""))) for i in items if isinstance(i, dict)}
    kept = [g for g in plan.gaps if g.origin == "llm" and _norm(g.span) in spans]
    if kept:
        call.used, call.outcome = True, USED
        call.why = None
        call.detail = call.detail or "added " + ", ".join(g.id for g in kept)
    else:
        call.used, call.outcome = False, NOT_USED
        call.why = (
            "it proposed no gap" if not items else "no gap it proposed was kept (known kinds, or not in the request)"
        )


def link_feedback(calls: list[Call], prompts: list[str]) -> None:
    """Feedback calls (a visual description of a missing item): used when a revised prompt carries it."""
    said = [_norm(p) for p in prompts]
    seen: set[str] = set()
    for call in calls:
        if call.outcome is not None:
            continue
        answer = _norm(call.answer)
        if answer and answer in seen:
            call.used, call.outcome, call.why = False, CONFIRMATION, "asked again to check: it agreed"
        elif answer and any(answer in p for p in said):
            call.used, call.outcome, call.why = True, USED, None
            seen.add(answer)
        else:
            call.used, call.outcome = False, NOT_USED
            call.why = "no revised prompt used it" if answer else "no answer"
