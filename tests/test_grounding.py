"""Grounding is pure: each mechanism returns evidence and the gap changes it proposes, and changes no gap;
the planner applies the changes in one step."""

import json

from qia_cli.agent import grounding, rules
from qia_cli.agent.grounding import GapChange, clarify
from qia_cli.agent.grounding.memory import ground_memory
from qia_cli.agent.grounding.search import ground_search
from qia_cli.agent.planner import Planner
from qia_cli.llm.fake import FakeLLM
from qia_cli.memory.store import MemoryStore
from qia_cli.search.fixture import FixtureBackend


def snapshot(gaps):
    return [g.model_dump() for g in gaps]


def test_memory_proposes_recall_for_the_pet_it_knows_and_changes_no_gap(tmp_path):
    store = MemoryStore(tmp_path / "m.json")
    store.add("Biscuit is my dog, a three-legged corgi")
    store.add("I prefer watercolour illustrations")
    gaps = rules.analyze("my dog at the beach").gaps
    before = snapshot(gaps)
    found = ground_memory(store, "my dog at the beach", gaps)
    assert snapshot(gaps) == before
    personal = next(g for g in gaps if g.kind == "personal")
    style = next(g for g in gaps if g.kind == "style")
    assert GapChange(personal.id, action="recall") in found.changes
    assert GapChange(style.id, action="recall") in found.changes
    assert "Biscuit, a three-legged corgi" in [e.content for e in found.evidence]


def test_answers_and_assumptions_propose_fills_and_change_no_gap():
    request = "a birthday card for my sister"
    gaps = rules.analyze(request).gaps
    questions = clarify.build_questions(gaps, request)
    before = snapshot(gaps)
    answered = clarify.apply_answers(questions, {questions[0].id: "Ana, short black hair"})
    assert snapshot(gaps) == before
    assert answered.changes == [GapChange(questions[0].gap_id)]
    assumed = clarify.assume_rest(gaps, questions, request, "card")
    assert snapshot(gaps) == before
    assert {c.gap_id for c in assumed.changes} == {g.id for g in gaps if g.kind != "knowledge"}
    assert all(c.action == "assume" for c in assumed.changes)


def test_search_proposes_a_fill_for_the_gap_it_found_a_fact_for(tmp_path):
    path = tmp_path / "fixture.json"
    fact = "Acme's new headquarters is a glass tower shaped like a sail in Lisbon."
    results = [{"title": "Acme opens HQ", "href": "https://news.example/acme", "body": fact}]
    path.write_text(json.dumps([{"query": "new headquarters acme", "results": results}]))
    gaps = rules.analyze("the new headquarters of Acme").gaps
    before = snapshot(gaps)
    found = ground_search(FixtureBackend(path), FakeLLM(), gaps, deadline_s=5, ttl=0)
    assert snapshot(gaps) == before
    time_gap = next(g for g in gaps if g.action == "search")
    assert found.changes == [GapChange(time_gap.id)]
    assert found.evidence[0].detail == "https://news.example/acme"


def test_a_change_fills_a_gap_and_never_unfills_one():
    gaps = rules.analyze("my cat on a sofa, oil painting").gaps
    personal = next(g for g in gaps if g.kind == "personal")
    grounding.apply(gaps, [GapChange(personal.id, action="recall"), GapChange("g99")])
    assert personal.filled and personal.action == "recall"
    grounding.apply(gaps, [GapChange(personal.id, fill=False, action="ask")])
    assert personal.filled and personal.action == "ask"


def test_the_planner_applies_what_memory_proposed(tmp_path):
    store = MemoryStore(tmp_path / "m.json")
    store.add("Biscuit is my dog, a three-legged corgi")
    plan = Planner(FakeLLM(), memory=store).plan("my dog at the beach")
    personal = next(g for g in plan.gaps if g.kind == "personal")
    assert personal.filled and personal.action == "recall"
    assert not plan.questions
