"""Recall and write speed with a big memory: 10,000 entries (the most `qia memory` accepts).

    python benchmarks/bench_memory_recall.py [N]

Prints the load time of the file (parse + validate + index), the median recall time, and what one
write costs (`memory add`, and the session record every plan and generate appends): every command
pays a load, most pay a write. tests/test_bench_memory.py runs the load and recall under pytest-benchmark.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qia_cli.memory.recall import Index  # noqa: E402
from qia_cli.memory.store import Document, MemoryStore  # noqa: E402

REQUESTS = [
    "a poster for Biscuit's birthday",
    "my dog on the beach",
    "a mountain lake at dawn",
    "our logo on a coffee mug, flat vector",
    "Nadia and Teodor hiking in the alps",
]


def make_document(n: int = 10_000, seed: int = 7) -> dict:
    """n entries: synthetic people/places/facts/preferences, plus the Biscuit entries to find."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ra", "to", "ne", "vi", "su", "de", "ba", "zo", "fi", "ge", "hu"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(3000)]
    common = "house garden city river blue green red old small large park trip summer winter book car".split()
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    entries = []
    for i in range(n - 3):
        kind = rng.choices(["fact", "entity", "preference"], [6, 3, 1])[0]
        name = rng.choice(words).capitalize() + str(i)
        body = " ".join(rng.choice(words + common * 20) for _ in range(rng.randint(4, 12)))
        if kind == "preference":
            text, names = f"I prefer {body}", []
        elif kind == "entity":
            text, names = f"{name} is my {rng.choice(['friend', 'cousin', 'colleague'])}, {body}", [name]
        else:
            text, names = f"{name} {body}", [name]
        created = (start + timedelta(minutes=i)).isoformat()
        entries.append({"id": f"m{i:06x}", "kind": kind, "text": text, "names": names, "created": created, "uses": 0})
    entries += [
        {
            "id": "mb15c01",
            "kind": "entity",
            "text": "Biscuit is my dog, a three-legged corgi",
            "names": ["Biscuit", "my dog"],
        },
        {"id": "mb15c02", "kind": "fact", "text": "Biscuit loves chasing tennis balls", "names": ["Biscuit"]},
        {"id": "m10g000", "kind": "entity", "text": "Our logo is a blue fox on a white circle", "names": ["our logo"]},
    ]
    for e in entries[-3:]:
        e.update(created=start.isoformat(), uses=0)
    return {"schema_version": 1, "entries": entries, "sessions": []}


def write_memory(path: Path, n: int = 10_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(make_document(n)))
    path.chmod(0o600)
    return path


def load(path: Path) -> MemoryStore:
    store = MemoryStore(path)
    store.index()  # parse, validate and index
    return store


def main(n: int = 10_000, rounds: int = 200) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_memory(Path(tmp) / "memory.json", n)
        size = path.stat().st_size
        loads = []
        for _ in range(5):
            t = time.perf_counter()
            store = load(path)
            loads.append((time.perf_counter() - t) * 1000)
        print(f"entries: {n}   file: {size / 1e6:.1f} MB")
        print(f"load (parse + validate + index): median {statistics.median(loads):.1f} ms, min {min(loads):.1f} ms")
        parse, validate, index = [], [], []
        for _ in range(5):
            t0 = time.perf_counter()
            data = json.loads(path.read_bytes())
            t1 = time.perf_counter()
            doc = Document.model_validate(data)
            t2 = time.perf_counter()
            Index(doc.entries)
            t3 = time.perf_counter()
            parse.append(t1 - t0), validate.append(t2 - t1), index.append(t3 - t2)
        print(
            "  of which (min ms): json {:.1f}, validate {:.1f}, index {:.1f}".format(
                *(1000 * min(x) for x in (parse, validate, index))
            )
        )
        adds, records = [], []
        for i in range(5):
            t = time.perf_counter()
            MemoryStore(path).add(f"Zephyrine{i} is my neighbour's cat")
            adds.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            MemoryStore(path).add_session({"request": f"a cat {i}", "prompt": "a cat", "kind": "plan"})
            records.append((time.perf_counter() - t) * 1000)
        print(
            f"memory add (load + write + backup): median {statistics.median(adds):.1f} ms; "
            f"session record: median {statistics.median(records):.1f} ms"
        )
        for request in REQUESTS:
            times = []
            for _ in range(rounds):
                t = time.perf_counter()
                result = store.recall(request)
                times.append((time.perf_counter() - t) * 1000)
            found = len(result.entities) + len(result.facts)
            print(
                f"recall {request!r}: median {statistics.median(times):.3f} ms  (entities+facts {found}, prefs {len(result.preferences)})"
            )


if __name__ == "__main__":
    import qia_cli.memory.store as store_module

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    store_module.MAX_ENTRIES = max(store_module.MAX_ENTRIES, n + 10)  # to measure past the limit too
    main(n)
