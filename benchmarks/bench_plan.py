"""How long a plan takes, as a user gets it: `qia plan` on requests from the built-in suites' test halves.

    python benchmarks/bench_plan.py [--llm bundled|PATH.gguf] [--threads N] [--n 20] [--suites knowledge,everyday]

One Agent per run, as `qia chat` and `qia batch` keep one: the models load once (that load is timed apart),
then each request is planned (search off, nobody answers questions) and timed. Prints the median, p90 and
max per suite and one JSON line. A fresh process per run keeps llama.cpp's state from an earlier run out.
Run it on an idle machine: the target is a median plan of at most 2 s with the bundled models and 6 s with a
1.5B planner on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="bundled")
    parser.add_argument("--threads", type=int, default=None, help="llm_threads (default: qia's own choice)")
    parser.add_argument("--n", type=int, default=20, help="requests per suite (the first N of its test half)")
    parser.add_argument("--suites", default="knowledge,everyday")
    args = parser.parse_args()

    os.environ["QIA_HOME"] = tempfile.mkdtemp(prefix="qia-bench-plan-")
    from qia_cli.agent.planner import PlanOptions
    from qia_cli.agent.run import Agent
    from qia_cli.bench.suite import load_builtin
    from qia_cli.config import load_settings

    overrides: dict = {"llm": args.llm, "search": "off"}
    if args.threads:
        overrides["llm_threads"] = args.threads
    agent = Agent(settings=load_settings(overrides).settings)
    start = time.perf_counter()
    agent.plan("the national flower of Japan", PlanOptions())  # loads both models
    load = time.perf_counter() - start
    result: dict = {"llm": args.llm, "threads": args.threads, "load_and_first_plan_s": round(load, 2), "suites": {}}
    for name in args.suites.split(","):
        items = load_builtin(name, "test").items[: args.n]
        times = []
        for item in items:
            start = time.perf_counter()
            agent.plan(item.request, PlanOptions())
            times.append(time.perf_counter() - start)
        ordered = sorted(times)
        result["suites"][name] = {
            "n": len(times),
            "median_s": round(statistics.median(times), 3),
            "p90_s": round(ordered[max(0, int(len(ordered) * 0.9) - 1)], 3),
            "max_s": round(ordered[-1], 3),
        }
        print(f"{name:10} n={len(times):3}  median {statistics.median(times):6.2f} s  max {ordered[-1]:6.2f} s")
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
