"""Text rules and the recall index of the memory store.

Pure functions over entries: no file access here. `store.py` builds one `Index` per load of
the memory file, so a recall is a few dictionary look-ups even with 10,000 entries.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from qia_cli.text import STOPWORDS as FUNCTION_WORDS
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
    return {t for t in set(tokens(text)) - STOPWORDS if len(t) > 2 and not t.isdigit()}


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
    r"|(?:my|our)\s+(?:preferred|favou?rite)\s+(?:style|colou?rs?|palette|medium|look|aesthetic)\b)",
    re.I,
)
_ENTITY = re.compile(r"\b(?:is|are|was)\s+(?:my|our)\b|^\s*(?:my|our)\s+(?:[\w-]+\s+){1,3}?(?:is|are)\b", re.I)


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
    """Token -> entry ids, name -> entry ids; built once per load of the file."""

    def __init__(self, entries: Sequence[Entry]):
        self.by_id = {e.id: e for e in entries}
        words: defaultdict[str, list[str]] = defaultdict(list)  # an entry's words are a set: no repeats
        names: defaultdict[tuple[str, ...], set[str]] = defaultdict(set)
        first: defaultdict[str, set[tuple[str, ...]]] = defaultdict(set)  # first token of a name -> names
        prefs = []
        for e in entries:
            if e.kind == "preference":
                prefs.append(e)
                continue
            eid = e.id
            for word in content_words(" ".join([e.text, *e.names])):
                words[word].append(eid)
            for name in e.names:
                key = name_key(name)
                if key:
                    names[key].add(eid)
                    first[key[0]].add(key)
        self.words, self.names, self.first = dict(words), dict(names), dict(first)
        self.preferences = sorted(prefs, key=_recency, reverse=True)
        self.count = max(1, len(entries) - len(prefs))
        self.rare_df = max(3, self.count // 100)

    def _names_in(self, toks: list[str]) -> set[tuple[str, ...]]:
        found = set()
        for i, tok in enumerate(toks):
            for key in self.first.get(tok, ()):
                if tuple(toks[i : i + len(key)]) == key:
                    found.add(key)
        return found

    def recall(self, request: str, limit: int = 8) -> Recall:
        toks = tokens(request)
        scores: dict[str, float] = {}
        matched = self._names_in(toks)
        for key in matched:
            for eid in self.names[key]:
                scores[eid] = scores.get(eid, 0.0) + 10.0
        # One hop: "my dog" found "Biscuit is my dog", so facts about "Biscuit" count too.
        for eid in list(scores):
            entry = self.by_id[eid]
            if entry.kind != "entity":
                continue
            for name in entry.names:
                key = name_key(name)
                if key in matched:
                    continue
                for other in self.names.get(key, ()):
                    scores[other] = scores.get(other, 0.0) + 5.0
        for word in set(toks) - STOPWORDS - GENERIC:
            ids = self.words.get(word)
            if ids and len(ids) <= self.rare_df:
                weight = math.log(1 + self.count / len(ids))
                for eid in ids:
                    scores[eid] = scores.get(eid, 0.0) + weight
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
    words = content_words(request) - GENERIC
    if not words:
        return items[0]
    best = max(items, key=lambda r: len(words & content_words(f"{r.request} {r.prompt}")))
    return best if words & content_words(f"{best.request} {best.prompt}") else items[0]
