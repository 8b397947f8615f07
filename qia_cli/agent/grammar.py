"""English grammar for the rules (rules.py): the closed word classes, and predicates on a single word.

A closed class is the same for every request: articles, pronouns, prepositions, auxiliaries, ordinals.
These lists say how a phrase is built ("the flower that is the national symbol of Japan": a definite
article, a head noun, a relative clause), never what it is about. The vocabulary of pictures and requests
(styles, settings, text carriers, occasions, ...) is in rules.py.

The function words that planner, memory and search share (text.STOPWORDS) are in qia_cli/text.py.
"""

from __future__ import annotations

import re

# Determiners and pronouns.
ARTICLES = frozenset({"a", "an", "the"})
INDEFINITE_ARTICLES = frozenset({"a", "an"})
POSSESSIVE_DETERMINERS = frozenset("my our your his her their its".split())
DEMONSTRATIVES = frozenset("this that these those".split())
QUANTIFIERS = frozenset("some any many several few each every all both no".split())
NUMERALS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve dozen dozens hundreds thousands".split()
)
PERSONAL_PRONOUNS = frozenset("i we you he she they it me us them".split())
INDEFINITE_PRONOUNS = frozenset("something anything nothing everything someone anyone".split())
# Closed classes that start a phrase without an article: possessives, demonstratives, quantifiers, numerals,
# pronouns. Any other first word starts a bare noun phrase.
BARE_SKIP = POSSESSIVE_DETERMINERS | DEMONSTRATIVES | QUANTIFIERS | NUMERALS | PERSONAL_PRONOUNS | INDEFINITE_PRONOUNS
# The determiners that open a contact clause after a definite head: "the tool a carpenter uses".
CONTACT_DETERMINERS = frozenset("a an the his her their its our your".split())
# First and second person pronouns, as written (a capital "I" may be a title or a numeral: "World War I").
FIRST_SECOND_PERSON = frozenset({"we", "us", "you", "me"})

RELATIVE = frozenset("that which who whom whose where when".split())
PREPOSITIONS = frozenset(
    "of in on at from for with by during since under over near behind to into across through after before "
    "between among around without inside outside beside along above below beneath against toward towards "
    "about like onto upon within beyond throughout until".split()
)
CONJUNCTIONS = frozenset({"and", "or"})
# The forms of "be": with a participle after them, a progressive ("that is running").
AUXILIARIES = frozenset("is are was were be being been".split())
ORDINALS = frozenset("first second third fourth fifth sixth seventh eighth ninth tenth last".split())
# The degree words of a superlative written with two words: "the most famous", "the least known".
DEGREE = frozenset({"most", "least"})
# Adverbs of frequency and habit: a participle after one says what a kind of thing is for ("commonly used
# to", "traditionally eaten at"); after a manner adverb it describes the scene ("neatly coiled around").
GENERIC_ADVERBS = frozenset(
    """often once still usually always typically commonly traditionally generally frequently mostly mainly
    primarily widely famously historically originally customarily popularly sometimes normally chiefly
    especially particularly classically culturally""".split()
)
# English irregular past participles: a closed class of the grammar ("the dessert made of ...").
IRREGULAR_PARTICIPLES = frozenset(
    "made known built worn eaten drunk born seen sung written drawn grown found held sold told shown given "
    "taken hidden broken frozen chosen spoken stolen woven ridden thrown flown sewn torn beaten bitten fallen "
    "kept left lost paid said sent spent won cut put set hit read led fed bred bent caught taught brought "
    "bought fought sought thought dug hung struck stuck spun swung done begun run sunk shot laid meant used".split()
)
YEAR = re.compile(r"^(?:1[0-9]|20)\d\d$")


def is_proper(token: str) -> bool:
    """A name or a year: "Japan", "Gale", "2012"."""
    return token[:1].isupper() or bool(YEAR.match(token))


def is_participle(token: str) -> bool:
    """A lowercase present or past participle: "exploring", "associated", "made"."""
    return token[:1].islower() and (
        (len(token) > 4 and token.endswith(("ing", "ed"))) or token in IRREGULAR_PARTICIPLES
    )


def is_superlative(token: str) -> bool:
    """A lowercase superlative of one word, longer than five letters: "tallest", "largest"."""
    low = token.lower()
    return len(low) > 5 and low.endswith("est") and token[:1].islower()
