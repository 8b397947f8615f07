"""Scorers: did the final prompt acquire the context the request lacked?

Most scorers compare *content words* after the same normalisation: case folded, accents and
punctuation dropped, a possessive 's removed and simple plurals stripped ("berries" -> "berry",
"boxes" -> "box", "eggs" -> "egg"). A phrase is *in* a prompt when all its content words are.

A compound written as two words is the compound too: "moon cake" in a prompt holds "mooncakes" (two words
side by side, joined; never words apart).

Words the request already contains prove nothing: only the words a phrase adds count. A phrase that
adds no word tests nothing; an item made only of such phrases is `skipped`, not passed.

The harm scorer (`ordinary` items) is stricter about the request: every word of it, function words
and plurals as written, must survive (`word_tokens` folds only case and accents).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from qia_cli.text import STOPWORDS, content_words, normalise, singular, word_tokens, words  # noqa: F401

Status = Literal["pass", "fail", "skipped"]

CONTENT_KINDS = frozenset({"subject", "knowledge", "time", "personal", "text", "purpose"})
KEEP_RATIO = 0.9


@dataclass
class Score:
    status: Status
    detail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def new_words(phrase: str, request: str) -> set[str]:
    """The content words of `phrase` that the request does not already contain (its compounds included:
    "ball game" says "ballgame")."""
    return content_words(phrase) - prompt_words(request)


def prompt_words(prompt: str) -> set[str]:
    """The prompt's content words, and each pair of adjacent words joined ("moon cake" -> "mooncake")."""
    tokens = words(prompt)
    return content_words(prompt) | {singular(a + b) for a, b in zip(tokens, tokens[1:])}


def contains(prompt: str, phrase: str, request: str = "") -> bool:
    """True when the prompt has every content word that `phrase` adds to the request."""
    return new_words(phrase, request) <= prompt_words(prompt)


def score_reason(prompt: str, request: str, expect_any: list[str]) -> Score:
    """Pass when the prompt holds the new words of one alternative answer."""
    alternatives = [a for a in expect_any if content_words(a)]
    if not alternatives:
        return Score("skipped", "no alternative has content words")
    trivial = [a for a in alternatives if not new_words(a, request)]
    if trivial:
        return Score("skipped", f"the request already contains '{trivial[0]}'")
    have = prompt_words(prompt)
    for alt in alternatives:
        if new_words(alt, request) <= have:
            return Score("pass", f"found '{alt}'")
    missing = sorted(new_words(alternatives[0], request) - have)
    return Score("fail", "missing: " + ", ".join(missing))


def score_facts(prompt: str, request: str, expect: list[str], forbid: list[str] | None = None) -> Score:
    """Search and memory: every expected fact in the prompt, no forbidden phrase in it.

    A forbidden phrase counts only through the words it adds to the request (a request that names
    a thing may mention it)."""
    testable = [p for p in expect if new_words(p, request)]
    bans = [p for p in (forbid or []) if new_words(p, request)]
    if not testable and not bans:
        return Score("skipped", "every phrase is already in the request")
    leaked = [p for p in bans if contains(prompt, p, request)]
    missing = [p for p in testable if not contains(prompt, p, request)]
    if leaked:
        return Score("fail", "forbidden: " + ", ".join(leaked), {"leaked": leaked, "missing": missing})
    if missing:
        return Score("fail", "missing: " + ", ".join(missing), {"leaked": [], "missing": missing})
    return Score("pass", f"{len(testable)} fact(s) found", {"leaked": [], "missing": []})


def kept_ratio(prompt: str, request: str) -> float:
    """The share of the request's content words that survive in the prompt."""
    want = content_words(request)
    if not want:
        return 1.0
    return len(want & content_words(prompt)) / len(want)


def detects_underspecified(plan: dict | None) -> bool:
    """A plan flags a request as underspecified when a content gap got a question or an assumption.

    Style, composition and setting gaps don't count: every short request has those."""
    if not plan:
        return False
    asked = {q.get("gap_id") for q in plan.get("questions", [])}
    assumed = {e.get("gap_id") for e in plan.get("evidence", []) if e.get("source") == "assumption"}
    return any(g.get("kind") in CONTENT_KINDS and g.get("id") in asked | assumed for g in plan.get("gaps", []))


def score_plan(prompt: str, request: str, label: str, plan: dict | None) -> Score:
    """`underspecified`: a content gap was asked about or assumed. `specified`: no question, and
    at least 90% of the request's content words kept. A baseline has no plan: it detects nothing."""
    flagged = detects_underspecified(plan)
    extra: dict[str, Any] = {"flagged": flagged}
    if label == "underspecified":
        return Score("pass" if flagged else "fail", "content gap found" if flagged else "no content gap", extra)
    questions = len((plan or {}).get("questions", []))
    ratio = kept_ratio(prompt, request)
    extra["kept"] = round(ratio, 3)
    if questions:
        return Score("fail", f"asked {questions} question(s) about a full description", extra)
    if ratio < KEEP_RATIO:
        return Score("fail", f"kept {ratio:.0%} of the request's content words", extra)
    return Score("pass", f"kept {ratio:.0%}", extra)


HEAD_WORDS = 3


def reasoning_words(plan: dict | None) -> set[str]:
    """The content words of the `reasoning` evidence a plan used (a guess it kept out of the prompt put
    nothing there: "a traffic light" withheld is not why "soft natural light" says "light")."""
    found: set[str] = set()
    for evidence in (plan or {}).get("evidence", []):
        if evidence.get("source") == "reasoning" and evidence.get("used", True):
            found |= content_words(evidence.get("content") or "")
    return found


def _gap_kinds(plan: dict | None) -> dict[str, str]:
    return {g.get("id"): g.get("kind") for g in (plan or {}).get("gaps", [])}


def memory_words(plan: dict | None) -> set[str]:
    """Content words that memory or a recorded session brought into a plan, style preferences aside."""
    kinds = _gap_kinds(plan)
    found: set[str] = set()
    for e in (plan or {}).get("evidence", []):
        if e.get("source") in ("memory", "session") and e.get("used", True) and kinds.get(e.get("gap_id")) != "style":
            found |= content_words(e.get("content") or "")
    return found


QUOTED = re.compile(r"[\"\u201c\u201d]|(?<![A-Za-z])'[^']{2,}'(?![A-Za-z])")
_TEXT_IN_PROMPT = re.compile(r'\btext "([^"]*)"')


def phantom_text(prompt: str, request: str) -> list[str]:
    """Text the prompt asks the image model to paint although the request quotes no words ("reading a
    newspaper" is not a sign that says "a newspaper")."""
    if QUOTED.search(request):
        return []
    return _TEXT_IN_PROMPT.findall(prompt)


def notes_in_prompt(prompt: str, plan: dict | None) -> list[str]:
    """Assumptions about what only the user knows (a note, a hedge, a placeholder) that reached the prompt."""
    kinds = _gap_kinds(plan)
    low = prompt.lower()
    return [
        e["content"]
        for e in (plan or {}).get("evidence", [])
        if e.get("source") == "assumption"
        and kinds.get(e.get("gap_id")) in CONTENT_KINDS
        and (e.get("content") or "").strip()
        and e["content"].lower() in low
    ]


def score_harm(prompt: str, request: str, plan: dict | None) -> Score:
    """A fully specified request must reach the image model intact. Harm is any of:

    - dropped: a word of the request (function words and mediums included) is not in the prompt;
    - new subject: a content word that reasoning evidence put into the prompt and the request lacks;
    - memory: a content word from a memory entry (or a recorded session) that the request never referred to
      (style preferences apply to requests without a style and are not harm);
    - phantom text: quoted text in the prompt when the request quotes no words;
    - notes: an assumption about what only the user knows (a placeholder, a hedge) in the prompt;
    - head: the prompt does not start with the request's first three words.

    A baseline's plan may carry its own LLM answer as reasoning evidence (the single-call baseline)."""
    asked = word_tokens(request)
    got = word_tokens(prompt)
    dropped = sorted(set(asked) - set(got))
    in_prompt = content_words(prompt) - content_words(request)
    new_subject = sorted(reasoning_words(plan) & in_prompt)
    memory = sorted(memory_words(plan) & in_prompt)
    phantom = phantom_text(prompt, request)
    notes = notes_in_prompt(prompt, plan)
    head = asked[:HEAD_WORDS]
    head_changed = got[: len(head)] != head
    extra = {
        "dropped": dropped,
        "new_subject": new_subject,
        "memory": memory,
        "phantom_text": phantom,
        "notes": notes,
        "head_changed": head_changed,
    }
    problems = []
    if dropped:
        problems.append("dropped: " + ", ".join(dropped))
    if new_subject:
        problems.append("new subject: " + ", ".join(new_subject))
    if memory:
        problems.append("memory: " + ", ".join(memory))
    if phantom:
        problems.append("phantom text: " + ", ".join(f'"{t}"' for t in phantom))
    if notes:
        problems.append("note: " + "; ".join(notes))
    if head_changed:
        problems.append(f"head changed: '{' '.join(got[: len(head)])}' for '{' '.join(head)}'")
    if problems:
        return Score("fail", "; ".join(problems), extra)
    return Score("pass", "request intact", extra)


def reason_outcome(plan: dict | None, request: str, expect_any: list[str]) -> str | None:
    """What reasoning did with a knowledge item: `right` or `wrong` (a name went into the prompt),
    `withheld-right` or `withheld-wrong` (a name was found but kept out), or `none` (no name)."""
    if plan is None:
        return None
    names = [e for e in plan.get("evidence", []) if e.get("source") == "reasoning" and e.get("role") in (None, "name")]

    def right(e: dict) -> bool:
        return score_reason(request + ", " + (e.get("content") or ""), request, expect_any).status == "pass"

    used = [e for e in names if e.get("used", True)]
    if used:
        return "right" if any(right(e) for e in used) else "wrong"
    if names:
        return "withheld-right" if any(right(e) for e in names) else "withheld-wrong"
    return "none"
