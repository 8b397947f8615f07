"""Deterministic gap detection. A small model is unreliable, so these rules carry the structure;
the LLM adds to what they find, never replaces it.

Each detector reads the request and returns gaps with the action that would fill them.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from qia_cli.agent.grammar import (
    ARTICLES,
    AUXILIARIES,
    BARE_SKIP,
    CONJUNCTIONS,
    CONTACT_DETERMINERS,
    DEGREE,
    FIRST_SECOND_PERSON,
    GENERIC_ADVERBS,
    INDEFINITE_ARTICLES,
    ORDINALS,
    PREPOSITIONS,
    RELATIVE,
    YEAR,
    is_participle,
    is_proper,
    is_superlative,
)
from qia_cli.agent.types import Gap

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# Vocabulary: the words of requests and pictures (commands, occasions, time, text, purposes, styles,
# composition, settings, people). Unlike grammar.py's closed classes, these lists grow with the requests.

# Leading commands that say "make an image" and nothing about the content.
LEAD = re.compile(
    r"^\s*(?:please\s+)?(?:(?:can|could|would)\s+you\s+)?"
    r"(?:(?:make|create|generate|draw|paint|render|design|produce|give|show|depict|illustrate|imagine|sketch|picture|"
    r"visuali[sz]e|envision)\s+(?:(?:me|us)\s+)?)?"
    r"(?:(?:(?:an?|the|me\s+an?)\s+)?"
    r"(?:image|picture|photo(?:graph)?|illustration|drawing|painting|render(?:ing)?|depiction|visual(?:isation|ization)?|scene)\s+"
    r"(?:of|showing|that\s+shows|depicting|with)\s+)?",
    re.IGNORECASE,
)

_MODS = r"(?:(?:new|old|little|big|best|favou?rite|late|first|own|younger|older|baby)\s+)?"
PERSONAL = re.compile(
    rf"\b(my|our)\s+({_MODS}[a-z][a-z-]*)(?:(?:'s|’s)(?:\s+({_MODS}[a-z][a-z-]*))?)?\b",
    re.IGNORECASE,
)
# What a possessive may own that is an occasion, not a thing with a look: "my dog's birthday" asks about the
# dog, "my sister's cat" about the cat.
OCCASIONS = frozenset(
    "birthday birthdays wedding anniversary party graduation retirement funeral christening baptism "
    "farewell homecoming name day".split()
)
# Words after "my/our" that are not things one can picture.
PERSONAL_SKIP = {"own", "favorite", "favourite", "style", "taste", "idea", "way", "mind", "choice", "request", "prompt"}

TIME = re.compile(
    r"\b(new|newest|latest|current|currently|recent|recently|upcoming|modern[- ]day|this\s+year'?s?|"
    r"today'?s?|this\s+season'?s?|this\s+week'?s?|last\s+year'?s?|next\s+year'?s?|now|reigning|"
    r"incumbent|(?:19|20)\d\d)\b",
    re.IGNORECASE,
)
WEAK_TIME = {"new", "now", "recent", "recently", "modern-day", "modern day"}
# "new" as in "New York" or "new-born" is not time-sensitive.
TIME_FALSE = re.compile(
    r"\bnew\s+(york|zealand|delhi|orleans|mexico|jersey|england|year'?s?\s+(eve|day)|born|moon)\b", re.I
)
TIME_NOUNS = re.compile(
    r"\b(headquarters|hq|champion|champions|winner|president|ceo|leader|model|version|release|iphone|phone|logo|"
    r"stadium|building|tower|album|movie|film|season|trend|fashion|car|console|mascot|pope|king|queen|"
    r"prime\s+minister|chancellor|mayor|record|tallest|largest|world\s+cup|olympics|design|"
    r"\w*bridge|terminal|airport|station|museum|library|campus|office|arena|skyline|skyscraper|flagship|"
    r"product|game|book|show|series|coach|manager|captain|uniform|kit|jersey|flag|currency|coin|banknote|"
    r"stamp|cabinet|government|line-?up|squad|collection|edition|lineup)\b",
    re.IGNORECASE,
)

QUOTED = re.compile(r"[\"“”]([^\"“”]{1,120})[\"“”]|(?<![a-z])'([^']{2,120})'(?![a-z])", re.IGNORECASE)
TEXT_CARRIERS = re.compile(
    r"\b(poster|sign|signs|signboard|banner|flyer|card|invitation|invite|label|t-?shirt|shirt|mug|logo|cover|"
    r"billboard|placard|menu|ticket|sticker|cake|book|magazine|newspaper|headline|note|letter|plaque|tag|"
    r"chalkboard|blackboard|whiteboard|screen|storefront|sticky\s+note|postcard|envelope|tattoo)\b",
    re.IGNORECASE,
)
# Words that introduce text to render. "with the words ..." always does; "reading", "saying", "titled" only
# right after a thing that carries writing ("a sign reading OPEN"): "an old man reading a newspaper" and "a
# parrot saying hello" describe what someone does, not text to paint.
_INTRO = r"(?:that\s+says|which\s+says|saying|that\s+reads|which\s+reads|reading|titled|labeled|labelled|that\s+spells)"
SAYS = re.compile(
    r"\b(?:with\s+the\s+(?:text|words?|caption|slogan|headline)(?:\s*:\s*|\s+)(.+)$"
    r"|(?:" + TEXT_CARRIERS.pattern[3:-3] + r")(?:\s+(?!(?:and|or|but|while|it|he|she|they|who|is|was)\b)[\w'-]+)?"
    r"\s+" + _INTRO + r"(?:\s*:\s*|\s+)(.+)$)",
    re.I,
)
# Verbs that say what a thing's writing says: "a doormat that says ..." is text to paint.
TEXT_VERBS = frozenset("says said reads read spells".split())
PURPOSE = re.compile(r"\b(poster|flyer|invitation|invite|card|banner|thumbnail|cover|ad|advert|advertisement)\b", re.I)
EVENT_VAGUE = re.compile(
    r"\b(?:for|about|announcing)\s+(?:the|our|my|this|that)\s+(event|party|launch|meeting|show|conference|game|occasion)\b",
    re.I,
)

STYLE = re.compile(
    r"\b(photo|photograph|photographic|photorealistic|realistic|hyperrealistic|watercolou?r|oil\s+painting|painting|"
    r"acrylic|gouache|sketch|pencil|charcoal|ink|line\s+art|illustration|illustrated|cartoon|comic|manga|anime|pixel\s+art|"
    r"3d|render|cgi|low[- ]poly|vector|flat\s+design|minimalist|minimal|isometric|clay|claymation|origami|"
    r"impressionis[mt]|cubis[mt]|surreal(?:ist|ism)?|art\s+deco|art\s+nouveau|baroque|renaissance|ukiyo-e|pop\s+art|"
    r"cinematic|film\s+still|polaroid|vintage|retro|noir|black\s+and\s+white|monochrome|sepia|steampunk|cyberpunk|"
    r"studio\s+ghibli|disney|pixar|style|styled|stained\s+glass|mosaic|woodcut|engraving|blueprint|infographic|diagram|"
    # Any named medium or art form, in any words: a missed one would get a contradicting "photograph" appended,
    # while a false match only leaves the style open.
    r"draw(?:ing|n)|doodle|crayons?|pastels?|markers?|felt[- ]tip|chalk|graffiti|mural|fresco|tapestry|embroider\w*|"
    r"stitch\w*|quilt\w*|lino(?:cut)?|etching|lithograph\w*|prints?|printed|screen[- ]?print\w*|risograph|collage|"
    r"paper[- ]?cut\w*|papercraft|lego|needle[- ]?felt\w*|sculpt\w*|carv(?:ed|ing)|statue|bronze|marble\s+bust|ceramic|"
    r"porcelain|pottery|relief|selfie|snapshot|x-ray|thermal|long\s+exposure|tilt[- ]shift|daguerreotype|tintype|"
    r"cyanotype|35\s?mm|analog(?:ue)?|film\s+(?:photo|camera|grain)|postcard|storybook|picture\s+book|children'?s\s+book|"
    r"emoji|icons?|stickers?|tattoo|colou?ring\s+(?:page|book)|sprite|art|arts|artwork|artistic|painted|rendered|"
    r"photographed|dslr|bokeh|lens|comic\s+strip|graphic\s+novel|concept\s+art|matte\s+painting|airbrush\w*|stencil\w*|"
    r"pointillis[mt]|fauvis[mt]|expressionis[mt]|abstract|bauhaus|psychedelic|vaporwave|synthwave|kawaii|chibi|"
    r"caricature|cartoonish|toon|claymation|stop[- ]motion|animated|animation|\w+esque|\w+ism)\b",
    re.IGNORECASE,
)
COMPOSITION = re.compile(
    r"\b(close[- ]?up|macro|wide[- ]angle|wide\s+shot|panoram(?:a|ic)|aerial|bird'?s[- ]eye|top[- ]down|overhead|"
    r"portrait|profile|full[- ]body|headshot|landscape\s+orientation|low[- ]angle|high[- ]angle|from\s+above|from\s+below|"
    r"centered|centred|symmetrical|foreground|background|in\s+front\s+of|behind|next\s+to|on\s+the\s+left|on\s+the\s+right|"
    r"left|right|between|beside|seen\s+through|view|shot|frame|framed|silhouette)\b",
    re.IGNORECASE,
)
SETTING = re.compile(
    r"\b(dawn|sunrise|morning|noon|afternoon|sunset|dusk|evening|night|midnight|golden\s+hour|blue\s+hour|"
    r"light|lit|lighting|sunlight|moonlight|neon|candlelight|shadow|shadows|dark|bright|glow|glowing|"
    r"indoors|outdoors|inside|outside|room|kitchen|street|forest|beach|city|sky|sea|ocean|mountain|desert|garden|studio|"
    r"table|field|river|lake|park|snow|rain|fog|winter|summer|autumn|spring)\b",
    re.IGNORECASE,
)
VAGUE_SUBJECT = re.compile(
    r"^(?:something|anything|it|this|that|stuff|a\s+thing|things|an?\s+(?:image|picture|photo))\W*$"
    # an indefinite pronoun at the head, whatever follows: "something for the wall", "anything nice"
    r"|^(?:something|anything|stuff)\b",
    re.I,
)

PERSON_NOUNS = re.compile(
    r"\b(person|man|woman|scientist|inventor|author|writer|painter|artist|composer|leader|king|queen|emperor|"
    r"president|founder|explorer|philosopher|poet|player|athlete|singer|musician|figure|monk|hero|god|goddess)s?\b",
    re.IGNORECASE,
)

# Describing instead of naming: a request that *describes* one particular thing ("the flower that is the
# national symbol of Japan", "the rover exploring Gale Crater since 2012", "Newton's famous fruit") needs the
# model to name it; a request that *names* its subject ("the Eiffel Tower at night", "a dog that is running")
# does not. This part reads the grammar of the phrase (grammar.py's closed word classes), not its vocabulary.
TOKEN = re.compile(r"[A-Za-z0-9][\w'’-]*|[,;:()!?.]")


def description_span(core: str) -> str | None:
    """The words of `core` that describe one particular thing instead of naming it, or None.

    The span runs to the first comma; a generic property, an appositive or a participle clause after the
    comma runs on to the end of the clause.
    The first of these steps that recognises the phrase decides:
    - a name's possessive before a lowercase noun (`_possessed`);
    - a generic property, what a kind of thing is known or used for (`_generic_property`);
    - a phrase without an article: a superlative, or a bare noun phrase (`_without_article`);
    - after an article, the noun phrase up to what restricts it (`_head`): a contact clause describes, and a
      capitalised head is a name, left alone ("the Eiffel Tower at night");
    - an indefinite noun phrase with a lasting property (`_indefinite`);
    - a definite noun phrase restricted to one referent (`_definite`)."""
    tokens = TOKEN.findall(core.replace("’", "'"))
    if len(tokens) < 2:
        return None
    stop, comma = _clause_ends(tokens)
    span = _join(tokens[:comma])
    owner = _possessor(tokens[:comma])
    if owner is not None:
        return span if _possessed(tokens[owner + 1 : comma]) else None
    if _generic_property(tokens[:stop]):
        return _join(tokens[:stop])  # "a device commonly used to heat water", "the fruit, known for ..."
    article = tokens[0].lower()
    if article not in ARTICLES:
        return _without_article(core, tokens, span)
    head = _head(tokens[:comma], definite=article == "the")
    if head.contact_clause:
        return span  # "the tool a carpenter uses to cut planks"
    if _is_name(head.words):
        return None  # "the Eiffel Tower", "the 1980s": a name already
    if article in INDEFINITE_ARTICLES:
        return _indefinite(tokens, head.rest, comma, stop, span)
    return span if _definite(head.words, head.rest) else None


def _clause_ends(tokens: list[str]) -> tuple[int, int]:
    """Where the first clause ends (at ; : ( ) ! ? or .), and where its first comma is (else its end)."""
    stop = next((i for i, t in enumerate(tokens) if t in ";:()!?."), len(tokens))
    comma = next((i for i, t in enumerate(tokens[:stop]) if t == ","), stop)
    return stop, comma


def _join(tokens: list[str]) -> str:
    return " ".join(tokens).replace(" ,", ",")


def _possessor(tokens: list[str]) -> int | None:
    """Where a name's possessive is ("Newton's", "Sherlock Holmes's"): after capitalised words only; or None."""
    owner = 0
    while owner < len(tokens) and tokens[owner][:1].isupper() and not tokens[owner].lower().endswith("'s"):
        owner += 1
    if owner < len(tokens) and tokens[owner][:1].isupper() and tokens[owner].lower() not in ("it's", "let's"):
        return owner
    return None


def _possessed(rest: list[str]) -> bool:
    """A name's possessive before a lowercase noun: "Newton's famous fruit", "Sherlock Holmes's loyal friend".

    The noun phrase runs up to a preposition or a relative word; a capitalised one is a name itself."""
    end = next((i for i, t in enumerate(rest) if t.lower() in PREPOSITIONS or t.lower() in RELATIVE), len(rest))
    noun = rest[:end]
    return bool(noun) and noun[0][:1].islower() and noun[-1][:1].islower()


def _generic_property(tokens: list[str]) -> bool:
    """A participle that states what a kind of thing is known or used for: after an adverb of frequency or
    manner ("commonly used to", "traditionally eaten at"), or after a comma ("the fruit, known for its taste").
    Scenes say what is happening instead ("a car parked on the street")."""
    for i in range(1, len(tokens) - 2):
        word, participle, governed = tokens[i].lower(), tokens[i + 1], tokens[i + 2].lower()
        if not (is_participle(participle) and governed in PREPOSITIONS):
            continue
        if word in GENERIC_ADVERBS and participle.lower().endswith(("ed", "n", "t")):
            return True  # "commonly used to", "traditionally eaten at"
        if word == "," and tokens[0].lower() == "the" and not participle.endswith("ing"):
            return True  # "the fruit, known for its taste"
    return False


def _without_article(core: str, tokens: list[str], span: str) -> str | None:
    """A phrase without an article: a superlative ("Most commonly used currency in the world") or a bare noun
    phrase (`_bare`); one led by a pronoun, a possessive, a numeral or a participle is neither."""
    first = tokens[0].lower()
    if first in DEGREE or is_superlative(first):
        return span
    if tokens[0].isalpha() and first not in BARE_SKIP and not is_participle(first):
        return _bare(core, tokens[0])
    return None


def _bare(core: str, first: str) -> str | None:
    """A bare noun phrase ("Bird that symbolises peace") reads like an indefinite one: the same tests."""
    start = core.index(first)
    span = description_span("a " + first[:1].lower() + first[1:] + core[start + len(first) :])
    return span[2:] if span is not None else None  # lowercased: the question reads "What is the bird ...?"


class _Head(NamedTuple):
    """The noun phrase after an article, up to what restricts it."""

    words: list[str]  # "tallest mountain", "tool"
    rest: list[str]  # from the restricting word to the comma: "that is ...", "in the world"; [] if none
    contact_clause: bool  # a determiner follows the head: "the tool a carpenter uses"


def _head(tokens: list[str], definite: bool) -> _Head:
    """The noun phrase after the article, up to a relative word, a preposition, a participle or (after "the")
    the determiner of a contact clause. A conjunction ends it with nothing after: "a croissant and a cup of
    espresso" is a list of things."""
    words: list[str] = []
    for i in range(1, len(tokens)):
        tok, word = tokens[i], tokens[i].lower()
        if word in RELATIVE or (words and (word in PREPOSITIONS or is_participle(tok))):
            return _Head(words, tokens[i:], contact_clause=False)
        if definite and words and word in CONTACT_DETERMINERS:
            return _Head(words, tokens[i:], contact_clause=True)
        if word in CONJUNCTIONS:
            break
        words.append(tok)
    return _Head(words, [], contact_clause=False)


def _is_name(words: list[str]) -> bool:
    """No head noun, or one that is a name or a year: "the Eiffel Tower", "the 1980s"."""
    return not words or words[-1][:1].isupper() or bool(YEAR.match(words[-1]))


def _indefinite(tokens: list[str], rest: list[str], comma: int, stop: int, span: str) -> str | None:
    """An indefinite noun phrase ("a/an ...") with a lasting property.

    A relative clause that is not progressive ("a bird that cannot fly", not "a dog that is running"), a
    participle in -ed with a name after it ("a dish served during Chinese New Year"), an appositive ("a
    mausoleum, a symbol of love"), or a participle clause after a comma ("a plant, often associated with
    ..."). What a picture is *of* is read as a phrase of its own."""
    if len(rest) > 2 and rest[0].lower() == "of" and rest[1].lower() == "the":
        # "a poster of the national flower of Japan": what the picture is *of* may be a description
        return description_span(" ".join(tokens[tokens.index(rest[1], 1) : stop]))
    clause = _relative_clause(rest)
    if clause and clause[0].lower() in TEXT_VERBS:
        return None  # "a doormat that says ...": text to paint, not a description
    if len(clause) > 1:
        return None if _progressive(clause) else span
    if _participle_with_name(rest):
        return span
    after = tokens[comma + 1 : stop]
    if _appositive(after) or _habitual_participle(after):
        return _join(tokens[:stop])
    return None


def _relative_clause(rest: list[str]) -> list[str]:
    """The words after the first relative word: "cannot fly" of "that cannot fly"; [] without one."""
    rel = next((j for j, t in enumerate(rest) if t.lower() in RELATIVE), None)
    return rest[rel + 1 :] if rel is not None else []


def _progressive(clause: list[str]) -> bool:
    """A form of "be" before a participle: "(that) is running" (and so "is made of" too)."""
    return clause[0].lower() in AUXILIARIES and is_participle(clause[1])


def _participle_with_name(rest: list[str]) -> bool:
    """A participle in -ed with a name or a year after it: "a dish served during Chinese New Year"."""
    return bool(rest) and is_participle(rest[0]) and rest[0].endswith("ed") and any(is_proper(t) for t in rest[1:])


def _appositive(after: list[str]) -> bool:
    """A phrase after a comma that says what the thing *is* ("a symbol of love", "a national symbol"), not
    more of the scene: a list of things ("..., a rolling ladder, a sleeping cat") or a thing doing something
    ("a night light glowing by the bed", "the furniture pushed against the walls")."""
    if len(after) < 3 or after[0].lower() not in ARTICLES or after[1].lower() in ("photo", "photograph"):
        return False
    parts = " ".join(after).split(" , ")
    if sum(1 for p in parts if p.split()[0].lower() in ARTICLES) >= 2:
        return False  # a list of things in the scene
    first = parts[0].split()
    for i in range(2, len(first)):
        before = first[i - 1]
        if (
            is_participle(first[i])
            and before[:1].islower()
            and before.lower() not in BARE_SKIP | PREPOSITIONS | CONJUNCTIONS
        ):
            return False  # "a night light glowing ...": a thing doing something
    return True


def _habitual_participle(after: list[str]) -> bool:
    """An adverb, a participle and its preposition after a comma: "a tropical plant, often associated with"."""
    adverb = bool(after) and (after[0].lower().endswith("ly") or after[0].lower() in ("often", "once", "still", "long"))
    return adverb and len(after) >= 3 and is_participle(after[1]) and after[2].lower() in PREPOSITIONS


def _definite(words: list[str], rest: list[str]) -> bool:
    """A definite noun phrase ("the ...") with a lowercase head, restricted to one referent.

    By a word before its head (`_ranked`, `_capitalised_modifier`) or by what follows it: a relative or
    participle clause, a phrase with a name or a year, a superlative, or a preposition that governs "the"
    or a bare noun (a contact clause is `_head`'s). "The tower at the end of the street" is such a phrase
    too; the model's own answer decides there (it names nothing new, or not twice). A phrase whose
    modifiers only pick a generic thing ("the top of a hill") is a scene."""
    return (
        _ranked(words)
        or _capitalised_modifier(words)
        or _relative_or_participle(rest)
        or _names_something(rest)
        or _ranked_object(rest)
        or _definite_object(rest)
    )


def _ranked(words: list[str]) -> bool:
    """A superlative, an ordinal or "only" before the head: "the tallest mountain", "the first man on the
    moon", "the only mammal ..."."""
    if len(words) < 2:
        return False
    first = words[0].lower()
    return first in DEGREE or first in ORDINALS or first == "only" or is_superlative(words[0])


def _capitalised_modifier(words: list[str]) -> bool:
    """A capitalised word before the head, and two words or more: "the Japanese national flower" (but "the
    Victorian house" is a scene)."""
    return len(words) >= 3 and any(t[:1].isupper() for t in words[:-1])


def _relative_or_participle(rest: list[str]) -> bool:
    """A relative word or a participle after the head: "the flower that is ...", "the rover exploring ..."."""
    return any(t.lower() in RELATIVE or is_participle(t) for t in rest)


def _names_something(rest: list[str]) -> bool:
    """A name or a year after the head's restricting word: "the rover on Mars", "the capital in 1900"."""
    return any(is_proper(t) for t in rest[1:])


def _ranked_object(rest: list[str]) -> bool:
    """A superlative after the head: "the planet with the most famous rings"."""
    return any(is_superlative(t) or t.lower() in DEGREE for t in rest)


def _definite_object(rest: list[str]) -> bool:
    """A preposition that governs "the" or a bare noun singles one thing out ("the tower at the end of the
    street"); "a/an" keeps it generic ("the top of a hill", "the kitchen of a small apartment")."""
    objects = [rest[j + 1].lower() for j, t in enumerate(rest[:-1]) if t.lower() in PREPOSITIONS]
    return bool(objects) and not all(o in INDEFINITE_ARTICLES for o in objects)


STOP = set(
    "a an the of in on at to for with and or but is are was were be been being by from as that which who whom whose "
    "this these those it its their there here into onto over under about than then so such very most more some any "
    "each every all both few many much other another same own our my your his her them they we you i me us do does "
    "did done make made image picture photo show depict create generate draw please can could would should will".split()
)


def words(text: str) -> list[str]:
    """Lowercase words; a possessive 's is dropped ("Acme's" -> "acme")."""
    return [w[:-2] if w.endswith("'s") else w for w in WORD.findall(text.lower().replace("’", "'"))]


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOP and len(w) > 1]


# A question about what something is or looks like asks for the thing itself: "What does the X look like?"
QUESTION = re.compile(
    r"^\s*(?:what|who|which)\s+(?:(?:does|do|did)\s+(?P<looks>.+?)\s+look\s+like|(?:is|are|was|were)\s+(?P<is>.+?))"
    r"(?P<rest>\s+(?:at|in|on|during|from|under|with)\s+.+?)?\s*\?*\s*$",
    re.IGNORECASE,
)


def strip_lead(request: str) -> str:
    """'Make an image of the new headquarters' -> 'the new headquarters'; 'What does the X look like at dusk?'
    -> 'the X at dusk'."""
    asked = QUESTION.match(request)
    if asked:
        thing = asked.group("looks") or asked.group("is") or ""
        return (thing.rstrip(" ,;") + (asked.group("rest") or "")).strip() or request.strip()
    core = LEAD.sub("", request, count=1).strip()
    return core or request.strip()


@dataclass
class Analysis:
    request: str
    core: str
    gaps: list[Gap] = field(default_factory=list)
    quoted_text: list[str] = field(default_factory=list)
    has_style: bool = False
    has_composition: bool = False
    has_setting: bool = False
    detailed: bool = False
    past: bool = False  # the only time cue is a past year: reasoning may answer what search does not

    def gaps_of(self, kind: str) -> list[Gap]:
        return [g for g in self.gaps if g.kind == kind]

    def add(self, **kwargs) -> Gap:
        gap = Gap(id=f"g{len(self.gaps) + 1}", origin="rule", **kwargs)
        self.gaps.append(gap)
        return gap


def _personal(a: Analysis) -> None:
    seen: set[str] = set()
    for m in PERSONAL.finditer(a.request):
        noun = m.group(2).lower()
        owned = (m.group(3) or "").lower()
        occasion = owned and (owned.split()[-1] in OCCASIONS or owned.split()[0] in ORDINALS)  # "first snow"
        if owned and not occasion and owned.split()[-1] not in PERSONAL_SKIP:
            noun = f"{noun}'s {owned}"  # "my sister's cat": the cat
        if noun in PERSONAL_SKIP:
            continue
        span = f"{m.group(1).lower()} {noun}"
        if span in seen:
            continue
        seen.add(span)
        a.add(
            kind="personal",
            description=f"who or what '{span}' is: only you or your memory know",
            action="recall",
            span=span,
        )


def _time_sensitive(text: str, m: re.Match) -> bool:
    """'new' and the like point at a current fact only next to something that changes over time, or
    when they pick out one particular thing: "the new tram" is a fact to look up, "a new puppy" is not."""
    if m.group(1).lower() not in WEAK_TIME:
        return True
    if TIME_NOUNS.search(text):
        return True
    if m.group(1)[0].isupper() and m.start() > 0:  # "the New Forest", "the New Testament": a name
        return False
    before = text[: m.start()].split()[-2:]
    return any(w.lower() == "the" or w.lower().endswith("'s") for w in before)


# Years this recent are news to a model trained before them: search, as for "the latest".
RECENT_YEARS = 2


def _past_year(m: re.Match) -> bool:
    word = m.group(1)
    return bool(YEAR.match(word)) and int(word) < datetime.date.today().year - RECENT_YEARS


def _time(a: Analysis) -> None:
    text = TIME_FALSE.sub("", a.request)
    cues = [m for m in TIME.finditer(text) if _time_sensitive(text, m)]
    if cues and all(_past_year(m) for m in cues):
        # The past does not change: a dated fact ("the city that hosted the Olympics in 2008") is knowledge.
        # Search may still confirm it; reasoning answers when search is off or finds nothing.
        if not a.gaps_of("knowledge"):
            return
        a.past = True
    m = cues[0] if cues else None
    if not m:
        return
    phrase = _phrase_around(a.core, m.group(0))
    if not _has_proper_noun(a.core) and not re.search(r"\bof\b", phrase) and not a.gaps_of("personal"):
        a.add(
            kind="subject",
            description=f"whose or which '{phrase}' is meant",
            action="ask",
            span=phrase,
        )
    a.add(
        kind="time",
        description=f"'{phrase}' depends on current facts",
        action="search",
        span=phrase,
        query=" ".join(content_words(a.core))[:120],
    )


def _has_proper_noun(text: str) -> bool:
    tokens = re.findall(r"[A-Za-z][\w'-]*", text)
    return any(t[0].isupper() for t in tokens[1:]) or bool(re.search(r"\b(?:19|20)\d\d\b", text))


def _phrase_around(text: str, word: str) -> str:
    """The noun phrase that contains `word`: from the preceding determiner to the next preposition/punctuation."""
    m = re.search(
        r"((?:\b(?:the|a|an|this|our|my|their|its)\s+)?(?:\S+\s+){0,2}?"
        + re.escape(word)
        + r"(?:\s+[^\s,.;:!?]+){0,3})",
        text,
        re.IGNORECASE,
    )
    phrase = m.group(1) if m else word
    phrase = re.split(r"\s+(?:for|with|in|on|at|that|which|and|of\s+(?:my|our))\s+", phrase)[0]
    phrase = re.sub(r"(?:\s+(?:of|the|a|an|to|from|by))+$", "", phrase.strip(" ,.;:"), flags=re.I)
    return phrase.strip(" ,.;:")


def _text(a: Analysis) -> None:
    for m in QUOTED.finditer(a.request):
        a.quoted_text.append((m.group(1) or m.group(2)).strip())
    if not a.quoted_text:
        said = SAYS.search(a.request)
        text = (said.group(1) or said.group(2)).strip(" .\"'") if said else ""
        first = text.split()[0] if text else ""
        if text and not (first.islower() and first in PREPOSITIONS):  # "titled in bold red letters": no title
            a.quoted_text.append(text)
    carrier = TEXT_CARRIERS.search(a.request)
    if (
        carrier
        and not a.quoted_text
        and carrier.group(1).lower()
        in {"poster", "sign", "banner", "flyer", "card", "invitation", "invite", "billboard", "placard"}
    ):
        a.add(
            kind="text",
            description=f"what the {carrier.group(1).lower()} should say",
            action="ask",
            span=carrier.group(1).lower(),
        )


def _purpose(a: Analysis) -> None:
    m = EVENT_VAGUE.search(a.request)
    if m:
        a.add(kind="purpose", description=f"which {m.group(1).lower()} it is for", action="ask", span=m.group(0))


def _subject(a: Analysis) -> None:
    core = a.core.strip()
    if VAGUE_SUBJECT.match(core) or not content_words(core):
        a.add(kind="subject", description="what the image should show", action="ask", span=core or None)
        return
    plain = QUOTED.sub("", SAYS.sub("", core)).strip()
    span = description_span(plain)
    if span and FIRST_SECOND_PERSON.intersection(TOKEN.findall(span)):
        # "the thing we talked about yesterday", "the song you sang": only the user knows what it is
        a.add(kind="subject", description="it refers to something only you know", action="ask", span=span)
    elif span:
        a.add(
            kind="knowledge",
            description="the request describes its subject instead of naming it",
            action="reason",
            span=span,
            query=knowledge_question(span),
        )


def knowledge_question(span: str) -> str:
    phrase = span.rstrip(" .!?,;")
    first, _, rest = phrase.partition(" ")
    if first in ("The", "A", "An"):
        phrase = first.lower() + (" " + rest if rest else "")
    if not re.match(r"^(the|a|an)\b", phrase):
        phrase = "the " + phrase if not phrase[:1].isupper() else phrase
    head = " ".join(phrase.split()[:5])
    word = "Who" if PERSON_NOUNS.search(head) else "What"
    return f"{word} is {phrase}?"


def _look(a: Analysis) -> None:
    a.has_style = bool(STYLE.search(a.request))
    a.has_composition = bool(COMPOSITION.search(a.request))
    a.has_setting = bool(SETTING.search(a.request))
    a.detailed = len(words(a.request)) >= 25
    if not a.has_style:
        a.add(kind="style", description="no medium or look is given", action="recall", span=None)
    if not a.has_composition and not a.detailed:
        a.add(kind="composition", description="no framing or viewpoint is given", action="assume")
    if not a.has_setting and not a.detailed:
        a.add(kind="setting", description="no lighting, place or time of day is given", action="assume")


def analyze(request: str) -> Analysis:
    a = Analysis(request=request.strip(), core=strip_lead(request))
    _personal(a)
    _subject(a)
    _time(a)
    if a.gaps_of("time") and not a.past:  # current facts come from search, not from the model's memory
        a.gaps = [g for g in a.gaps if g.kind != "knowledge"]
    _purpose(a)
    _text(a)
    _look(a)
    for number, gap in enumerate(a.gaps, 1):  # ids in order, none repeated, after the knowledge gap a time gap drops
        gap.id = f"g{number}"
    return a
