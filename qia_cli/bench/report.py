"""The report of a run: scores per capability and system, plan detection, latency and tokens,
and where the numbers came from (model file and hash, seed, machine, qia version)."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from qia_cli.bench.runner import SYSTEMS

CAPABILITIES = ("plan", "reason", "search", "memory")


def sha256_12(path: str | Path | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def machine() -> dict:
    """CPU count, platform, and a GPU name where one is cheap to find (no torch import)."""
    gpu = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    elif shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=3)
            gpu = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            gpu = None
    elif sys.platform == "darwin" and platform.machine() == "arm64":
        gpu = "Apple silicon (MPS)"
    return {"cpus": os.cpu_count(), "platform": f"{platform.system()} {platform.machine()}",
            "python": platform.python_version(), "gpu": gpu}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def scores(rows: list[dict]) -> dict:
    out: dict = {}
    for cap in CAPABILITIES:
        mine = [r for r in rows if r["capability"] == cap]
        if not mine:
            continue
        out[cap] = {}
        for system in SYSTEMS:
            statuses = [r[system]["status"] for r in mine]
            passed, skipped = statuses.count("pass"), statuses.count("skipped")
            scored = len(statuses) - skipped
            out[cap][system] = {"score": round(passed / scored, 4) if scored else None, "passed": passed,
                                "scored": scored, "skipped": skipped}
    return out


def detection(rows: list[dict]) -> dict | None:
    """Precision and recall of flagging `underspecified` plan items, per system."""
    mine = [r for r in rows if r["capability"] == "plan"]
    if not mine:
        return None
    out = {}
    for system in SYSTEMS:
        tp = fp = fn = 0
        for r in mine:
            flagged, under = bool(r[system].get("flagged")), r.get("label") == "underspecified"
            tp += flagged and under
            fp += flagged and not under
            fn += under and not flagged
        out[system] = {"precision": round(tp / (tp + fp), 4) if tp + fp else None,
                       "recall": round(tp / (tp + fn), 4) if tp + fn else None}
    return out


def latency(rows: list[dict]) -> dict:
    """Median and p90 seconds per planner stage (from each plan's timings), and for the enhancer."""
    stages: dict[str, list[float]] = {}
    for r in rows:
        for stage, seconds in r.get("timings", {}).items():
            stages.setdefault(stage, []).append(seconds)
        stages.setdefault("enhance", []).append(r["enhance"]["seconds"])
    return {stage: {"median": round(statistics.median(v), 4), "p90": round(percentile(v, 90), 4), "n": len(v)}
            for stage, v in stages.items()}


def tokens(rows: list[dict]) -> dict:
    out = {}
    for system in ("agent", "enhance"):
        total = sum(r[system]["tokens"] for r in rows)
        out[system] = {"total": total, "per_item": round(total / len(rows), 2) if rows else 0.0}
    return out


def build(rows: list[dict], *, suites: list[str], model: dict, seed: int | None, limit: int | None,
          settings: dict, version: str) -> dict:
    return {
        "qia_version": version,
        "model": model,
        "settings": settings,
        "seed": seed,
        "limit": limit,
        "machine": machine(),
        "suites": suites,
        "items": len(rows),
        "errors": sum(1 for r in rows if "error" in r),
        "scores": scores(rows),
        "plan_detection": detection(rows),
        "latency": latency(rows),
        "tokens": tokens(rows),
        "results": rows,
    }


def _cell(entry: dict) -> str:
    if entry["score"] is None:
        return "–"
    return f"{entry['score']:.2f} [dim]({entry['passed']}/{entry['scored']})[/dim]"


def render(report: dict, console) -> None:
    from rich.table import Table

    table = Table(title="Context acquired (share of items passed)", title_justify="left")
    table.add_column("capability")
    for system in SYSTEMS:
        table.add_column(system, justify="right")
    table.add_column("skipped", justify="right", style="dim")
    for cap, by_system in report["scores"].items():
        table.add_row(cap, *(_cell(by_system[s]) for s in SYSTEMS), str(by_system["agent"]["skipped"]))
    console.print(table)

    det = report.get("plan_detection")
    if det:
        def fmt(v):
            return "–" if v is None else f"{v:.2f}"
        console.print("underspecified detection: " + "; ".join(
            f"{s} precision {fmt(det[s]['precision'])} recall {fmt(det[s]['recall'])}" for s in SYSTEMS))

    lat = Table(title="Latency per stage (seconds)", title_justify="left")
    for col in ("stage", "median", "p90", "n"):
        lat.add_column(col, justify="left" if col == "stage" else "right")
    for stage, v in report["latency"].items():
        lat.add_row(stage, f"{v['median']:.3f}", f"{v['p90']:.3f}", str(v["n"]))
    console.print(lat)

    tok = report["tokens"]
    console.print(f"tokens generated: agent {tok['agent']['total']} ({tok['agent']['per_item']}/item), "
                  f"enhance {tok['enhance']['total']} ({tok['enhance']['per_item']}/item)")
    m, mach = report["model"], report["machine"]
    console.print(
        f"[dim]model {m.get('file') or m.get('name')} sha256:{m.get('sha256') or '–'} · seed {report['seed']} · "
        f"{mach['cpus']} CPUs, GPU {mach['gpu'] or 'none'} · qia {report['qia_version']} · {report['items']} items"
        + (f" · {report['errors']} errors" if report["errors"] else "") + "[/dim]",
        markup=True, highlight=False,
    )
