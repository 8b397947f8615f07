"""Throughput of `qia batch` with Ray (1 and 2 workers) against a plain batch, on the tiny random-weight
pipeline (64x64, 2 steps) and the fake planner, on a local Ray instance. Prints lines per second in the
steady state (from the first record to the last, so start-up is reported on its own), the start-up time
(ray.init and the actors loading the pipeline), and the overhead Ray adds per line, measured twice:
with rendering, and with --plan-only (where a line is almost nothing but the round trip). Every process renders with one torch thread
(OMP_NUM_THREADS=1), so one Ray worker and the plain batch do the same work and 2 workers use 2 cores.

Run: nice -n 19 python benchmarks/bench_batch_ray.py [LINES]
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout


def timed_batch(lines, folder: Path, model: Path, *, plan_only: bool, workers: int | None) -> dict:
    """One batch into `folder`: total seconds, seconds to the first record, steady lines/s."""
    from qia_cli.agent.run import Agent, RenderOptions
    from qia_cli.batch.ray_runner import Cluster, RayOptions, RayRunner
    from qia_cli.batch.results import LineRecord, Results
    from qia_cli.batch.runner import BatchOptions, run_batch
    from qia_cli.config import Settings
    from qia_cli.llm.fake import FakeLLM

    agent = Agent(settings=Settings(llm="fake", search="off", image_model=str(model), device="cpu"), llm=FakeLLM())
    options = BatchOptions(render=RenderOptions(steps=2, outdir=folder), plan_only=plan_only, seed=1)
    stamps: list[float] = []
    seconds: list[float] = []

    def on_result(record: LineRecord) -> None:
        stamps.append(time.perf_counter())
        seconds.append(record.seconds)

    start = time.perf_counter()
    if workers is None:
        summary = run_batch(agent, lines, Results(folder), options, on_result=on_result)
    else:
        with Cluster("local") as cluster:
            runner = RayRunner(cluster, RayOptions(workers=workers))
            summary = run_batch(agent, lines, Results(folder), options, on_result=on_result, runner=runner)
    total = time.perf_counter() - start
    assert summary.ok == len(lines), summary
    steady = (
        (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else float("nan")
    )
    # the line's own work (plan + render + save, as its record says): the median, since each worker's
    # first line also loads the pipeline
    work_ms = 1000 * statistics.median(seconds)
    return {"total_s": total, "first_s": stamps[0] - start, "lines_per_s": steady, "work_ms": work_ms}


def main(n: int = 32) -> None:
    import ray
    import torch

    from qia_cli.batch.lines import Line
    from qia_cli.imaging.tiny import build_tiny_pipeline

    torch.set_num_threads(1)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="qia-bench-ray-") as tmp:
        root = Path(tmp)
        os.environ["QIA_HOME"] = str(root / "home")
        model = build_tiny_pipeline(root / "tiny-sd")
        lines = [Line(line=i, request=f"a red bicycle number {i}") for i in range(1, n + 1)]
        rows = []
        for plan_only in (False, True):
            what = "plan only" if plan_only else "render"
            rows.append(
                (
                    what,
                    "plain batch",
                    timed_batch(lines, root / f"plain-{plan_only}", model, plan_only=plan_only, workers=None),
                )
            )
            start = time.perf_counter()
            ray.init(
                address="local",
                num_cpus=2,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                object_store_memory=200 * 2**20,
                runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "QIA_HOME": str(root / "home")}},
            )
            init_s = time.perf_counter() - start
            try:
                for workers in (1, 2):
                    result = timed_batch(
                        lines, root / f"ray{workers}-{plan_only}", model, plan_only=plan_only, workers=workers
                    )
                    result["init_s"] = init_s
                    rows.append((what, f"ray, {workers} worker(s)", result))
            finally:
                ray.shutdown()

        print(
            f"{n} lines, tiny pipeline 64x64 x 2 steps, fake planner, 1 torch thread per process, "
            f"{os.cpu_count()} CPUs (ray.init(num_cpus=2)), load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'line':<10}{'runner':<20}{'lines/s':>9}{'ms/line':>9}{'work ms':>9}{'first record s':>16}"
            f"{'ray.init s':>12}"
        )
        plain, plain_work = {}, {}
        for what, runner, r in rows:
            ms = 1000 / r["lines_per_s"]
            if runner == "plain batch":
                plain[what], plain_work[what] = ms, r["work_ms"]
            init = f"{r['init_s']:.1f}" if "init_s" in r else "-"
            print(
                f"{what:<10}{runner:<20}{r['lines_per_s']:>9.1f}{ms:>9.1f}{r['work_ms']:>9.1f}{r['first_s']:>16.1f}"
                f"{init:>12}"
            )
        print("ms/line: steady wall time per line; work ms: the line's own plan+render+save (its record's seconds)")
        for what, runner, r in rows:
            if runner == "ray, 1 worker(s)":
                print(
                    f"{what}: 1 Ray worker vs plain: {1000 / r['lines_per_s'] - plain[what]:+.1f} ms per line of wall "
                    f"time; {1000 / r['lines_per_s'] - r['work_ms']:+.1f} ms per line outside the line's own work "
                    f"(plain: {plain[what] - plain_work[what]:+.1f} ms)"
                )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 32)
