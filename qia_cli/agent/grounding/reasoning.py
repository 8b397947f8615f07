"""Reasoning: turn implicit knowledge into explicit visual content with focused LLM questions.

Small models answer one completion-style question after a few example Q/A pairs far more often than they
answer a chat-style "rewrite this prompt". Every question of a plan goes after the same fixed block of
examples (a header and six pairs: names asked about a described thing, names asked about a whole request,
and what things look like), so that the model reads the block once and each further question costs only its
own words: llama.cpp keeps the evaluated prefix. A second block, with other examples, asks again. The
block that shares fewer words with the request goes first: small models copy examples verbatim.

How far an answer is trusted is measured per model (`Calibration`, qia_cli/llm/calibration.py): a model
that is sure of a first answer may need no second asking; the same answer from two or three askings
(about the described phrase and about the whole request, after one block and after the other) is
knowledge when its log-probability clears the model's own thresholds; anything else stays in the plan as
a guess. `decide` is that rule; `qia bench calibrate` replays it over a model's answers to dev items.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from qia_cli.agent.rules import content_words, words
from qia_cli.llm.base import LLM, Usage
from qia_cli.llm.calibration import Calibration
from qia_cli.text import content_words as stems
from qia_cli.text import singular

HEADER = "Answer each question in a few words: a short name, or what something looks like.\n\n"
# Two blocks with nothing in common. "What is shown in: ..." pairs teach the whole-request question, the
# others the focused one and the look.
BLOCKS: tuple[tuple[tuple[str, str], ...], ...] = (
    (
        ("What is the tool used to drive nails into wood?", "a hammer"),
        ("What is shown in: the frozen dessert usually served in a crisp cone?", "ice cream"),
        ("What does a school bus look like?", "a long bright yellow bus with black stripes and many windows"),
        ("Who is the fictional detective who lived at 221B Baker Street?", "Sherlock Holmes"),
        ("What is shown in: the board game played with kings, queens and pawns?", "chess"),
        ("What does a violin look like?", "a curved wooden body with four strings and a long neck"),
    ),
    (
        ("What is the metal that is liquid at room temperature?", "mercury"),
        ("What is shown in: the planet known for its red dust?", "Mars"),
        ("What does a fire hydrant look like?", "a short red metal post with round caps on its sides"),
        ("What is the machine that washes plates after dinner?", "a dishwasher"),
        ("What is shown in: the yellow vehicle that takes American children to class?", "a school bus"),
        ("What does a zebra look like?", "a horse-like animal with black and white stripes"),
    ),
)

MAX_ANSWER_WORDS = 8
MAX_LOOK_WORDS = 18
MAX_ANSWER_CHARS = 200  # what a stage reads of an answer, whatever a backend sends
NAME_TOKENS, LOOK_TOKENS = 16, 28
BAD_ANSWER = re.compile(r"\b(i don'?t know|unknown|not sure|none|n/a|sorry|cannot|can't)\b", re.I)


def block_order(request: str) -> tuple[int, int]:
    """The block that shares fewer words with the request first (ties: the first block)."""
    mine = set(content_words(request))
    overlap = [len(mine & set(content_words(" ".join(q + " " + a for q, a in b)))) for b in BLOCKS]
    first = min(range(len(BLOCKS)), key=lambda i: overlap[i])
    return first, 1 - first


def prompt(block: int, question: str) -> str:
    shots = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in BLOCKS[block])
    return f"{HEADER}{shots}Q: {question}\nA:"


def whole_question(request: str) -> str:
    return f"What is shown in: {request.strip().rstrip('?.!')}?"


def _unloop(text: str) -> str:
    """Drop the repeats a small model loops into: 'a tall, tall, tall' -> 'a tall', 'hard straight straight' -> 'hard straight'."""
    text = re.sub(r"\b([\w-]+)(?:\s+\1\b)+", r"\1", text, flags=re.I)
    seen: set[str] = set()
    items = []
    for item in (part.strip() for part in text.split(",")):
        key = item.lower()
        if item and key not in seen:
            seen.add(key)
            items.append(item)
    return ", ".join(items)


def _clean(text: str, max_words: int) -> str | None:
    text = (text or "")[:MAX_ANSWER_CHARS].strip().strip("\"'`").strip()
    text = re.split(r"(?:\bQ:|\n)", text)[0]
    text = re.sub(r"^(?:A:|answer:)\s*", "", text, flags=re.I)
    text = _unloop(text).rstrip(" .;,:!")
    if not text or BAD_ANSWER.search(text):
        return None
    tokens = text.split()
    if len(tokens) > max_words:
        # A long answer is usually a name followed by an explanation: keep the head of it.
        head = re.split(r"[,;(]| - | which | that | because ", text)[0].strip()
        if 0 < len(head.split()) <= max_words:
            return head
        return None
    return text


@dataclass
class Answer:
    text: str | None  # None: no usable answer
    logprob: float | None = None
    confident: bool = False
    why: str = ""
    asked: list[Candidate] = field(default_factory=list)  # every asking, in order


@dataclass
class Candidate:
    """One asking: which question, after which block, and what came back."""

    question: str
    block: int
    text: str | None
    logprob: float | None


def ask(llm: LLM, block: int, question: str, *, max_tokens: int, max_words: int, usage: Usage | None) -> Candidate:
    completion = llm.complete(prompt(block, question), max_tokens=max_tokens, stop=["\n"])
    if usage:
        usage.add(completion)
    return Candidate(question, block, _clean(completion.text, max_words), completion.logprob)


def new_words(answer: str, request: str) -> list[str]:
    """The answer's words that the request does not already say, in any form: "boat" and "sail" make
    "sailboat" (and "sailboats") nothing new, nor "barber" and "shop" after "barbershop", nor another form
    of a request word ("pottery" after "potter", "watering" after "waters"). A name may grow out of a word
    of its description, so a capitalised word is new ("Christmas" after "Christ")."""
    said = set(stems(request)) | set(words(request))

    stems5 = {w[:5] for w in said if len(w) >= 5}
    compounds = [w for w in said if len(w) >= 6]
    names = {w.lower() for w in re.findall(r"\b[A-Z][\w-]*", answer)}

    def known(word: str) -> bool:
        name = word in names
        word = word.rstrip("s") if word not in said else word
        if len(word) >= 5 and word[:5] in stems5 and not name:
            return True  # another form of a word the request says: "potter" and "pottery", "cobbled" and "cobblestone"
        if len(word) >= 3 and any(c != word and (c.startswith(word) or c.endswith(word)) for c in compounds):
            return True  # a part of a compound the request says: "barber" and "shop" in "barbershop"
        # a compound of two words the request says ("sail" + "boat"); only words of a sane length are split
        return word in said or (
            len(word) <= 40 and any(word[:i] in said and word[i:] in said for i in range(3, len(word) - 2))
        )

    return [w for w in content_words(answer) if not known(w)]


def restates(answer: str | None, request: str) -> bool:
    """An answer that repeats a word of the request in lowercase ("a small island with tall stone heads",
    "a cobblestone street") describes it again rather than naming it; a name ("the Golden Gate Bridge") may
    repeat its kind."""
    if not answer or any(t[:1].isupper() for t in answer.split()):
        return False
    return bool({singular(w) for w in words(answer)} & {singular(w) for w in stems(request)})


def _adds(candidate: Candidate, request: str) -> set[str]:
    return {singular(w) for w in new_words(candidate.text, request)} if candidate.text else set()


def decide(
    candidates: Sequence[Candidate], request: str, cal: Calibration, *, whole: bool = False
) -> tuple[Candidate | None, int]:
    """The answer the askings so far support, and how many of them agree on it (0: none yet).

    - the first asking alone, when it adds a word and the model is at least `cal.sure` sure of it;
    - else the answer whose added words the most askings share: two of them when the surest of those is
      at least `cal.agree`, three when at least `cal.agree3`. The focused asking's text is preferred.
    `whole`: the grammar saw no description, so the model must name something, twice and sure
    (`cal.whole`), without describing the request again."""
    if whole:
        adds = [set() if restates(c.text, request) else _adds(c, request) for c in candidates[:2]]
        if len(adds) == 2 and adds[0] & adds[1]:
            top = max((c.logprob if c.logprob is not None else 0.0) for c in candidates[:2])
            if cal.whole is not None and top >= cal.whole:
                return candidates[0], 2
        return None, 0
    first = candidates[0] if candidates else None
    if first is not None and len(candidates) == 1 and cal.sure is not None and _adds(first, request):
        if first.logprob is not None and first.logprob >= cal.sure:
            return first, 1
    best: tuple[Candidate, int, float] | None = None
    adds = [_adds(c, request) for c in candidates]
    for i, c in enumerate(candidates):
        if not adds[i]:
            continue
        members = [candidates[j] for j in range(len(candidates)) if adds[j] & adds[i]]
        top = max((m.logprob if m.logprob is not None else 0.0) for m in members)
        votes = len(members)
        if (votes >= 2 and top >= cal.agree) or (votes >= 3 and top >= cal.agree3):
            if best is None or votes > best[1] or (votes == best[1] and top > best[2]):
                best = (c, votes, top)
    return (best[0], best[1]) if best else (None, 0)


def _guess(candidates: Sequence[Candidate], request: str) -> Candidate | None:
    """The answer to show as a guess: the first that adds a word."""
    return next((c for c in candidates if _adds(c, request)), None)


def name_it(
    llm: LLM, question: str | None, request: str, cal: Calibration | None = None, usage: Usage | None = None
) -> Answer:
    """Name what `question` ("What is the national flower of Japan?") asks about, or, with no question,
    what the whole request describes. Asked again only while the answers do not settle it."""
    cal = cal or Calibration()
    a, b = block_order(request)
    whole = whole_question(request)
    plan = [(a, question), (a, whole), (b, question), (b, whole)] if question else [(a, whole), (b, whole)]
    candidates: list[Candidate] = []
    for block, text in plan:
        if text is None:
            continue
        candidates.append(ask(llm, block, text, max_tokens=NAME_TOKENS, max_words=MAX_ANSWER_WORDS, usage=usage))
        if len(candidates) == 1 and not candidates[0].text:
            return Answer(None, candidates[0].logprob, why="no usable answer", asked=candidates)
        chosen, _votes = decide(candidates, request, cal, whole=question is None)
        if chosen is not None:
            return Answer(chosen.text, chosen.logprob, True, asked=candidates)
    guess = _guess(candidates, request)
    if guess is None:
        said = candidates[0].text if candidates else None
        return Answer(
            None, None, why=f"'{said}' only repeats the request" if said else "no usable answer", asked=candidates
        )
    others = [c.text for c in candidates if c is not guess and c.text]
    why = "a guess: asked again, the model said " + "; ".join(f"'{t}'" for t in others[:3]) if others else "a guess"
    return Answer(guess.text, guess.logprob, False, why, asked=candidates)


def describe(
    llm: LLM, thing: str, usage: Usage | None = None, request: str = "", first_block: int | None = None
) -> Answer:
    """A few visual words for `thing` ('cherry blossoms' -> 'pale pink five-petal flowers on dark branches'),
    kept only when a second asking (after the other block) agrees on at least two of the words it adds.
    `first_block`: the block the model has just read (the last naming question's), asked first."""
    thing = thing.strip().rstrip(".")
    question = f"What does {thing} look like?"
    a, b = block_order(request or thing)
    if first_block is not None and first_block != a:
        a, b = b, a
    first = ask(llm, a, question, max_tokens=LOOK_TOKENS, max_words=MAX_LOOK_WORDS, usage=usage)
    if not first.text:
        return Answer(None, first.logprob, why="no usable description", asked=[first])
    new = set(content_words(first.text)) - set(content_words(thing))
    if len(new) < 2:  # it only repeated the thing, or looped on one word: no look was added
        return Answer(None, first.logprob, why="the description adds nothing", asked=[first])
    check = ask(llm, b, question, max_tokens=LOOK_TOKENS, max_words=MAX_LOOK_WORDS, usage=usage)
    shared = (set(stems(first.text)) - set(stems(thing))) & (set(stems(check.text or "")) - set(stems(thing)))
    if len(shared) >= 2:
        return Answer(first.text, first.logprob, True, asked=[first, check])
    return Answer(first.text, first.logprob, False, "a guess: a second description disagreed", asked=[first, check])
