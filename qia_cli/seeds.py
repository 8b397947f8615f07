"""Seeds: one range for every command (generate, batch, chat), and -1 for a random one."""

from __future__ import annotations

import random
import re

from qia_cli.errors import UsageError

# 32 bits: what other Stable Diffusion tools write and read back, and what fits every torch generator.
MAX_SEED = 2**32 - 1
RANDOM_SEED = -1  # `--seed -1`: a random seed (recorded like any other)
SEED_HELP = f"0 to {MAX_SEED}; -1 or none: random"


def check_seed(seed: int | None, count: int = 1, *, what: str = "--seed") -> int | None:
    """The seed to use, or None for a random one; UsageError when it (or seed+count-1) is out of range."""
    if seed is None or seed == RANDOM_SEED:
        return None
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"{what} {seed} is out of range", hint=f"use 0 to {MAX_SEED}, or -1 for a random seed")
    if seed + max(count, 1) - 1 > MAX_SEED:
        raise UsageError(
            f"{what} {seed} with {count} images goes past the largest seed, {MAX_SEED}",
            hint=f"use a seed of at most {MAX_SEED - count + 1}",
        )
    return seed


def parse_seed(text: str, *, what: str = "seed") -> int | None:
    """'7' -> 7, 'random' / '-1' / '' -> None; anything else is a UsageError."""
    text = text.strip()
    if text.lower() in {"", "random", "none", str(RANDOM_SEED)}:
        return None
    if not re.fullmatch(r"[+-]?[0-9]+", text):  # ASCII digits only: no '²', no '1e3'
        raise UsageError(f"{what} '{text}' is not a number", hint=f"use 0 to {MAX_SEED}, or random")
    return check_seed(int(text), what=what)  # a number out of range ('-5') says so


def random_seed(count: int = 1) -> int:
    """A random seed that leaves room for `count` consecutive seeds."""
    return random.randint(0, MAX_SEED - max(count, 64))
