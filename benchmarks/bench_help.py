"""Start-up cost of `qia --help` against a bare Typer app with ten commands (the target is at most 1.3x).

    python benchmarks/bench_help.py [N]

Each command runs N times (default 21) as a fresh process, the two alternating so that a busy machine
slows both alike; prints the median wall time of each and their ratio. `qia --help` is run as
`python -m qia_cli --help` from this checkout, and through the `qia` script when it sits next to this
Python (what users run: it adds the entry-point look-up).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE = '''
import typer

app = typer.Typer(help="A bare Typer app with ten commands.")

for i in range(10):
    def command(name: str = typer.Argument("x", help="A name."), count: int = typer.Option(1, help="How many.")) -> None:
        """One of ten commands."""
        print(name, count)

    app.command(f"command{i}")(command)

app()
'''


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main(n: int = 21) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "NO_COLOR": "1"}
    # Users run qia from bytecode that pip (or the first run) wrote; a shell with PYTHONDONTWRITEBYTECODE would
    # compile every qia module on every run and measure the compiler instead (about 1.5x against 1.2x here).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="qia-bench-help-") as tmp:
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE, encoding="utf-8")
        commands = {
            "bare Typer app (10 commands)": [sys.executable, str(bare), "--help"],
            "python -m qia_cli --help": [sys.executable, "-m", "qia_cli", "--help"],
        }
        script = Path(sys.executable).with_name("qia")
        if script.is_file():
            commands["qia --help (entry point)"] = [str(script), "--help"]
        for cmd in commands.values():  # warm the file cache and the bytecode, not measured
            wall(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(n):
            for name, cmd in commands.items():
                times[name].append(wall(cmd, env))
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians["bare Typer app (10 commands)"]
    print(f"median of {n} runs each ({Path(sys.executable).name} {sys.version.split()[0]})")
    for name, median in medians.items():
        print(f"  {name:<30} {median * 1000:7.1f} ms   {median / base:.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 21)
