"""Deterministic gap detection. A small model is unreliable, so these rules carry the structure;
the LLM adds to what they find, never replaces it.

Each detector reads the request and returns gaps with the action that would fill them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qia_cli.agent.types import Gap

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# Leading commands that say "make an image" and nothing about the content.
LEAD = re.compile(
    r"^\s*(?:please\s+)?(?:(?:can|could|would)\s+you\s+)?"
    r"(?:(?:make|create|generate|draw|paint|render|design|produce|give\s+me|show(?:\s+me)?|depict|illustrate|imagine|sketch)\s+)?"
    r"(?:(?:(?:an?|the|me\s+an?)\s+)?"
    r"(?:image|picture|photo(?:graph)?|illustration|drawing|painting|render(?:ing)?|depiction|visual(?:isation|ization)?|scene)\s+"
    r"(?:of|showing|that\s+shows|depicting|with)\s+)?",
    re.IGNORECASE,
)

PERSONAL = re.compile(
    r"\b(my|our)\s+((?:(?:new|old|little|big|best|favou?rite|late|first|own)\s+)?[a-z][a-z-]*)(?:'s|’s)?\b",
    re.IGNORECASE,
)
# Words after "my/our" that are not things one can picture.
PERSONAL_SKIP = {"own", "favorite", "favourite", "style", "taste", "idea", "way", "mind", "choice", "request", "prompt"}

TIME = re.compile(
    r"\b(new|newest|latest|current|currently|recent|recently|upcoming|modern[- ]day|this\s+year'?s?|"
    r"today'?s?|this\s+season'?s?|this\s+week'?s?|last\s+year'?s?|next\s+year'?s?|now|reigning|"
    r"incumbent|(?:19|20)\d\d)\b",
    re.IGNORECASE,
)
# "new" as in "New York" or "new-born" is not time-sensitive.
TIME_FALSE = re.compile(r"\bnew\s+(york|zealand|delhi|orleans|mexico|jersey|england|year'?s?\s+(eve|day)|born|moon)\b", re.I)
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
SAYS = re.compile(r"\b(?:that\s+says|saying|which\s+says|reading|that\s+reads|with\s+the\s+(?:text|words?)|titled|labeled|labelled)\s+:?\s*(.+)$", re.I)
TEXT_CARRIERS = re.compile(
    r"\b(poster|sign|banner|flyer|card|invitation|invite|label|t-?shirt|mug|logo|cover|billboard|placard|menu|ticket|sticker|cake)\b",
    re.IGNORECASE,
)
PURPOSE = re.compile(r"\b(poster|flyer|invitation|invite|card|banner|thumbnail|cover|ad|advert|advertisement)\b", re.I)
EVENT_VAGUE = re.compile(r"\b(?:for|about|announcing)\s+(?:the|our|my|this|that)\s+(event|party|launch|meeting|show|conference|game|occasion)\b", re.I)

STYLE = re.compile(
    r"\b(photo|photograph|photographic|photorealistic|realistic|hyperrealistic|watercolou?r|oil\s+painting|painting|"
    r"acrylic|gouache|sketch|pencil|charcoal|ink|line\s+art|illustration|illustrated|cartoon|comic|manga|anime|pixel\s+art|"
    r"3d|render|cgi|low[- ]poly|vector|flat\s+design|minimalist|minimal|isometric|clay|claymation|origami|"
    r"impressionis[mt]|cubis[mt]|surreal(?:ist|ism)?|art\s+deco|art\s+nouveau|baroque|renaissance|ukiyo-e|pop\s+art|"
    r"cinematic|film\s+still|polaroid|vintage|retro|noir|black\s+and\s+white|monochrome|sepia|steampunk|cyberpunk|"
    r"studio\s+ghibli|disney|pixar|style|styled|stained\s+glass|mosaic|woodcut|engraving|blueprint|infographic|diagram)\b",
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
VAGUE_SUBJECT = re.compile(r"^(?:something|anything|it|this|that|stuff|a\s+thing|things|an?\s+(?:image|picture|photo))\W*$", re.I)

# Cues that the request describes a thing instead of naming it: the image model needs the name.
DESCRIPTIVE = re.compile(
    r"\b(that|which|who|whose|where|when|known\s+(?:for|as)|famous|renowned|associated\s+with|used\s+(?:for|to|in|by|as)|"
    r"made\s+(?:from|of|by)|commonly|traditionally|traditional|typical(?:ly)?|representative|symboli[sz]es|symbol\s+of|"
    r"national|native\s+to|emblem|iconic|landmark|most|best[- ]known|well[- ]known|often|usually|invented|inventor|"
    r"discovered|founder|founded|capital\s+of|largest|tallest|highest|longest|oldest|smallest|fastest|biggest|deepest|"
    r"first|popular|favou?red|celebrat\w*|held\s+(?:in|during)|worn|eaten|served|shared|played|dominant|defining|"
    r"culture|cultural|religious|significance|significant|sacred|revered|mythical|legendary|folk|festival|ancient|"
    r"historic(?:al)?|century|dynasty|era|characteri[sz]ed|characteristic|embodying|representing|represents|"
    r"inspired|famously|wielded|testament|central\s+to|in\s+the\s+style\s+of|favou?rite|beloved|signature|"
    r"symboli[sz]ing|relied|found\s+in|dominating|before\s+\w+(?:\s+\w+)?\s+became|from\s+the\s+(?:fairy\s+tale|story|book|novel|"
    r"legend|myth|film|movie|play|opera|song|game|series))\b",
    re.IGNORECASE,
)
# Head nouns of a category: "the <category> ..." with a clause or a name after it refers to one thing by
# description ("the creature on the flag of Wales", "the tool a carpenter uses to ..."), which needs a name.
CATEGORY = (
    r"(?:creature|animal|beast|bird|fish|insect|plant|flower|tree|fruit|vegetable|herb|spice|dish|food|meal|pastry|"
    r"dessert|cake|bread|cheese|drink|beverage|dip|sauce|soup|tool|instrument|device|machine|gadget|vehicle|vessel|"
    r"boat|ship|aircraft|game|sport|dance|toy|costume|garment|dress|hat|headdress|weapon|statue|monument|landmark|"
    r"building|structure|tower|temple|palace|city|town|country|island|river|mountain|volcano|planet|star|constellation|"
    r"composer|painter|artist|writer|author|poet|scientist|inventor|explorer|leader|ruler|emperor|king|queen|"
    r"character|hero|villain|deity|god|goddess|saint|symbol|emblem|mascot|painting|artwork|sculpture|material|metal|"
    r"gem|gemstone|stone|mineral|element|gas|chemical|bridge|festival|holiday|ritual|breed|species)s?"
)
CLAUSE = re.compile(
    r"\b(?:that|which|who|whose|used|uses|use|made|known|called|named|played|worn|eaten|drunk|rides?|ridden|holding|"
    r"carrying|wearing|an?\s+\w+\s+(?:uses?|wears?|plays?|rides?|eats?|drinks?))\b",
    re.IGNORECASE,
)
DEFINITE_CATEGORY = re.compile(r"^the\s+(?:[\w-]+\s+){0,3}?" + CATEGORY + r"\b(?P<rest>.*)$", re.IGNORECASE)

# Cues that the request names a state or process whose look must be worked out ("after it dissolved").
STATE = re.compile(
    r"\b(after|when|while|without|mixed|dissolved|heated|cooled|frozen|melted|burn(?:ed|ing|t)|left\s+(?:overnight|out|in)|"
    r"reaction|solution|exposed|submerged|submersion|near\s+a|under\s+(?:a|the)|in\s+space|vacuum|-?\d+\s*°\s*[cf]|"
    r"degrees|boiling|evaporat\w*|condens\w*|oxidi[sz]\w*|rust(?:ed|ing)?|decay\w*|dehydrated|wilted|ripe|unripe|"
    r"indicator|magnet|gravity|reflection|refract\w*|shadow|seen\s+through|viewed|sublimat\w*|corro\w*|stored|grown|"
    r"placed\s+(?:under|in|on)|at\s+the\s+moment|demonstrat\w*|pressed|room\s+temperature|heating|cooling|"
    r"overwintering|pupation|germinat\w*|exposure|expos\w+\s+to)\b",
    re.IGNORECASE,
)
PERSON_NOUNS = re.compile(
    r"^(?:the|a|an)\s+(?:\w+\s+){0,3}?(person|man|woman|scientist|inventor|author|writer|painter|artist|composer|"
    r"leader|king|queen|emperor|president|founder|explorer|philosopher|poet|player|athlete|singer|musician|figure|monk|hero|god|goddess)\b",
    re.IGNORECASE,
)

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


def strip_lead(request: str) -> str:
    """'Make an image of the new headquarters' -> 'the new headquarters'."""
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


WEAK_TIME = {"new", "now", "recent", "recently", "modern-day", "modern day"}


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


def _time(a: Analysis) -> None:
    text = TIME_FALSE.sub("", a.request)
    m = next((m for m in TIME.finditer(text) if _time_sensitive(text, m)), None)
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
        r"((?:\b(?:the|a|an|this|our|my|their|its)\s+)?(?:\S+\s+){0,2}?" + re.escape(word) + r"(?:\s+[^\s,.;:!?]+){0,3})",
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
        m = SAYS.search(a.request)
        if m:
            a.quoted_text.append(m.group(1).strip(" .\"'"))
    carrier = TEXT_CARRIERS.search(a.request)
    if carrier and not a.quoted_text and carrier.group(1).lower() in {"poster", "sign", "banner", "flyer", "card", "invitation", "invite", "billboard", "placard"}:
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
    plain = QUOTED.sub("", SAYS.sub("", core))
    if _is_descriptive(plain):
        a.add(
            kind="knowledge",
            description="the request describes its subject instead of naming it",
            action="reason",
            span=core,
            query=knowledge_question(core),
        )
    elif STATE.search(plain) and len(content_words(plain)) >= 2:
        a.add(
            kind="knowledge",
            description="what this state or process looks like must be worked out",
            action="reason",
            span=core,
            query=look_question(core),
        )


def _is_descriptive(core: str) -> bool:
    n = len(words(core))
    if n < 3:
        return False
    if DESCRIPTIVE.search(core):
        return True
    # An appositive ("An amphitheater, a testament to ...") describes instead of naming.
    if re.search(r",\s+(?:a|an|the)\s+\w+", core) and n >= 5:
        return True
    # "the X of Y" definite descriptions: "the currency of the United Kingdom"
    # ("the Statue of Liberty", "the Bank of England" are names already.)
    m = re.match(r"^the\s+(?:\w+\s+){0,2}?(\w+)\s+of\s+", core, re.I)
    if m and m.group(1)[:1].islower():
        return True
    return _definite_category(core)


def _definite_category(core: str) -> bool:
    """'the creature on the flag of Wales': a category noun, then a name or a clause that singles one out.
    Plain scenes ("the tower at the end of the street") and names ("the Eiffel Tower") stay as they are."""
    m = DEFINITE_CATEGORY.match(core)
    if not m:
        return False
    head = core[: m.start("rest")].split()
    if head[-1][:1].isupper():  # "the Eiffel Tower", "the Golden Gate Bridge": already a name
        return False
    return _has_proper_noun(core) or bool(CLAUSE.search(core[3:]))


def look_question(core: str) -> str:
    phrase = _lower_head(core.rstrip(" .!?"))
    return f"What does {phrase} look like?"


def _lower_head(phrase: str) -> str:
    first, _, rest = phrase.partition(" ")
    if first.lower() in STOP and not any(ch.isupper() for ch in first[1:]):
        phrase = first.lower() + (" " + rest if rest else "")
    return phrase


def knowledge_question(core: str) -> str:
    phrase = core.rstrip(" .!?")
    # Keep proper nouns capitalised: only lower an initial article or common word.
    first, _, rest = phrase.partition(" ")
    if first.lower() in STOP or first.lower() in {"most", "largest", "tallest"} or first.istitle():
        if not any(ch.isupper() for ch in first[1:]):
            phrase = first.lower() + (" " + rest if rest else "")
    if not re.match(r"^(the|a|an|this|that|these|those|some|two|three|\d+)\b", phrase, re.I):
        phrase = "the " + phrase
    word = "Who" if PERSON_NOUNS.match(phrase) else "What"
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
    if a.gaps_of("time"):  # current facts come from search, not from the model's memory
        a.gaps = [g for g in a.gaps if g.kind != "knowledge"]
    _purpose(a)
    _text(a)
    _look(a)
    return a
