"""Which answers become memories, and when: the policy, without a user interface.

An answer is worth keeping when it says what a lasting personal thing is (a person, a pet, our
cabin): the question was about a `personal` gap with the words it concerns. The CLI supplies the
yes/no question for the `ask` mode; with nobody to ask, nothing is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qia_cli.agent.types import Plan
from qia_cli.textsafe import injected


def remember_mode(setting: str, flag: bool | None) -> str:
    """--remember (always) and --no-remember (never) win over the `remember` setting (ask|always|never)."""
    if flag is True:
        return "always"
    if flag is False:
        return "never"
    return setting


def lasting_answers(plan: Plan) -> list[tuple[str, str]]:
    """(fact, name) for every answered question about a personal gap: ("my cat: Mo, a grey tabby", "my cat")."""
    found = []
    for q in plan.questions:
        gap = plan.gap(q.gap_id)
        if q.status != "answered" or gap is None or gap.kind != "personal" or not gap.span:
            continue
        if injected(q.answer or ""):  # an answer that gives orders is used for this plan, never kept
            continue
        found.append((f"{gap.span}: {q.answer}", gap.span))
    return found


def learn_from_answers(plan: Plan, memory: Any, mode: str, confirm: Callable[[str], bool] | None = None) -> list[str]:
    """Save the plan's lasting answers to `memory` (a MemoryStore) as `mode` says; the ids saved.

    `ask`: each fact is saved when `confirm(fact)` says yes; without `confirm` (no terminal, --json) none is."""
    if memory is None or mode == "never":
        return []
    saved = []
    for fact, name in lasting_answers(plan):
        if mode == "ask" and (confirm is None or not confirm(fact)):
            continue
        saved.append(memory.add(fact, kind="entity", names=[name]).id)
    return saved
