"""Which stage of a plan is calling a model, for whoever records the calls (the call log).

The planner wraps each model call in `stage(...)`; a recorder reads `current()` when the call happens.
A context variable, so that parallel plans (threads, batch workers) each see their own stage.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Stage names, as the planner uses them.
GAPS = "gaps"  # the LLM proposes gaps (a JSON call)
KNOWLEDGE = "knowledge"  # a knowledge question: "What is the national flower of Japan?"
LOOK = "look"  # what a named thing looks like
SEARCH = "search"  # one fact extracted from search results
FEEDBACK = "feedback"  # the feedback loop's revision
BENCH = "bench"  # a benchmark baseline


@dataclass(frozen=True)
class Stage:
    name: str
    gap_id: str | None = None
    detail: str | None = None  # e.g. which asking of a question this is ("first", "again", "whole")


_current: contextvars.ContextVar[Stage | None] = contextvars.ContextVar("qia_call_stage", default=None)


@contextmanager
def stage(name: str, gap_id: str | None = None, detail: str | None = None) -> Iterator[Stage]:
    """Mark the model calls made inside the block as belonging to `name` (and a gap)."""
    value = Stage(name, gap_id, detail)
    token = _current.set(value)
    try:
        yield value
    finally:
        _current.reset(token)


def current() -> Stage | None:
    return _current.get()
