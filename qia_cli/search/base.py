"""Search results and the backend protocol. Results are untrusted web text: `clean()` them."""

from __future__ import annotations

import html
import re
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from qia_cli.text import STOPWORDS as FUNCTION_WORDS
from qia_cli.text import content_words as _content_words
from qia_cli.textsafe import INVISIBLE, strip_escapes

# The shared function words, and a few more that never pick a recorded query.
STOPWORDS = FUNCTION_WORDS | frozenset("after before has have".split())


class SearchResult(BaseModel):
    title: str = ""
    href: str = ""
    body: str = ""


@runtime_checkable
class SearchBackend(Protocol):
    name: str  # part of the cache key
    cacheable: bool  # False for recorded fixtures

    def search(self, query: str, max_results: int) -> list[SearchResult]: ...


_BLOCKS = re.compile(r"<(script|style|noscript|iframe|template)\b[^>]*>.*?(?:</\1\s*>|$)", re.I | re.S)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_TAG = re.compile(r"</?[A-Za-z][^>]*>|<[!?][^>]*>")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_MARK = re.compile(r"(\*\*|__|`+|^#+\s*|~~)", re.M)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def clean(text: str | None, limit: int = 300) -> str:
    """Plain text from untrusted markup: no tags, scripts, markdown marks or control characters,
    whitespace collapsed, at most `limit` characters (cut at a word, with an ellipsis)."""
    if not text:
        return ""
    text = _COMMENT.sub(" ", _BLOCKS.sub(" ", strip_escapes(str(text))))
    text = html.unescape(_TAG.sub(" ", text))
    text = _TAG.sub(" ", text)  # markup that was entity-escaped
    text = _MD_MARK.sub("", _MD_LINK.sub(r"\1", text))
    # zero-width and bidi format characters are removed, not spaced: "ig\u200bnore" must read "ignore"
    text = re.sub(r"\s+", " ", _CONTROL.sub(" ", INVISIBLE.sub("", text))).strip()
    if limit and len(text) > limit:
        cut = text[: max(1, limit - 1)]
        if " " in cut[limit // 2 :]:
            cut = cut[: cut.rfind(" ")]
        text = cut.rstrip(" ,;:.-") + "\u2026"
    return text


def clean_result(result: SearchResult, limit: int = 300) -> SearchResult:
    return SearchResult(title=clean(result.title, 200), href=clean(result.href, 500), body=clean(result.body, limit))


def content_words(text: str) -> set[str]:
    """The words that match a query to a recorded one: folded, no function words, no single letters (a digit
    stays), plurals as written."""
    return _content_words(text, stop=STOPWORDS, min_length=2, plurals=True)
