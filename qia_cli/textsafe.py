"""Untrusted text at the boundaries: what a user types or pipes in, and what qia prints back.

`clean_input()` is for text that comes in (a prompt, an answer, a memory entry): terminal escape
sequences, C0/C1 control characters and invisible format characters are removed, so they never reach
a prompt, a PNG text chunk, the memory file or a terminal. `printable()` is for text that goes out
and may still hold them (an old memory file, a PNG written by another tool): each one is shown as a
visible escape instead of being sent to the terminal.
"""

from __future__ import annotations

import re
import unicodedata

from qia_cli.errors import UsageError

# Whole escape sequences first (CSI "ESC [ ... m", OSC "ESC ] ... BEL", and two-byte ones), so that
# "\x1b]0;title\x07" leaves nothing behind rather than "]0;title".
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, screen clears
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks, clipboard writes
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?"  # other ESC sequences, or a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]"  # the 8-bit CSI
)
# C0 and C1 controls except tab and newline (a carriage return is handled before this).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Zero-width and bidirectional format characters: invisible, and able to disguise text.
_INVISIBLE = re.compile(r"[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# Characters that render as blank space although Unicode does not call them whitespace.
_BLANKS = frozenset("\u115f\u1160\u2800\u3164\uffa0")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# Text that gives orders to the model instead of describing something: in search results, and in what is
# kept in memory (both are data that reaches a prompt).
INJECTION = re.compile(
    r"(ignore|disregard|forget|override)\b.{0,40}\b(instruction|prompt|rule|above|previous|everything)|"
    r"\b(system\s+prompt|you\s+are\s+now|you\s+must|new\s+instructions?|act\s+as|jailbreak|do\s+not\s+follow|"
    r"instead\s+(?:draw|generate|render|make)|assistant:|user:)|"
    # a role marker: "SYSTEM:" anywhere in capitals, "system:" / "developer:" opening the text or a sentence
    r"(?-i:\b(?:SYSTEM|DEVELOPER|ASSISTANT|USER)\s*:)|(?:^|[.!?>\]|]\s*)(?:system|developer)\s*:|"
    # orders about the prompt itself: "the prompt must be ...", "your output should ..."
    r"\b(?:the|your|this|final)\s+(?:image\s+)?(?:prompt|output|response)\s+"
    r"(?:must|should|shall|has\s+to|needs\s+to|is\s+to)\b|"
    # chat-template tokens
    r"\[/?inst\]|<\|?im_(?:start|end)\|?>|<</?sys>>|<\|(?:system|user|assistant|eot_id)\|>",
    re.IGNORECASE,
)


def has_surrogates(text: str) -> bool:
    """True for text decoded with surrogateescape from bytes that are not UTF-8 (argv, a C-locale stdin)."""
    return bool(_SURROGATE.search(text))


def injected(text: str) -> bool:
    """True when `text` reads like an instruction to the model (checked in NFKC: no full-width disguises)."""
    return bool(text) and bool(INJECTION.search(unicodedata.normalize("NFKC", text)))


def strip_escapes(text: str) -> str:
    """`text` without terminal escape sequences (the whole sequence, not only its ESC)."""
    return _ESCAPES.sub("", text) if "\x1b" in text or "\x9b" in text else text


def clean_model_text(text: str) -> str:
    """Text a model or a server wrote: escape sequences, control and invisible characters and lone
    surrogates removed (newlines and tabs stay). Never raises: a model's odd bytes are not the user's error."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ESCAPES.sub("", text)
    text = _CONTROLS.sub("", text)
    text = _SURROGATE.sub("", text)
    return _INVISIBLE.sub("", text)


def clean_input(text: str, *, what: str = "the text") -> str:
    """Text as typed, without escape sequences, control or invisible characters.

    Newlines and tabs stay (a multi-line request keeps its lines); CR LF and lone CRs become newlines.
    Bytes that were not UTF-8 raise a UsageError naming `what`.
    """
    if not text:
        return ""
    if has_surrogates(text):
        raise UsageError(f"{what} is not valid UTF-8", hint="save or pipe the text as UTF-8")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ESCAPES.sub("", text)
    text = _CONTROLS.sub("", text)
    return _INVISIBLE.sub("", text)


def visible(text: str) -> bool:
    """True when `text` has at least one character that shows (not space, control, format or blank)."""
    for ch in text:
        if ch in _BLANKS:
            continue
        if unicodedata.category(ch)[0] not in {"Z", "C"}:
            return True
    return False


def printable(text: str) -> str:
    """`text` safe for a terminal: controls and invisible characters become visible escapes (\\x1b, \\u202e)."""
    if not text:
        return ""

    def show(match: re.Match) -> str:
        ch = match.group(0)
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    text = text.replace("\r\n", "\n")
    return _UNPRINTABLE.sub(show, text)


_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]|" + _INVISIBLE.pattern)


def json_printable(document: str) -> str:
    """A JSON text (dumped with ensure_ascii=False) with control, invisible and surrogate characters
    written as \\uXXXX escapes: the same document to a parser, nothing raw for a terminal."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", document)
