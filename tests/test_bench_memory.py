"""Recall over 10,000 entries under pytest-benchmark (disabled by default: it runs once as a test).

pytest tests/test_bench_memory.py --benchmark-enable    # to time it
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_memory_recall.py"
spec = importlib.util.spec_from_file_location("bench_memory_recall", BENCH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def big_memory(tmp_path_factory):
    return bench.write_memory(tmp_path_factory.mktemp("mem") / "memory.json", 10_000)


def test_load_10k(benchmark, big_memory):
    store = benchmark(bench.load, big_memory)
    assert len(store.list()) == 10_000


def test_recall_10k(benchmark, big_memory):
    store = bench.load(big_memory)
    result = benchmark(store.recall, "a poster for Biscuit's birthday")
    assert [e.id for e in result.entities] == ["mb15c01"]
    assert [e.id for e in result.facts] == ["mb15c02"]
    assert len(result.preferences) == 8  # capped at the limit, newest first

    dog = store.recall("my dog on the beach")
    assert [e.id for e in dog.entities] == ["mb15c01"] and "mb15c02" in [e.id for e in dog.facts]
    lake = store.recall("a mountain lake at dawn")
    assert lake.entities == [] and lake.facts == []
