"""How `--help` shows qia's commands, applied once to the whole command tree before it is parsed.

- Help texts are plain text, never Rich markup: `pip install "qia-cli[ray]"` and `openai:BASE_URL[#MODEL]`
  keep their brackets (Typer's rich mode would read `[ray]` as a style and drop it).
- A value label only where it says something: none on flags (Typer writes `<bool>` on every one), `N` for
  numbers, `PATH` for paths, `TEXT` for other text unless the option names its own (`WxH`, `I/N`);
  arguments go by their name in capitals (`FILE`, `PROMPT`), with no type after it.
"""

from __future__ import annotations

from typing import Any

_DONE = "_qia_help_tidied"


def _escape(text: str | None) -> str | None:
    if not text:
        return text
    from rich.markup import escape

    return escape(text)


def _label(param: Any) -> str:
    """The value label of an option that has none of its own."""
    desc = param.type_descriptor
    if getattr(param, "is_flag", False) or desc.annotation is bool:
        return ""
    if desc.is_path:
        return "PATH"
    if desc.annotation in (int, float) or desc.is_ranged:
        return "N"
    return "TEXT"


def _tidy_param(param: Any) -> None:
    param.help = _escape(param.help)
    if param.param_type_name == "argument":
        if param.metavar is None:
            param.metavar = param.name.upper()
        param.display_type_rich = lambda ctx: None  # the name says it; `<str>` after it says nothing
    elif param.metavar is None and not param.type_descriptor.is_choice:
        param.metavar = _label(param)


def tidy(command: Any, ctx: Any) -> None:
    """Escape the help texts and set the value labels of `command` and everything under it (once)."""
    if getattr(command, _DONE, False):
        return
    setattr(command, _DONE, True)
    for attr in ("help", "short_help", "epilog"):
        setattr(command, attr, _escape(getattr(command, attr, None)))
    for param in command.params:
        _tidy_param(param)
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        help_option.help = _escape(help_option.help)
        help_option.metavar = ""
    for name, sub in (getattr(command, "commands", None) or {}).items():
        tidy(sub, type(ctx)(sub, parent=ctx, info_name=name))
