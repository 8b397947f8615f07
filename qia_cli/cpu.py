"""What this CPU offers, read cheaply (no torch, no llama_cpp): instruction-set flags and core counts.

The llama.cpp backend uses it to avoid a crash on Intel AMX CPUs and to pick a thread count that
degrades gracefully when other work shares the machine.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16"})


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is not there (macOS, Windows)."""
    for line in _read(cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def has_amx(cpuinfo: Path = CPUINFO) -> bool:
    """Intel AMX (Sapphire Rapids and newer Xeons)."""
    return bool(AMX_FLAGS & flags(cpuinfo))


def physical_cores(cpuinfo: Path = CPUINFO) -> int:
    """Physical cores this process may use: logical CPUs less SMT siblings, within the affinity mask."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    text = _read(cpuinfo)
    cores: set[tuple[str, str]] = set()
    phys = core = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "physical id":
            phys = value
        elif key == "core id":
            core = value
        elif not key:
            if core is not None:
                cores.add((phys or "0", core))
            phys = core = None
    if core is not None:
        cores.add((phys or "0", core))
    total_logical = text.count("processor\t:") or text.count("processor :") or logical
    if cores and total_logical > len(cores):  # SMT: scale the affinity set by the sibling ratio
        return max(1, logical * len(cores) // total_logical)
    return max(1, logical)


@functools.lru_cache(maxsize=1)
def default_llm_threads() -> int:
    """Threads for a planner model: the physical cores, one left free for the rest of the machine (a render, a
    browser, a second qia) from three cores up, and at most 4, since more buy little for models this size.
    Two cores use both: a 1.5B planner's median knowledge plan took 6.8 s on one thread and 4.2 s on two of
    an idle 2-core machine (benchmarks/bench_plan.py), and the threads sleep when idle."""
    cores = physical_cores()
    return max(1, min(4, cores if cores <= 2 else cores - 1))
