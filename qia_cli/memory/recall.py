"""Text rules and the recall index of the memory store.

Pure functions over entries: no file access here. `store.py` builds one `Index` per load of
the memory file, so a recall is a few dictionary look-ups even with 10,000 entries.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from qia_cli.text import STOPWORDS as FUNCTION_WORDS
from qia_cli.text import content_words as _content_words
from qia_cli.text import fold, singular
from qia_cli.text import words as tokens  # folded words, a possessive 's dropped: "Biscuit's" is "biscuit"

if TYPE_CHECKING:  # store.py imports this module; models are only needed for types
    from qia_cli.memory.store import Entry, SessionRecord

# The shared function words, and the ones that say nothing about a person, a pet or a place in a
# sentence for memory ("please", "want", "like", ...). The contractions are for `infer_names`, which
# reads words as typed; `words()` splits them ("don't" -> "don", "t").
STOPWORDS = FUNCTION_WORDS | frozenset(
    """above after again against am because before below between doing don don't during further get got
    had has have having he hers herself himself i'm if it's itself let like made make myself now once one
    ones ours ourselves please she show shows theirs themselves through too until use used using want
    wants while yours yourself yourselves""".split()
)
# Words every image request shares; they never make a fact relevant on their own.
GENERIC = frozenset(
    """image images picture pictures photo photos poster posters drawing painting illustration
    render style version new old draw create generate make design card scene shot view""".split()
)
SKIP_NAMES = frozenset(
    """january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday""".split()
)
_APOS = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})


def content_words(text: str) -> set[str]:
    """The words recall matches on: no function words, nothing under three letters, no numbers.
    Plurals stay as written (a name is matched as typed)."""
    return _content_words(text, stop=STOPWORDS, min_length=3, numbers=False, plurals=True)


def name_key(name: str) -> tuple[str, ...]:
    return tuple(tokens(name))


# --- inference ------------------------------------------------------------------------

_MODIFIERS = "best|little|big|older|younger|elder|eldest|new|old|late|baby|favourite|favorite|pet|family|company|home"
_POSSESSIVE = re.compile(rf"\b(my|our)\s+(?:({_MODIFIERS})\s+)?([a-z][a-z]+)\b", re.I)
_NOT_REFERENCES = frozenset(
    "own style styles images pictures photos way mind opinion life work taste favourite favorite".split()
)
_CAP_WORD = re.compile(r"[A-Za-z0-9][\w'\u2019-]*")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")

_PREF = re.compile(
    r"^\s*(?:(?:i|we)\s+(?:really\s+|usually\s+|always\s+|generally\s+|mostly\s+)?"
    r"(?:prefer|like|love|enjoy|want|hate|dislike|don't\s+like|do\s+not\s+like|never\s+want)\b"
    r"|(?:always|never|prefer|avoid|use|keep)\b"
    r"|(?:please\s+)?(?:make|draw|render|paint|do|show)\s+(?:my|all|every|our)\s+(?:\w+\s+)?(?:pictures|images|drawings|paintings|illustrations|photos|renders|art)\b"
    r"|(?:my|our)\s+(?:preferred|favou?rite)\s+(?:style|colou?rs?|palette|medium|look|aesthetic)\b)",
    re.I,
)
_ENTITY = re.compile(
    r"\b(?:is|are|was)\s+(?:my|our)\b|^\s*(?:my|our)\s+(?:[\w'-]+\s+){1,3}?(?:is|are|has|have)\b", re.I
)


def infer_kind(text: str) -> str:
    """'preference' for "I prefer ..."/"always use ...", 'entity' for "Biscuit is my dog", else 'fact'."""
    text = text.translate(_APOS)
    if _PREF.search(text):
        return "preference"
    if _ENTITY.search(text):
        return "entity"
    return "fact"


def infer_names(text: str) -> list[str]:
    """Proper names and possessive references: "Biscuit is my dog" -> ["Biscuit", "my dog"]."""
    text = text.translate(_APOS)
    names: list[str] = []
    for sentence in _SENTENCE.split(text):
        words = _CAP_WORD.findall(sentence)
        run: list[str] = []
        for i, word in enumerate(words + [""]):
            bare = re.sub(r"'s$", "", word)
            low = bare.lower()
            capital = bool(bare) and bare[0].isupper()
            skip = low in STOPWORDS or low in SKIP_NAMES or (i == 0 and low in GENERIC)
            if capital and not skip:
                run.append(bare)
                if bare != word:  # a possessive ends the name: "Biscuit's"
                    names.append(" ".join(run))
                    run = []
            else:
                if run:
                    names.append(" ".join(run))
                run = []
    for match in _POSSESSIVE.finditer(text):
        noun = match.group(3).lower()
        if noun in _NOT_REFERENCES or noun in STOPWORDS:
            continue
        names.append(" ".join(p.lower() for p in match.groups() if p))
    seen: set[tuple[str, ...]] = set()
    unique = []
    for name in names:
        key = name_key(name)
        if key and key not in seen:
            seen.add(key)
            unique.append(name)
    return unique


# --- references -----------------------------------------------------------------------
# Memory recalls by reference, never by shared words: "a red apple" must not fetch the dog with the red
# collar, nor "a beetle on a leaf" the VW Beetle. A request refers to an entry by the entry's name
# ("Pepper on the beach") or by a possessive that matches it ("my dog", "our house", "my sister's cat").
# Only closed word classes below (English grammar): they end a noun phrase.
_NP_STOP = FUNCTION_WORDS | frozenset(
    """is are was were be been has have had named called who which that while near inside outside behind
    beside along across through during since under over between among around without within onto upon
    toward towards after before like as""".split()
)
_DETERMINERS = frozenset("a an the this that these those some any no every each one two three four five".split())
_TOKEN = re.compile(r"[A-Za-z0-9][\w'\u2019-]*|[,.;:!?()]")
_OWNERS = ("my", "our")
# Closed classes that follow a verb, not a noun ("makes her", "has a"), and adverbs of frequency.
_VERB_OBJECT = frozenset("a an the her his their its my our your them him me us this that these those".split())
_ADVERBS = frozenset("always never often usually sometimes rarely seldom still also just".split())
_MAX_NP = 3


_CALLED = re.compile(r"\b(?:called|named)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")
_WE_HAVE = re.compile(
    r"^\s*(?:i|we)\s+(?:live\s+in|have|own|drive|ride|keep)\s+(?:a|an|the|two|three)?\s*(.+)$", re.IGNORECASE
)


def _gerund(word: str) -> bool:
    """'sleeping' in "my dog sleeping": the phrase ends there ("my beloved dog", "our terraced house" go on)."""
    return len(word) > 4 and word.endswith("ing")


def _noun_phrase(toks: list[str], start: int) -> tuple[list[str], int, bool]:
    """The words of the noun phrase after "my"/"our" at `start`: (words, next index, ends with 's)."""
    words: list[str] = []
    i = start
    while i < len(toks) and len(words) < _MAX_NP:
        raw = toks[i]
        bare = re.sub(r"['\u2019]s$", "", raw)
        low = bare.lower()
        if not bare[:1].isalnum() or low in _NP_STOP or (words and (bare[:1].isupper() or _gerund(low))):
            break
        following = toks[i + 1].lower() if i + 1 < len(toks) else ""
        if words and (low in _ADVERBS or low.endswith("ly") or following in _VERB_OBJECT):
            break  # "my mum makes her lasagne", "my grandfather always wears": the verb ends the phrase
        words.append(low)
        i += 1
        if bare != raw:
            return words, i, True
    return words, i, False


def possessive_references(text: str) -> list[list[tuple[str, ...]]]:
    """For each "my/our ..." phrase, the keys it may refer by, best first: the owner ("my" for both my and
    our), each possessor's head, then each word of the last noun phrase as its head, the last word first;
    last, the possessor alone. "my sister's orange cat" -> [("my", "sister", "cat"), ("my", "sister",
    "orange"), ("my", "sister")]; "my dog's birthday" finds the dog through its last key."""
    toks = _TOKEN.findall(text.translate(_APOS))
    groups: list[list[tuple[str, ...]]] = []
    for i, tok in enumerate(toks):
        if tok.lower() not in _OWNERS:
            continue
        chain = ["my"]
        words: list[str] = []
        j = i + 1
        while True:
            words, j, possessor = _noun_phrase(toks, j)
            if not (words and possessor):
                break
            chain.append(words[-1])
        keys = [(*chain, singular(w)) for w in reversed(words) if w not in _DETERMINERS]
        if len(chain) > 1:
            keys.append(tuple(chain))
        if keys:
            groups.append(keys)
    return groups


def entry_references(text: str, names: Sequence[str]) -> set[tuple[str, ...]]:
    """What an entry can be referred to by: the names and possessives that open it, before its verb ("My
    sister Ana has ...", "Biscuit is my dog, ...": also the possessive right after "is"), and any name the
    user gave that the text does not contain. "Grandma lives in Lisbon" is about Grandma, not Lisbon."""
    clean = text.translate(_APOS)
    toks = _TOKEN.findall(clean)
    refs: set[tuple[str, ...]] = set()
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok.lower() in _OWNERS:
            end = i + 1
            while True:
                words, end, possessor = _noun_phrase(toks, end)
                if not (words and possessor):
                    break
            for group in possessive_references(" ".join(toks[i:end])):
                refs.add(group[0])  # an entry is referred to by its own head noun only
            i = max(end, i + 1)
            continue
        bare = re.sub(r"'s$", "", tok)
        if bare[:1].isupper() and bare.lower() not in STOPWORDS:
            run = []
            while i < len(toks) and toks[i][:1].isupper() and toks[i].lower() not in STOPWORDS:
                run.append(re.sub(r"'s$", "", toks[i]))
                i += 1
            refs.add(name_key(" ".join(run)))
            continue
        if tok == ",":  # an appositive: "Pepper, our labrador, ..."
            i += 1
            continue
        if tok.lower() in ("is", "are", "was") and i + 1 < len(toks) and toks[i + 1].lower() in _OWNERS:
            i += 1  # "Biscuit is my dog": the possessive names the subject too
            continue
        break
    m = _WE_HAVE.match(clean)  # "We live in a red-brick house", "I have a dog called Max": our house, my dog
    if m:
        words, _end, _possessor = _noun_phrase(_TOKEN.findall(m.group(1)), 0)
        if words:
            refs.add(("my", singular(words[-1])))
    for called in _CALLED.finditer(clean):  # "a dog called Max", "a black labrador named Pepper"
        refs.add(name_key(called.group(1)))
    low = fold(clean)
    for name in names:  # names given by hand, not found in the text, are references too
        key = name_key(name)
        if key and " ".join(key) not in " ".join(tokens(low)):
            refs.add(key)
    refs.discard(())
    return refs


def _name_in(request_toks: list[str], lowered: list[str], key: tuple[str, ...], all_lower: bool) -> bool:
    """A proper name in the request: capitalised, or in an all-lowercase request, first or after a function
    word that is not an article ("pepper on the beach", "a portrait of pepper"; but "a pepper", "red
    pepper", "two beetles" are things, not the dog Pepper)."""
    n = len(key)
    for i in range(len(lowered) - n + 1):
        if tuple(lowered[i : i + n]) != key:
            continue
        first = request_toks[i]
        if first[:1].isupper():
            return True
        if all_lower and (i == 0 or (lowered[i - 1] in FUNCTION_WORDS and lowered[i - 1] not in _DETERMINERS)):
            return True
    return False


# --- recall ---------------------------------------------------------------------------


@dataclass
class Recall:
    entities: list[Entry] = field(default_factory=list)
    preferences: list[Entry] = field(default_factory=list)
    facts: list[Entry] = field(default_factory=list)

    def all(self) -> list[Entry]:
        return [*self.entities, *self.facts, *self.preferences]

    def ids(self) -> list[str]:
        return [e.id for e in self.all()]

    def __bool__(self) -> bool:
        return bool(self.entities or self.preferences or self.facts)


def _recency(entry: Entry) -> float:
    return (entry.last_used or entry.created).timestamp()


class Index:
    """Reference -> entry ids, built once per load of the file. Recall follows references only: a name the
    request writes as the entry does, or a possessive that matches ("my dog", "our house"), then one hop
    to what else the same entity is called ("my dog" -> "Biscuit" -> "Biscuit loves tennis balls")."""

    def __init__(self, entries: Sequence[Entry]):
        self.by_id = {e.id: e for e in entries}
        refs: defaultdict[tuple[str, ...], set[str]] = defaultdict(set)
        self.refs_of: dict[str, set[tuple[str, ...]]] = {}
        prefs = []
        for e in entries:
            if e.kind == "preference":
                prefs.append(e)
                continue
            keys = entry_references(e.text, e.names)
            self.refs_of[e.id] = keys
            for key in keys:
                refs[key].add(e.id)
        self.refs = dict(refs)
        self.names = [key for key in self.refs if key[0] != "my"]  # proper names; possessives start with "my"
        self.preferences = sorted(prefs, key=_recency, reverse=True)

    def _matched(self, request: str) -> set[tuple[str, ...]]:
        found: set[tuple[str, ...]] = set()
        for group in possessive_references(request):
            key = next((k for k in group if k in self.refs), None)
            if key is not None:
                found.add(key)
        raw = _TOKEN.findall(re.sub(r"['\u2019]s\b", "", request.translate(_APOS)))
        raw = [t for t in raw if t[:1].isalnum()]
        lowered = [fold(t) for t in raw]
        all_lower = not any(ch.isupper() for ch in request)
        found.update(key for key in self.names if _name_in(raw, lowered, key, all_lower))
        return found

    def recall(self, request: str, limit: int = 8) -> Recall:
        matched = self._matched(request)
        scores: dict[str, float] = {}
        for key in matched:
            for eid in self.refs[key]:
                scores[eid] = scores.get(eid, 0.0) + 10.0
        # One hop: "my dog" found "Biscuit is my dog", so entries about "Biscuit" count too.
        for eid in list(scores):
            if self.by_id[eid].kind != "entity":
                continue
            for key in self.refs_of[eid] - matched:
                for other in self.refs.get(key, ()):
                    scores[other] = scores.get(other, 0.0) + 5.0
        ranked = sorted(scores, key=lambda eid: (scores[eid], _recency(self.by_id[eid])), reverse=True)
        out = Recall(preferences=self.preferences[:limit])
        for eid in ranked[:limit]:
            entry = self.by_id[eid]
            (out.entities if entry.kind == "entity" else out.facts).append(entry)
        return out


# --- sessions -------------------------------------------------------------------------

_YESTERDAY = re.compile(r"\byesterday\b", re.I)
_TODAY = re.compile(r"\b(?:earlier\s+today|this\s+morning|this\s+afternoon|today)\b", re.I)
SESSION_REFERENCE = re.compile(
    r"\b(?:yesterday|last\s+time|earlier\s+today|the\s+one\s+i\s+made|the\s+previous\s+one|like\s+before|again)\b",
    re.I,
)


def refers_to_session(request: str) -> bool:
    """True for "like the one I made yesterday", "same as last time", ..."""
    return bool(SESSION_REFERENCE.search(request))


# Words of a session reference that do not say which session: "the image I made yesterday".
_SESSION_WORDS = frozenset("image images picture pictures photo photos yesterday earlier today time last again".split())
_EDIT = re.compile(r",?\s*\b(?:but|except|only|this\s+time|instead)\b", re.I)


def _reference_part(request: str) -> str:
    """The words that say which session is meant, without the change asked for: "like the poster I made
    earlier today, but blue" -> "like the poster I made earlier today"."""
    head = _EDIT.split(request, maxsplit=1)[0]
    return head if SESSION_REFERENCE.search(head) else request


def find_session(records: Iterable[SessionRecord], request: str, now: datetime | None = None) -> SessionRecord | None:
    """The record a request points back to: yesterday's, today's, or simply the latest.

    Among the candidates the one sharing most content words with the request wins, then the newest.
    """
    now = (now or datetime.now(timezone.utc)).astimezone()
    today = now.date()
    items = sorted(records, key=lambda r: r.time, reverse=True)
    if _YESTERDAY.search(request):
        day = today - timedelta(days=1)
        picked = [r for r in items if r.time.astimezone().date() == day]
        items = picked or [r for r in items if r.time.astimezone().date() < today]
    elif _TODAY.search(request):
        items = [r for r in items if r.time.astimezone().date() == today]
    if not items:
        return None
    words = content_words(_reference_part(request)) - _SESSION_WORDS
    if not words:
        return items[0]
    best = max(items, key=lambda r: len(words & content_words(f"{r.request} {r.prompt}")))
    return best if words & content_words(f"{best.request} {best.prompt}") else items[0]
