"""Context-aware planning: rules plus focused LLM calls find the gaps, grounding fills them,
compose writes the prompt. The planner reports progress through a callback; it never prints.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

from qia_cli import paths
from qia_cli.agent import compose as composer
from qia_cli.agent import grounding, rules
from qia_cli.agent.grounding import GapChange, Grounding, clarify, reasoning
from qia_cli.agent.grounding.memory import ground_memory
from qia_cli.agent.grounding.search import ground_search
from qia_cli.agent.types import Evidence, Gap, GapKind, ModelInfo, Plan, Question, SessionRef
from qia_cli.errors import UsageError
from qia_cli.llm import calls
from qia_cli.llm.base import LLM, Usage, parse_json
from qia_cli.llm.calibration import Calibration
from qia_cli.llm.calibration import load as load_calibration
from qia_cli.textsafe import clean_input, visible

MAX_REQUEST_CHARS = 4000
LLM_GAP_KINDS = ["subject", "personal", "purpose", "text"]
GAP_SCHEMA = {
    "type": "object",
    "properties": {
        "missing": {
            "type": "array",
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"enum": LLM_GAP_KINDS},
                    "span": {"type": "string", "maxLength": 60},
                    "question": {"type": "string", "maxLength": 100},
                },
                "required": ["kind", "span", "question"],
            },
        }
    },
    "required": ["missing"],
}
REFINE = re.compile(
    r"^\s*(?:(?:ok(?:ay)?|now|but|and|then|also|please)[, ]+)*"
    r"(?:make\s+it|make\s+them|turn\s+it\s+into|same\s+(?:thing\s+|one\s+)?but|change\s+it\s+to|do\s+it|render\s+it|"
    r"instead|add|remove|without|with|more|less|as\s+an?|in\s+the\s+style\s+of|at\s+night|by\s+day)\b",
    re.IGNORECASE,
)

Progress = Callable[[str], None]


def validate_request(request: str) -> str:
    # The input boundary: no escape sequences or control characters past here, and nothing visible is empty.
    text = clean_input(request or "", what="the prompt").strip()
    if not visible(text):
        raise UsageError("the prompt is empty", hint='say what to picture, e.g. qia plan "a red bicycle"')
    if len(text) > MAX_REQUEST_CHARS:
        raise UsageError(f"the prompt is {len(text)} characters long; the limit is {MAX_REQUEST_CHARS}")
    return text


@dataclass
class PlanOptions:
    answers: dict[str, str] = field(default_factory=dict)  # by question id or gap id
    answer_list: list[str] = field(default_factory=list)  # fill open questions in order
    asker: clarify.Asker | None = None  # asks on a terminal; None = nobody answers
    negative: str | None = None
    previous: Plan | None = None  # the plan this request may refine (a session)
    llm_gaps: bool = True
    prompt_words: int = composer.MAX_PROMPT_WORDS  # the prompt's word budget: the image model's text encoder


@dataclass
class _Draft:
    """A plan being built: each step of `Planner.plan` reads it and adds to it."""

    request: str
    options: PlanOptions
    analysis: rules.Analysis
    purpose: str | None
    timings: dict[str, float]
    evidence: list[Evidence] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    session: SessionRef | None = None

    @property
    def gaps(self) -> list[Gap]:
        return self.analysis.gaps

    def take(self, found: Grounding) -> None:
        """A grounding step's result: its evidence and warnings join the plan, its gap changes are applied."""
        self.take_changes(found.changes)
        self.evidence += found.evidence
        self.warnings += found.warnings

    def take_changes(self, changes: Iterable[GapChange]) -> None:
        grounding.apply(self.gaps, list(changes))


class Planner:
    """Plans requests. The LLM is created lazily (and once) by `llm_factory`."""

    def __init__(
        self,
        llm: LLM | Callable[[], LLM] | None,
        *,
        memory=None,
        search=None,
        search_deadline: float = 8.0,
        search_ttl: float = 86400.0,
        progress: Progress | None = None,
        knowledge: LLM | Callable[[], LLM] | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self._llm = llm
        self._knowledge = knowledge
        self.memory = memory
        self.search = search
        self.search_deadline = search_deadline
        self.search_ttl = search_ttl
        self.progress = progress or (lambda _msg: None)
        self.usage = Usage()
        self._calibration = calibration  # None: loaded for the knowledge model when first needed

    @property
    def llm(self) -> LLM | None:
        if callable(self._llm) and not hasattr(self._llm, "complete"):
            self._llm = self._llm()
        return self._llm  # type: ignore[return-value]

    @property
    def knowledge_llm(self) -> LLM | None:
        """The model for knowledge questions: its own (lazily built) or the planner's."""
        if callable(self._knowledge) and not hasattr(self._knowledge, "complete"):
            self._knowledge = self._knowledge()
        return self._knowledge or self.llm  # type: ignore[return-value]

    def model_info(self) -> ModelInfo:
        llm = self.llm
        return llm.info if llm is not None else ModelInfo(name="rules only", backend="none")

    # -- the flow ---------------------------------------------------------------------------------
    def plan(self, request: str, options: PlanOptions | None = None) -> Plan:
        """Find the request's gaps, ground them (memory, the user, the web, the model's knowledge), assume
        what is still open, and compose the prompt. A refinement of `options.previous` edits that plan."""
        options = options or PlanOptions()
        request = validate_request(request)
        timings: dict[str, float] = {}
        if options.previous is not None and REFINE.match(request):
            return self._refine(request, options, timings)
        draft = self._find_gaps(request, options, timings)
        self._recall_memory(draft)
        self._ask_user(draft)
        self._search_web(draft)
        self._ground_knowledge(draft)
        self._judge_whole(draft)
        draft.take(clarify.assume_rest(draft.gaps, draft.questions, request, draft.purpose))
        return self._compose(draft)

    # -- steps ------------------------------------------------------------------------------------
    def _find_gaps(self, request: str, options: PlanOptions, timings: dict[str, float]) -> _Draft:
        """The grammar's gaps, and the kinds an LLM adds where the request is not already detailed."""
        with _timed(timings, "rules"):
            analysis = rules.analyze(request)
        draft = _Draft(request, options, analysis, _purpose(request), timings)
        if options.llm_gaps and not analysis.detailed and self.llm is not None:
            self.progress("looking for gaps")
            with _timed(timings, "llm_gaps"):
                analysis.gaps += self._llm_gaps(request, analysis.gaps)
        return draft

    def _recall_memory(self, draft: _Draft) -> None:
        """What memory knows of the people, pets, things and sessions the request refers to; a personal gap it
        does not know goes to the user, a style it has no preference for is assumed."""
        gaps = draft.gaps
        if self.memory is not None:
            self.progress("recalling memory")
            with _timed(draft.timings, "memory"):
                draft.take(ground_memory(self.memory, draft.request, gaps))
                draft.session = _recall_session(self.memory, draft.request)
                if draft.session is not None:
                    draft.evidence.append(_session_evidence(draft.session))
            if draft.session is not None:  # "the one we made yesterday": the recorded session says what it is
                draft.take_changes(
                    GapChange(g.id, action="recall") for g in gaps if g.kind == "subject" and not g.filled
                )
        draft.take_changes(
            GapChange(g.id, fill=False, action="ask") for g in gaps if g.kind == "personal" and not g.filled
        )
        draft.take_changes(
            GapChange(g.id, fill=False, action="assume") for g in gaps if g.kind == "style" and not g.filled
        )

    def _ask_user(self, draft: _Draft) -> None:
        """Questions for what only the user knows: answers given up front (by id, then in order), then the
        asker's for what is still open. The time a person takes to answer is not the plan's."""
        options, timings = draft.options, draft.timings
        draft.questions = clarify.build_questions(draft.gaps, draft.request)
        with _timed(timings, "clarify"):
            answers = dict(options.answers)
            for q, value in zip(draft.questions, options.answer_list):
                answers.setdefault(q.id, value)
            unanswered = [q for q in draft.questions if q.id not in answers and q.gap_id not in answers]
            if unanswered and options.asker is not None:
                with _timed(timings, "user_answers"):
                    asked = options.asker(unanswered)
                answers.update({k: v for k, v in asked.items() if v is not None})
            draft.take(clarify.apply_answers(draft.questions, answers))
        if "user_answers" in timings:  # the time a person took to answer is not the machine's
            timings["clarify"] = round(max(0.0, timings["clarify"] - timings["user_answers"]), 4)

    def _search_web(self, draft: _Draft) -> None:
        """Current facts for the time-sensitive gaps, or a warning that they were assumed."""
        searching = any(g.action == "search" for g in draft.gaps)
        if self.search is not None and searching:
            self.progress("searching")
            context = " ".join(e.content for e in draft.evidence if e.source == "user")[:80]
            with _timed(draft.timings, "search"), calls.stage(calls.SEARCH):
                draft.take(
                    ground_search(
                        self.search,
                        self.llm,
                        draft.gaps,
                        deadline_s=self.search_deadline,
                        ttl=self.search_ttl,
                        usage=self.usage,
                        context=context,
                    )
                )
        elif searching and not draft.analysis.past:
            draft.warnings.append("search is off: time-sensitive facts were assumed, not checked")

    def _ground_knowledge(self, draft: _Draft) -> None:
        """Reasoning for what the request describes. A dated past fact that search answered needs none; one
        the model answered needs no search."""
        gaps, past = draft.gaps, draft.analysis.past
        if past and any(g.filled for g in gaps if g.kind == "time"):
            draft.take_changes(GapChange(g.id) for g in gaps if g.kind == "knowledge")
        if self.llm is None or not any(g.action == "reason" and not g.filled for g in gaps):
            return
        self.progress("reasoning")
        with _timed(draft.timings, "reason"):
            for gap in [g for g in gaps if g.action == "reason" and g.query and not g.filled]:
                draft.take(self._name(draft.request, gap.id, gap.query))
        if past and any(g.kind == "knowledge" and g.filled for g in gaps):
            draft.take_changes(GapChange(g.id, action="reason") for g in gaps if g.kind == "time" and not g.filled)

    def _judge_whole(self, draft: _Draft) -> None:
        """A model calibrated to judge requests ("a tall pink bird resting on one leg in a salt lagoon")
        is asked what a request the grammar did not flag shows; the grammar's own finds come first."""
        analysis = draft.analysis
        kinds = {g.kind for g in analysis.gaps}
        if self.llm is None or kinds & {"knowledge", "personal", "time", "subject"} or analysis.quoted_text:
            return
        if self.calibration.whole is None:
            return
        gap_id = f"g{len(analysis.gaps) + 1}"
        self.progress("reasoning")
        with _timed(draft.timings, "reason"):
            found = self._name(draft.request, gap_id, None)
        if found.evidence:  # the model named something: the gap and its answer (used or a guess) go in the plan
            analysis.gaps.append(
                Gap(
                    id=gap_id,
                    kind="knowledge",
                    description="the model judged that the request may describe something it can name",
                    action="reason",
                    origin="llm",
                )
            )
            draft.take(found)

    def _compose(self, draft: _Draft) -> Plan:
        """The prompt from the request and the evidence, and the plan that records how it was built."""
        with _timed(draft.timings, "compose"):
            prompt, negative, checklist = composer.compose(
                draft.analysis, draft.gaps, draft.evidence, draft.options.negative, draft.options.prompt_words
            )
        timings = draft.timings
        timings["total"] = round(sum(v for k, v in timings.items() if k != "user_answers"), 4)
        return Plan(
            request=draft.request,
            gaps=draft.gaps,
            questions=draft.questions,
            evidence=draft.evidence,
            prompt=prompt,
            negative_prompt=negative,
            checklist=checklist,
            warnings=draft.warnings,
            timings=timings,
            model=self.model_info(),
            knowledge_model=getattr(self._knowledge, "info", None) or self.model_info(),
            session=draft.session,
        )

    @property
    def calibration(self) -> Calibration:
        """How far the knowledge model's answers are trusted: measured for it, else cautious defaults."""
        if self._calibration is None:
            self._calibration = load_calibration(self._knowledge_info(), paths.calibration_file())
        return self._calibration

    def _knowledge_info(self) -> ModelInfo:
        """The knowledge model's name and profile, without building it where it can be named (the agent's
        lazy knowledge model can)."""
        info = getattr(self._knowledge, "info", None) if self._knowledge is not None else None
        if info is None:
            knowledge = self.knowledge_llm
            info = knowledge.info if knowledge is not None else ModelInfo(name="none", backend="none")
        return info

    def _name(self, request: str, gap_id: str, question: str | None) -> Grounding:
        """Name what the request describes (the gap's question, or the whole request when None). Only an
        answer the model's calibration trusts fills the gap and reaches the prompt; a guess is kept in the plan
        (used=False, with why) so that the user sees what the model thought."""
        knowledge = self.knowledge_llm
        assert knowledge is not None  # plan() reasons only when the planner has an LLM
        with calls.stage(calls.KNOWLEDGE, gap_id):
            name = reasoning.name_it(knowledge, question, request, self.calibration, self.usage)
        if not name.text:
            return Grounding()
        found = Grounding(
            evidence=[
                Evidence(
                    gap_id=gap_id,
                    source="reasoning",
                    content=name.text,
                    detail=question or reasoning.whole_question(request),
                    role="name",
                    confidence=_round(name.logprob),
                    used=name.confident,
                    why=None if name.confident else name.why or None,
                )
            ]
        )
        if name.confident:
            found.changes.append(GapChange(gap_id))
            last = name.asked[-1].block if name.asked else None
            found.evidence += self._look(knowledge, gap_id, name.text, request, last)
        return found

    def _look(self, knowledge: LLM, gap_id: str, name: str, request: str, block: int | None = None) -> list[Evidence]:
        with calls.stage(calls.LOOK, gap_id):
            look = reasoning.describe(knowledge, name, self.usage, request, first_block=block)
        if not look.text:
            return []
        return [
            Evidence(
                gap_id=gap_id,
                source="reasoning",
                content=look.text,
                detail=f"What does {name} look like?",
                role="look",
                confidence=_round(look.logprob),
                used=look.confident,
                why=None if look.confident else look.why or None,
            )
        ]

    def _llm_gaps(self, request: str, gaps: list[Gap]) -> list[Gap]:
        """Gaps the LLM proposes, kept only when they point at words of the request and add a new kind."""
        messages = [
            {"role": "system", "content": "You find what an image request leaves unsaid. Reply with JSON only."},
            {
                "role": "user",
                "content": (
                    f'Image request: "{request}"\n'
                    "List up to 3 things only the requester knows that the picture needs. "
                    "For each: kind, the words of the request it concerns (span), and a short question."
                ),
            },
        ]
        llm = self.llm
        assert llm is not None  # plan() asks for LLM gaps only when the planner has an LLM
        data = None
        for _attempt in range(2):  # one retry, then the rules stand alone
            with calls.stage(calls.GAPS):
                completion = self.usage.add(llm.json(messages, GAP_SCHEMA, max_tokens=200))
            data = parse_json(completion)
            if isinstance(data, dict) and isinstance(data.get("missing"), list):
                break
            data = None
        if not data:
            return []
        low = request.lower()
        have = {g.kind for g in gaps}
        added: list[Gap] = []
        for item in data["missing"]:
            if not isinstance(item, dict):
                continue
            kind, span = item.get("kind"), str(item.get("span", "")).strip()
            if kind not in LLM_GAP_KINDS or kind in have or kind == "personal":
                continue  # personal references are found by rules; the LLM only adds new kinds
            if len(span) < 3 or span.lower() not in low or not rules.content_words(span):
                continue
            if kind == "text" and not rules.TEXT_CARRIERS.search(request):
                continue
            added.append(
                Gap(
                    id=f"g{len(gaps) + len(added) + 1}",
                    kind=kind,
                    description=str(item.get("question", ""))[:100] or f"about '{span}'",
                    action="ask",
                    span=span,
                    origin="llm",
                )
            )
            have.add(kind)
        return added

    def _refine(self, request: str, options: PlanOptions, timings: dict[str, float]) -> Plan:
        """'make it night' edits the previous plan instead of starting over: the first request less what the
        edit replaces or removes, the earlier evidence that still holds, and the edit as the user's evidence."""
        prev = options.previous
        assert prev is not None
        with _timed(timings, "refine"):
            edit, removed = _edit_of(request)
            replaced = _replaced_kinds(edit)
            turns = prev.turns or [prev.request]
            taken_out = [*_removed_before(prev, edit), removed]
            root = _drop_segments(turns[0], replaced)
            for term in filter(None, taken_out):
                root = _without(root, term)
            gaps = [g.model_copy() for g in prev.gaps]
            dropped = {g.id for g in gaps if g.kind in replaced}
            evidence = [e for e in prev.evidence if e.gap_id not in dropped and not _mentions(e, removed)]
            if edit:
                gap = _edit_gap(edit, replaced, f"g{len(gaps) + 1}")
                gaps.append(gap)
                evidence[:0] = [
                    Evidence(
                        gap_id=gap.id,
                        source="user",
                        content=edit,
                        detail="refinement of: " + prev.prompt[:120],
                        role="edit",
                    ),
                    *self._recall_for_edit(edit, evidence),
                ]
            negative = ", ".join(dict.fromkeys(filter(None, [options.negative, *taken_out])))
            prompt, negative, checklist = composer.compose(
                rules.analyze(root), gaps, evidence, negative or None, options.prompt_words
            )
        timings["total"] = round(sum(timings.values()), 4)
        return Plan(
            request=f"{prev.request} | {request}",
            turns=[*turns, request],
            gaps=gaps,
            questions=[],
            evidence=evidence,
            prompt=prompt,
            negative_prompt=negative,
            checklist=checklist,
            timings=timings,
            model=prev.model or self.model_info(),
            previous_prompt=prev.prompt,
        )

    def _recall_for_edit(self, edit: str, evidence: list[Evidence]) -> list[Evidence]:
        """ "same but with Biscuit": who Biscuit is comes from memory, unless the plan has it already."""
        if self.memory is None:
            return []
        known = {e.detail for e in evidence if e.source == "memory"}
        return [e for e in ground_memory(self.memory, edit, []).evidence if e.detail not in known]


def _replaced_kinds(edit: str) -> set[str]:
    """What an edit replaces in the first request: its style, its setting, its composition."""
    analysis = rules.analyze(edit) if edit else None
    if analysis is None:
        return set()
    flags = {"style": analysis.has_style, "setting": analysis.has_setting, "composition": analysis.has_composition}
    return {kind for kind, present in flags.items() if present}


def _edit_gap(edit: str, replaced: set[str], gap_id: str) -> Gap:
    """The gap an edit fills, answered by the user: a new style or setting, else the subject."""
    kind: GapKind = "style" if "style" in replaced else "setting" if "setting" in replaced else "subject"
    return Gap(
        id=gap_id, kind=kind, description="your refinement of the previous image", action="ask", span=edit, filled=True
    )


KEEP_LEADS = ("with", "without", "add", "more", "less", "at night", "by day", "as a", "as an", "in the style of")
REMOVE = re.compile(r"^(?:without|remove|no|drop)\s+(?:the\s+|a\s+|an\s+)?(.+)$", re.IGNORECASE)


def _edit_of(request: str) -> tuple[str, str]:
    """The words a refinement adds to the prompt, and what it takes out ("without the hat" -> "", "hat")."""
    edit = REFINE.sub(
        lambda m: m.group(0) if m.group(0).strip().lower().startswith(KEEP_LEADS) else "", request, count=1
    )
    edit = re.sub(r"^\s*add\s+", "with ", edit.strip(" ,."), flags=re.IGNORECASE) or request.strip(" ,.")
    removal = REMOVE.match(
        re.sub(r"^\s*(?:(?:ok(?:ay)?|now|but|and|then|also|please)[, ]+)*", "", request).strip(" ,.")
    )
    if removal:
        return "", removal.group(1).strip()
    return edit, ""


def _drop_segments(root: str, kinds: set[str]) -> str:
    """'a lighthouse, oil painting' + a new style -> 'a lighthouse': short comma parts the edit replaces."""
    patterns = [p for k, p in (("style", rules.STYLE), ("setting", rules.SETTING)) if k in kinds]
    parts = [p.strip() for p in root.split(",")]
    kept = parts[:1] + [p for p in parts[1:] if not (len(p.split()) <= 4 and any(x.search(p) for x in patterns))]
    return ", ".join(kept)


_DETERMINERS = "a|an|the|some|two|three|his|her|their|its|my|our"
_LINKS = "with|and|or|of|on|in|at|to|by|for|from|under|near|beside|holding|carrying|wearing"


def _without(root: str, removed: str) -> str:
    """'a girl with a basket in a meadow' less 'basket' -> 'a girl in a meadow': the phrase that names it goes.

    The phrase is the removed words with what leads them (a joining word, an article, up to two modifiers) and
    what they own ('of apples'); when it was the subject, a leading preposition left behind goes too.
    """
    words = removed.split()
    if not words:
        return root
    core = r"\s+".join(re.escape(w) for w in words)
    phrase = re.compile(
        r"(?:\s*,)?\s*(?:\b(?:with|and|holding|carrying|wearing|on|in|at|under|near|beside|by)\s+)?"
        rf"(?:\b(?:{_DETERMINERS})\s+)?(?:(?!(?:{_DETERMINERS}|{_LINKS})\b)[\w-]+\s+){{0,2}}?"
        rf"\b{core}(?:e?s)?\b(?:\s+of\s+[\w-]+)?",
        re.IGNORECASE,
    )
    left = phrase.sub("", root, count=1).strip(" ,")
    left = re.sub(r"^(?:on|in|at|by|under|near|beside)\s+", "", left, flags=re.IGNORECASE)
    return re.sub(r"\s{2,}", " ", left) or root


def _removed_before(prev: Plan, edit: str) -> list[str]:
    """What earlier refinements took out (their negative terms), unless this edit brings it back."""
    base = set(composer.BASE_NEGATIVE.split(", ")) | {"text", "letters", "caption"}
    back = set(rules.content_words(edit))
    terms = [t.strip() for t in prev.negative_prompt.split(",")]
    return [t for t in terms if t and t not in base and not set(rules.content_words(t)) & back]


def _mentions(evidence: Evidence, removed: str) -> bool:
    """Earlier refinements that brought in what is now removed ("with a hat" when removing "hat")."""
    if not removed or evidence.source != "user" or evidence.role != "edit":
        return False
    return bool(set(rules.content_words(removed)) & set(rules.content_words(evidence.content)))


def _purpose(request: str) -> str | None:
    m = rules.PURPOSE.search(request)
    if not m:
        m = re.search(r"\b(logo)\b", request, re.I)
    return m.group(1).lower() if m else None


def _recall_session(memory, request: str) -> SessionRef | None:
    """ "Like the one I made yesterday, but at night": the recorded session it means, if any."""
    from qia_cli.memory.recall import refers_to_session

    if not refers_to_session(request):
        return None
    record = memory.find_session(request)
    if record is None:
        return None
    return SessionRef(
        id=record.id,
        time=record.time.isoformat(timespec="minutes"),
        request=record.request,
        prompt=record.prompt,
        seed=record.seed,
        model=record.model,
    )


def _session_evidence(session: SessionRef) -> Evidence:
    return Evidence(
        source="session",
        content=session.request,
        detail=f"session {session.id} of {session.time}: {session.prompt}"[:300],
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - start, 4)
