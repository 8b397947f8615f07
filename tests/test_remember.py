"""Which answers become memories (qia_cli/agent/remember.py): the policy, without a terminal."""

from __future__ import annotations

from qia_cli.agent.remember import lasting_answers, learn_from_answers, remember_mode
from qia_cli.agent.types import Gap, Plan, Question
from qia_cli.memory.store import MemoryStore


def plan() -> Plan:
    return Plan(
        request="my cat asleep on a poster",
        prompt="x",
        gaps=[
            Gap(id="g1", kind="personal", description="who the cat is", action="ask", span="my cat"),
            Gap(id="g2", kind="purpose", description="the poster text", action="ask", span="poster"),
            Gap(id="g3", kind="personal", description="no words", action="ask"),
        ],
        questions=[
            Question(id="q1", gap_id="g1", text="What is your cat like?", answer="Mo, a grey tabby", status="answered"),
            Question(id="q2", gap_id="g2", text="What does it say?", answer="Sleep well", status="answered"),
            Question(id="q3", gap_id="g3", text="Who?", answer="Ana", status="answered"),
            Question(id="q4", gap_id="g1", text="Again?", status="skipped"),
        ],
    )


def test_only_answered_personal_gaps_with_words_are_lasting():
    assert lasting_answers(plan()) == [("my cat: Mo, a grey tabby", "my cat")]


def test_flags_win_over_the_setting():
    assert [remember_mode("ask", f) for f in (True, False, None)] == ["always", "never", "ask"]
    assert remember_mode("always", None) == "always"


def test_modes():
    store = MemoryStore()
    assert learn_from_answers(plan(), store, "never") == []
    assert learn_from_answers(plan(), store, "ask") == []  # nobody to ask: nothing saved
    asked: list[str] = []
    assert learn_from_answers(plan(), store, "ask", lambda fact: asked.append(fact) or False) == []
    assert asked == ["my cat: Mo, a grey tabby"] and store.list() == []
    (saved,) = learn_from_answers(plan(), store, "always")
    entry = store.list()[0]
    assert entry.id == saved and entry.kind == "entity" and entry.names == ["my cat"]
    assert learn_from_answers(plan(), None, "always") == []
