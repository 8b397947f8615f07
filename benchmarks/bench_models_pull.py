"""`qia models pull` against the stand-in Hub of the tests (127.0.0.1): the issue's "done when", timed.

    python benchmarks/bench_models_pull.py

Serves the bundled GGUF as acme/tiny-planner-GGUF/tiny-planner.Q4_1.gguf, then runs real `qia` processes
with HF_ENDPOINT pointed at it and a fresh cache: pull, pull again (cached), pull again with
HF_HUB_OFFLINE=1, `models list --json`, `plan --llm SPEC` offline, and an offline pull of an uncached
model. Prints seconds and exit codes per step, then one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qia_cli.llm.bundled import require_bundled  # noqa: E402
from tests.hub_fixture import FakeHub, HubServer  # noqa: E402

SPEC = "acme/tiny-planner-GGUF/tiny-planner.Q4_1.gguf"


def qia(*args: str, env: dict) -> tuple[int, float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "qia_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    return proc.returncode, time.perf_counter() - start, proc.stdout


def main() -> None:
    hub = FakeHub()
    hub.add("acme/tiny-planner-GGUF", {"tiny-planner.Q4_1.gguf": require_bundled().read_bytes()})
    with tempfile.TemporaryDirectory(prefix="qia-pull-") as tmp, HubServer(hub) as url:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HF_ENDPOINT": url,
            "HF_HOME": f"{tmp}/hf",
            "HF_HUB_CACHE": f"{tmp}/hf/hub",
            "QIA_HOME": f"{tmp}/qia",
            "QIA_SEARCH": "off",
            "HF_HUB_OFFLINE": "",
        }
        offline = {**env, "HF_HUB_OFFLINE": "1"}
        steps = [
            ("pull", ("models", "pull", SPEC, "--json"), env),
            ("pull again", ("models", "pull", SPEC, "--json"), env),
            ("pull again, HF_HUB_OFFLINE=1", ("models", "pull", SPEC, "--json"), offline),
            ("models list --json", ("models", "list", "--json"), offline),
            (
                "plan --llm SPEC, offline",
                ("plan", "The fruit that keeps the doctor away", "--llm", SPEC, "--json", "--no-ask"),
                offline,
            ),
            ("pull uncached, offline", ("models", "pull", "qwen2.5-1.5b"), offline),
        ]
        results = {}
        for label, args, step_env in steps:
            rc, seconds, out = qia(*args, env=step_env)
            note = ""
            if label == "models list --json" and rc == 0:
                note = ", ".join(g["spec"] for g in json.loads(out)["pulled_llms"])
            if label.startswith("plan") and rc == 0:
                note = json.loads(out)["model"]["name"]
            results[label] = {"rc": rc, "seconds": round(seconds, 2)}
            print(f"{label:<32} rc={rc}  {seconds:6.2f} s  {note}")
        print(json.dumps({"bench": "models_pull", "steps": results}))


if __name__ == "__main__":
    main()
