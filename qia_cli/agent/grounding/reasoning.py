"""Reasoning: turn implicit knowledge into explicit visual content with focused LLM questions.

Small models answer one completion-style question, with four unrelated Q/A pairs before it, far more often
than they answer a chat-style "rewrite this prompt". The pairs are picked per request from a pool so that
they never share words with it: small models copy examples verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qia_cli.agent.rules import content_words, words
from qia_cli.llm.base import LLM, Usage
from qia_cli.text import content_words as stems

NAME_POOL = [
    ("What is the tool used to drive nails into wood?", "a hammer"),
    ("What is the frozen dessert usually served in a crisp cone?", "ice cream"),
    ("Who is the fictional detective who lived at 221B Baker Street?", "Sherlock Holmes"),
    ("What is the metal that is liquid at room temperature?", "mercury"),
    ("What is the yellow vehicle that takes American children to class?", "a school bus"),
    ("What is the planet known for its red dust?", "Mars"),
    ("What is the board game played with kings, queens and pawns?", "chess"),
    ("What is the machine that washes plates after dinner?", "a dishwasher"),
]

# The same pairs, asked about a whole request ("What is shown in: ...?").
WHOLE_POOL = [(q.replace("What is ", "What is shown in: ", 1), a) for q, a in NAME_POOL if q.startswith("What is ")]

LOOK_POOL = [
    ("What does a hammer look like?", "a steel head on a wooden handle"),
    ("What does a school bus look like?", "a long bright yellow bus with black stripes and many windows"),
    ("What does a chessboard look like?", "a square board of 64 black and white squares"),
    ("What does an ice cream cone look like?", "round scoops of ice cream on a crisp waffle cone"),
    ("What does a dishwasher look like?", "a white box with a front door and racks for plates"),
    ("What does a fire hydrant look like?", "a short red metal post with round caps on its sides"),
    ("What does a violin look like?", "a curved wooden body with four strings and a long neck"),
    ("What does a zebra look like?", "a horse-like animal with black and white stripes"),
]

HEADER_NAME = "Answer each question with a short name.\n\n"
HEADER_LOOK = "Describe what each thing looks like in a few words.\n\n"

MAX_ANSWER_WORDS = 8
MAX_LOOK_WORDS = 18
# Confidence comes from the model itself: the same question is asked again, after a disjoint set of example
# pairs, and about the whole request. A fact the model knows survives the change of context; a guess usually
# does not ("Venice" and "Venice", but "a slice of pepperoni" and "a plate"). Only answers that agree reach
# the prompt; the others stay in the plan as guesses. The mean token log-probability is recorded with each
# answer: an answer the model is sure of (at least SURE_LOGPROB) needs no second asking; one below
# MIN_LOGPROB needs both other askings to repeat it, and one below AGREED_LOGPROB is a guess. Tuned on the
# `dev` splits (reason recall against harm on ordinary prompts, with Gemma-3-270m); a backend that reports no
# log-probabilities (some servers) is judged by agreement alone.
EXAMPLES = 4
SURE_LOGPROB = -0.8
MIN_LOGPROB = -2.0
# An answer that two other askings both repeat is knowledge even when the model rates its words lower.
AGREED_LOGPROB = -3.0
BAD_ANSWER = re.compile(r"\b(i don'?t know|unknown|not sure|none|n/a|sorry|cannot|can't)\b", re.I)


def _examples(pool: list[tuple[str, str]], text: str, n: int = EXAMPLES, skip: int = 0) -> list[tuple[str, str]]:
    """The n pairs that share the fewest words with the request (ties keep pool order), after `skip`."""
    mine = set(content_words(text))
    scored = sorted(pool, key=lambda qa: len(mine & set(content_words(qa[0] + " " + qa[1]))))
    return scored[skip : skip + n]


def _prompt(header: str, pool: list[tuple[str, str]], question: str, context: int = 0) -> str:
    """The few-shot prompt; `context` 0 and 1 use disjoint example pairs."""
    lines = [header]
    for q, a in _examples(pool, question, skip=context * EXAMPLES):
        lines.append(f"Q: {q}\nA: {a}\n\n")
    lines.append(f"Q: {question}\nA:")
    return "".join(lines)


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
    text = text.strip().strip("\"'`").strip()
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


def _ask(llm: LLM, header: str, pool, question: str, context: int, max_tokens: int, usage: Usage | None):
    completion = llm.complete(_prompt(header, pool, question, context), max_tokens=max_tokens, stop=["\n"])
    if usage:
        usage.add(completion)
    return completion


def _agree(first: str, second: str | None, known: str, need: int) -> bool:
    """Both answers add at least `need` of the same words to what was known."""
    if not second:
        return False
    base = set(stems(known))
    return len((set(stems(first)) - base) & (set(stems(second)) - base)) >= need


def _new_words(answer: str, request: str) -> list[str]:
    """The answer's words that the request does not already say, in any form: "boat" and "sail" make
    "sailboat" (and "sailboats") nothing new."""
    said = set(stems(request)) | set(words(request))

    def known(word: str) -> bool:
        word = word.rstrip("s") if word not in said else word
        return word in said or any(word[:i] in said and word[i:] in said for i in range(3, len(word) - 2))

    return [w for w in content_words(answer) if not known(w)]


def name_it(llm: LLM, question: str, request: str, usage: Usage | None = None) -> Answer:
    """Ask the one question the gap poses ('What is the national flower of Japan?'), twice."""
    completion = _ask(llm, HEADER_NAME, NAME_POOL, question, 0, 16, usage)
    answer = _clean(completion.text, MAX_ANSWER_WORDS)
    if not answer:
        return Answer(None, completion.logprob, why="no usable answer")
    new = _new_words(answer, request)
    if not new:  # it only repeated the request: no knowledge was added
        return Answer(None, completion.logprob, why=f"'{answer}' only repeats the request")
    lp = completion.logprob
    if lp is not None and lp >= SURE_LOGPROB:
        return Answer(answer, lp, True)
    if lp is not None and lp < AGREED_LOGPROB:
        return Answer(answer, lp, False, f"a guess: mean log-probability {lp:.2f}")
    check = _clean(_ask(llm, HEADER_NAME, NAME_POOL, question, 1, 16, usage).text, MAX_ANSWER_WORDS)
    agreed = _agree(answer, check, request, 1)
    if agreed and (lp is None or lp >= MIN_LOGPROB):
        return Answer(answer, lp, True)
    # Asked about the whole request instead of the described phrase: a second, differently worded check.
    whole = _clean(
        _ask(llm, HEADER_NAME, WHOLE_POOL, f"What is shown in: {request.strip().rstrip('?.!')}?", 0, 16, usage).text,
        MAX_ANSWER_WORDS,
    )
    votes = agreed + _agree(answer, whole, request, 1)
    if votes == 2 or (votes and (lp is None or lp >= MIN_LOGPROB)):
        return Answer(answer, lp, True)
    return Answer(answer, lp, False, f"a guess: asked again, the model said '{check or whole or ''}'")


def describe(llm: LLM, thing: str, usage: Usage | None = None) -> Answer:
    """A few visual words for `thing` ('cherry blossoms' -> 'pale pink five-petal flowers on dark branches'),
    kept only when a second asking agrees on at least two of the words it adds."""
    thing = thing.strip().rstrip(".")
    question = f"What does {thing} look like?"
    completion = _ask(llm, HEADER_LOOK, LOOK_POOL, question, 0, 28, usage)
    text = _clean(completion.text, MAX_LOOK_WORDS)
    if not text:
        return Answer(None, completion.logprob, why="no usable description")
    new = set(content_words(text)) - set(content_words(thing))
    if len(new) < 2:  # it only repeated the thing, or looped on one word: no look was added
        return Answer(None, completion.logprob, why="the description adds nothing")
    check = _clean(_ask(llm, HEADER_LOOK, LOOK_POOL, question, 1, 28, usage).text, MAX_LOOK_WORDS)
    if _agree(text, check, thing, 2) and (completion.logprob is None or completion.logprob >= MIN_LOGPROB):
        return Answer(text, completion.logprob, True)
    return Answer(text, completion.logprob, False, "a guess: a second description disagreed")
