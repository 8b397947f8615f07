"""Peak memory of `qia batch --plan-only` against the number of lines: the file and the records are streamed,
so the peak should not grow with the file. For 1k, 10k and 30k lines (or the counts given) it runs the real
command in a fresh process with the fake planner (`--llm fake --search off --no-memory`, so planning costs
almost nothing and only the batch machinery is measured), twice: the first run plans every line, the rerun
reads the full results.jsonl back and skips them all (resume). Prints the peak RSS of each process (from
wait4) and the seconds it took.

Run: nice -n 19 python benchmarks/bench_batch_memory.py [LINES ...] [--dir FOLDER]
(FOLDER: where the files go; a tmpfs such as /dev/shm keeps fsync out of the timings.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run `python -m qia_cli ARGS`; (its peak RSS in MB, seconds). Fails loudly on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qia_cli", "--quiet", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"qia {' '.join(args)} exited {proc.returncode}: {stderr}")
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KB on Linux
    return usage.ru_maxrss / scale, seconds


def main(counts: list[int], folder: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="qia-bench-batch-mem-", dir=folder) as tmp:
        root = Path(tmp)
        env = {
            **os.environ,
            "QIA_HOME": str(root / "home"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        print(f"qia batch --plan-only --llm fake, peak RSS of the process; files in {root.parent}")
        print(f"{'lines':>8}{'first run MB':>14}{'s':>8}{'rerun MB':>10}{'s':>8}{'results.jsonl MB':>18}")
        rows = []
        for n in counts:
            requests = root / f"requests-{n}.txt"
            requests.write_text("".join(f"a red bicycle number {i} leaning on a wall\n" for i in range(1, n + 1)))
            out = root / f"out-{n}"
            args = ["batch", str(requests), "--llm", "fake", "--search", "off", "--no-memory", "--plan-only"]
            args += ["--outdir", str(out), "--json"]
            first, first_s = peak_rss_mb(args, env)
            again, again_s = peak_rss_mb(args, env)
            size = (out / "results.jsonl").stat().st_size / 2**20
            rows.append((n, first, again))
            print(f"{n:>8}{first:>14.1f}{first_s:>8.1f}{again:>10.1f}{again_s:>8.1f}{size:>18.1f}")
        if len(rows) > 1:
            (n0, a0, b0), (n1, a1, b1) = rows[0], rows[-1]
            per_line = 1024 * max(a1 - a0, b1 - b0) / (n1 - n0)
            print(f"growth from {n0} to {n1} lines: {per_line:.2f} KB per line (the larger of the two runs)")


if __name__ == "__main__":
    argv = sys.argv[1:]
    where = None
    if "--dir" in argv:
        i = argv.index("--dir")
        where = argv[i + 1]
        del argv[i : i + 2]
    main([int(a) for a in argv] or [1000, 10000, 30000], where)
