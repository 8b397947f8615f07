"""Planner latency with the bundled GGUF: thread count and OpenMP wait policy, alone and beside a busy process.

    python benchmarks/bench_llm_threads.py [--runs 3] [--threads 1,2] [--prompt "..."]

Each configuration runs in a fresh process (the wait policy is read when llama.cpp's libgomp loads), loads
the model, plans once to warm up, then times `--runs` plans of a prompt that asks the LLM. "busy" runs the
same beside one process that spins on a core, as a render, a browser or a second qia would. Prints a table
and one JSON line per configuration.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time
from qia_cli.agent.planner import Planner, PlanOptions
from qia_cli.llm.bundled import bundled_path
from qia_cli.llm.llama import LlamaLLM
threads, runs, prompt, repack = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
llm = LlamaLLM(bundled_path(), n_threads=threads, repack=repack)
planner = Planner(llm)
planner.plan(prompt, PlanOptions(llm_gaps=False))
times = []
for _ in range(runs):
    start = time.perf_counter()
    planner.plan(prompt, PlanOptions(llm_gaps=False))
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def spin() -> None:
    while True:
        pass


def run(threads: int, runs: int, prompt: str, wait: str, busy: bool) -> list[float]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if wait != "qia":  # 'qia' = what qia sets by itself (passive unless the user chose)
        env["OMP_WAIT_POLICY"] = wait
    spinner = None
    if busy:
        spinner = multiprocessing.Process(target=spin, daemon=True)
        spinner.start()
        time.sleep(0.5)
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(threads), str(runs), prompt, "auto"],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
    finally:
        if spinner is not None:
            spinner.terminate()
            spinner.join()
    if out.returncode != 0:
        raise SystemExit(f"child failed ({out.returncode}): {out.stderr[-1500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 2}")
    parser.add_argument("--waits", default="qia,ACTIVE", help="qia (passive by default), ACTIVE, PASSIVE")
    parser.add_argument("--prompt", default="the national flower of Japan")
    args = parser.parse_args()
    rows = []
    for wait in args.waits.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            alone = statistics.median(run(threads, args.runs, args.prompt, wait, busy=False))
            busy = statistics.median(run(threads, args.runs, args.prompt, wait, busy=True))
            row = {
                "wait": wait,
                "threads": threads,
                "alone_s": round(alone, 3),
                "busy_s": round(busy, 3),
                "slowdown": round(busy / alone, 2),
                "cpus": os.cpu_count(),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'wait':<8}{'threads':>8}{'alone s':>10}{'busy s':>10}{'busy/alone':>12}")
    for r in rows:
        print(f"{r['wait']:<8}{r['threads']:>8}{r['alone_s']:>10.3f}{r['busy_s']:>10.3f}{r['slowdown']:>12.2f}")


if __name__ == "__main__":
    main()
