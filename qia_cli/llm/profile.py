"""A planner model's profile, read from its GGUF header (never a hand-kept table), and what follows from it.

- kind: `instruct` when the file carries a chat template (chat calls go through it), else `base`
  (a base model such as Gemma-3-270m only ever gets raw completion prompts);
- tier by parameter count: tiny (< 0.4B), small (< 1.2B), medium (< 5B), large;
- auto_ctx: the context window opened unless `llm_ctx` is set: the trained context, capped at 2048 tokens
  for tiny and small models (all the planner's prompts need) and 4096 from medium up (room for longer
  search results and chat templates);
- llm_gaps: whether `llm_gaps = auto` asks a GGUF for gaps: no model. Measured: on the bundled 135M no
  proposal survives validation (0.3-3 s a call); with a 1.5B on 2 CPU cores the JSON-schema call takes about
  20 s of a 29 s plan, and the rules alone already flag every underspecified item of the plan suite's dev and
  test halves, so the stage cannot earn its time there. `llm_gaps = on` still asks any model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from qia_cli.llm.gguf_meta import SkippedArray, read_header
from qia_cli.llm.types import ModelProfile

SMALL_CTX, LARGE_CTX = 2048, 4096
TIERS = ((0.4e9, "tiny"), (1.2e9, "small"), (5e9, "medium"))
LARGE_CTX_TIERS = frozenset({"medium", "large"})
GAPS_TIERS: frozenset[str] = frozenset()  # see llm_gaps above: auto asks no GGUF

# llama.cpp's llama_ftype (general.file_type) -> the name quantizers use in file names
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
}


def size_label(parameters: int | None) -> str | None:
    """135M, 1.5B, 7.6B: how model cards write a parameter count."""
    if not parameters:
        return None
    if parameters < 1e9:
        return f"{parameters / 1e6:.0f}M"
    value = parameters / 1e9
    return f"{value:.1f}B" if value < 10 else f"{value:.0f}B"


def tier(parameters: int | None) -> str | None:
    if not parameters:
        return None
    return next((name for limit, name in TIERS if parameters < limit), "large")


def _int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _text(value) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _parameters(meta: dict, counted: int) -> int | None:
    """The tensors' element count, else general.parameter_count, else the size label ("8x7B" counts 56B)."""
    if counted:
        return counted
    explicit = _int(meta.get("general.parameter_count"))
    if explicit:
        return explicit
    match = re.fullmatch(r"(?:(\d+)x)?(\d+(?:\.\d+)?)([MBK])", _text(meta.get("general.size_label")) or "")
    if not match:
        return None
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}[match.group(3)]
    return int(float(match.group(2)) * scale * int(match.group(1) or 1))


def profile_from_metadata(meta: dict, parameters: int = 0) -> ModelProfile:
    arch = _text(meta.get("general.architecture"))
    params = _parameters(meta, parameters)
    trained = _int(meta.get(f"{arch}.context_length")) if arch else None
    template = meta.get("tokenizer.chat_template")
    has_template = bool(_text(template)) if not isinstance(template, SkippedArray) else False
    level = tier(params)
    cap = LARGE_CTX if level in LARGE_CTX_TIERS else SMALL_CTX
    kind: Literal["instruct", "base"] = "instruct" if has_template else "base"
    return ModelProfile(
        architecture=arch,
        size_label=_text(meta.get("general.size_label")) or size_label(params),
        parameters=params,
        quantization=FILE_TYPES.get(meta.get("general.file_type")),  # type: ignore[arg-type]  # a missing key: None
        context_length=trained,
        chat_template=has_template,
        kind=kind,
        tier=level,  # type: ignore[arg-type]  # one of TIERS' names
        license=_text(meta.get("general.license")),
        auto_ctx=max(256, min(trained or cap, cap)),
        llm_gaps=kind == "instruct" and level in GAPS_TIERS,
    )


def read_profile(path: str | Path) -> ModelProfile:
    """The profile of the GGUF at `path` (header only: fast, and the weights stay on disk).

    Raises gguf_meta.GGUFError for a file that is not GGUF or whose header is broken.
    """
    header = read_header(path)
    return profile_from_metadata(header.metadata, header.parameters)


def describe(profile: ModelProfile | None) -> str:
    """One line for people: '135M llama Q4_1, instruct (chat template), trained for 8192 tokens'."""
    if profile is None:
        return "unknown (not a local GGUF)"
    head = " ".join(x for x in (profile.size_label, profile.architecture, profile.quantization) if x) or "?"
    kind = "instruct (chat template)" if profile.kind == "instruct" else "base (no chat template: raw completion)"
    ctx = f", trained for {profile.context_length} tokens" if profile.context_length else ""
    return f"{head}, {kind}{ctx}"
