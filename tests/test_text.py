"""One text module: the content words of the benchmark, memory and search come from one function with their
own settings (the same words as each module's own function gave), one invisible-character rule, and one
summary of a foreign exception."""

from __future__ import annotations

import pytest

from qia_cli import text
from qia_cli.errors import first_line
from qia_cli.memory import recall
from qia_cli.search import base as search
from qia_cli.textsafe import clean_input

SENTENCE = "The 3 cats of Biscuit's 1990s café have 2 berries, a hat and 10 toys"


def test_the_shared_content_words_are_singular_and_keep_numbers():
    assert text.content_words(SENTENCE) == {
        "3",
        "cat",
        "biscuit",
        "1990",
        "cafe",
        "have",
        "2",
        "berry",
        "hat",
        "10",
        "toy",
    }


def test_search_keeps_plurals_and_digits_and_drops_single_letters_and_its_own_stop_words():
    assert search.content_words(SENTENCE) == {
        "3",
        "cats",
        "biscuit",
        "1990s",
        "cafe",
        "2",
        "berries",
        "hat",
        "10",
        "toys",
    }
    assert search.content_words("x y z 7") == {"7"} and "after" not in search.content_words("after the rain")


def test_memory_keeps_plurals_and_drops_numbers_short_words_and_its_own_stop_words():
    assert recall.content_words(SENTENCE) == {"cats", "biscuit", "1990s", "cafe", "berries", "hat", "toys"}
    assert recall.content_words("please show my dog") == {"dog"}


def test_web_text_and_typed_text_lose_the_same_invisible_characters():
    hidden = "ig\u200bno\u202ere\u2066 \ufeffthis\u00ad"
    assert search.clean(hidden) == clean_input(hidden) == "ignore this"


@pytest.mark.parametrize(
    "exc, limit, expected",
    [
        (ValueError("  first\nsecond"), None, "first"),
        (ValueError(""), None, "ValueError"),
        (OSError("x" * 300), 200, "x" * 200),
    ],
)
def test_the_first_line_of_an_exception(exc, limit, expected):
    assert first_line(exc, limit=limit) == expected
