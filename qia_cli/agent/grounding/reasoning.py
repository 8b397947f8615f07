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

# For requests the grammar does not flag: "What is shown in: <request>?", with examples of both kinds, so
# that the model repeats the subject of a request that names it ("a cat sleeping on a windowsill" -> "a cat")
# and names the subject of one that describes it. An answer with words the request lacks is the model's
# judgement that the request describes something; only a sure one that a second asking repeats counts.
SHOWN_PLAIN = [
    ("a cat sleeping on a windowsill", "a cat"),
    ("two children flying a kite on a beach at sunset", "children with a kite"),
    ("a watercolor of a lighthouse on a cliff", "a lighthouse"),
    ("a bowl of ramen with a soft-boiled egg", "ramen"),
    ("an old man reading a newspaper on a park bench", "an old man"),
    ("a red vintage car parked in front of a bakery", "a car"),
]
SHOWN_NAMED = [
    ("the tool used to drive nails into wood", "a hammer"),
    ("the frozen dessert usually served in a crisp cone", "ice cream"),
    ("the planet known for its red dust", "Mars"),
    ("the fictional detective who lived at 221B Baker Street", "Sherlock Holmes"),
    ("the yellow vehicle that takes American children to class", "a school bus"),
    ("the board game played with kings, queens and pawns", "chess"),
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
# What the model names in a request the grammar did not flag must be surer still: on the dev splits this
# threshold (with a second asking that agrees) let 1 of 80 ordinary prompts gain a word.
SHOWN_LOGPROB = -0.7
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


def _shown_prompt(request: str, context: int) -> str:
    """Two plain and two described examples (the two contexts use disjoint ones), alternating."""
    plain = _examples(SHOWN_PLAIN, request, n=2, skip=2 * context)
    named = _examples(SHOWN_NAMED, request, n=2, skip=2 * context)
    pairs = [named[0], plain[0], named[1], plain[1]] if context == 0 else [plain[0], named[0], plain[1], named[1]]
    lines = [HEADER_NAME]
    for q, a in pairs:
        lines.append(f"Q: What is shown in: {q}?\nA: {a}\n\n")
    lines.append(f"Q: What is shown in: {request.strip().rstrip('?.!')}?\nA:")
    return "".join(lines)


def identify(llm: LLM, request: str, usage: Usage | None = None) -> Answer:
    """For a request the grammar found no description in: does the model name something the request does
    not say? Confident only with token log-probabilities (a backend without them is never asked twice)."""
    completion = llm.complete(_shown_prompt(request, 0), max_tokens=16, stop=["\n"])
    if usage:
        usage.add(completion)
    answer = _clean(completion.text, MAX_ANSWER_WORDS)
    if not answer or not _new_words(answer, request):
        return Answer(None, completion.logprob, why="the model names nothing the request does not say")
    if completion.logprob is None or completion.logprob < SHOWN_LOGPROB:
        return Answer(answer, completion.logprob, False, "a guess: not sure enough to ask again")
    second = llm.complete(_shown_prompt(request, 1), max_tokens=16, stop=["\n"])
    if usage:
        usage.add(second)
    check = _clean(second.text, MAX_ANSWER_WORDS)
    if _agree(answer, check, request, 1):
        return Answer(answer, completion.logprob, True)
    return Answer(answer, completion.logprob, False, f"a guess: asked again, the model said '{check or ''}'")


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
