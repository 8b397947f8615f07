"""Words, one way for the planner, memory, search and the benchmark that scores them.

Case folded, accents and punctuation dropped, a possessive 's removed and simple plurals stripped
("berries" -> "berry", "boxes" -> "box"), so that "Cherry Blossoms!" and "a cherry blossom" share their
content words. The function words (STOPWORDS) are English grammar; memory and search add a few words of
their own to them (memory/recall.py, search/base.py), and say how short a content word may be.

(qia_cli/agent/rules.py has its own `words` and `content_words`, with other rules: the planner's.)
"""

from __future__ import annotations

import re
import unicodedata

STOPWORDS = frozenset(
    """a an the of in on at to for with and or but nor is are was were be been being by from as into onto
    over under about than then so such very this that these those it its their there here which who whom
    whose what when where why how all any each every both few many much more most some other another own
    same our my your his her him them they we you i me us do does did done not no can could would should
    will shall may might must also just only up down out off s image picture""".split()
)
_WORD = re.compile(r"[a-z0-9]+")
_POSSESSIVE = re.compile(r"['\u2019]s\b")


def singular(word: str) -> str:
    """Simple plural stripping, applied to both sides of a comparison: berries/berry -> berry,
    boxes/box -> box, horses/horse -> horse, cookies/cookie -> cooky, tomatoes/tomato -> tomato."""
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes", "zes", "ches", "shes")) or (len(word) > 5 and word.endswith("oes")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 3 and word.endswith("ie"):
        word = word[:-2] + "y"
    return word


def fold(text: str) -> str:
    """Case and accents folded: "Café" -> "cafe"."""
    if not text:
        return ""
    if text.isascii():  # the common case, and the same result: nothing to decompose
        return text.lower()
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()


def word_tokens(text: str) -> list[str]:
    """Every word of `text`, function words included: case and accents folded, nothing else."""
    return _WORD.findall(fold(text))


def words(text: str) -> list[str]:
    """Folded words with a possessive 's dropped ("Biscuit's" -> "biscuit"); plurals as written."""
    return _WORD.findall(_POSSESSIVE.sub("", fold(text)))


def normalise(text: str) -> list[str]:
    """Lowercase, accent-free, singular word tokens of `text`."""
    return [singular(w) for w in words(text)]


def content_words(
    text: str,
    *,
    stop: frozenset[str] = STOPWORDS,
    min_length: int = 1,
    numbers: bool = True,
    plurals: bool = False,
) -> set[str]:
    """The words of `text` that say something: folded, without the words of `stop`, without words shorter
    than `min_length` letters, and without numbers unless `numbers` (a number of any length is kept then).
    Plurals are made singular ("berries" -> "berry") unless `plurals` (then they stay as written)."""
    found = words(text) if plurals else normalise(text)
    return {w for w in found if w not in stop and (numbers if w.isdigit() else len(w) >= min_length)}
