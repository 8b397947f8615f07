"""The report of a run: scores per capability and system, plan detection, harm on ordinary requests
next to reason recall, latency and tokens, and where the numbers came from (model file and hash, split,
sample seed, machine, qia version)."""

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

CAPABILITIES = ("plan", "reason", "search", "memory", "ordinary")
HARMS = ("dropped", "new_subject", "head")


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
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=3
            )
            gpu = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            gpu = None
    elif sys.platform == "darwin" and platform.machine() == "arm64":
        gpu = "Apple silicon (MPS)"
    return {
        "cpus": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "gpu": gpu,
    }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def systems(rows: list[dict]) -> list[str]:
    """The systems that ran (agent and raw always; enhance and single unless --no-baselines)."""
    return [s for s in SYSTEMS if rows and all(s in r for r in rows)] or ["agent", "raw"]


def scores(rows: list[dict]) -> dict:
    out: dict = {}
    for cap in CAPABILITIES:
        mine = [r for r in rows if r["capability"] == cap]
        if not mine:
            continue
        out[cap] = {}
        for system in systems(rows):
            statuses = [r[system]["status"] for r in mine]
            passed, skipped = statuses.count("pass"), statuses.count("skipped")
            scored = len(statuses) - skipped
            out[cap][system] = {
                "score": round(passed / scored, 4) if scored else None,
                "passed": passed,
                "scored": scored,
                "skipped": skipped,
            }
    return out


def detection(rows: list[dict]) -> dict | None:
    """Precision and recall of flagging `underspecified` plan items, per system."""
    mine = [r for r in rows if r["capability"] == "plan"]
    if not mine:
        return None
    out = {}
    for system in systems(rows):
        tp = fp = fn = 0
        for r in mine:
            flagged, under = bool(r[system].get("flagged")), r.get("label") == "underspecified"
            tp += flagged and under
            fp += flagged and not under
            fn += under and not flagged
        out[system] = {
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        }
    return out


def harm(rows: list[dict]) -> dict | None:
    """On ordinary items, per system: the share of items harmed and how often each harm happened
    (an item can show several). An agent error counts as harm, in `errors`."""
    mine = [r for r in rows if r["capability"] == "ordinary"]
    if not mine:
        return None
    out = {}
    for system in systems(rows):
        results = [r[system] for r in mine]
        harmed = sum(1 for x in results if x["status"] == "fail")
        out[system] = {
            "rate": round(harmed / len(results), 4),
            "harmed": harmed,
            "items": len(results),
            "dropped": sum(1 for x in results if x.get("dropped")),
            "new_subject": sum(1 for x in results if x.get("new_subject")),
            "memory": sum(1 for x in results if x.get("memory")),
            "phantom_text": sum(1 for x in results if x.get("phantom_text")),
            "notes": sum(1 for x in results if x.get("notes")),
            "head": sum(1 for x in results if x.get("head_changed")),
            "errors": sum(1 for r in mine if system == "agent" and "error" in r),
        }
    return out


def by_suite(rows: list[dict], capability: str, table) -> dict:
    """`table` (scores or harm) for each suite of `capability` on its own: "≤ 1% harm on every ordinary
    suite" is a claim about each suite."""
    names = list(dict.fromkeys(r["suite"] for r in rows if r["capability"] == capability))
    return {name: table([r for r in rows if r["suite"] == name]) for name in names}


def reason_outcomes(rows: list[dict]) -> dict | None:
    """What the agent's reasoning did on knowledge items: a right or a wrong name in the prompt, a name
    found but withheld (right or wrong), or none. A wrong name is harm too."""
    mine = [r["agent"].get("outcome") for r in rows if r["capability"] == "reason"]
    mine = [o for o in mine if o]
    if not mine:
        return None
    keys = ("right", "wrong", "withheld-right", "withheld-wrong", "none")
    return {k: mine.count(k) for k in keys}


def memory_use(rows: list[dict]) -> dict | None:
    """On memory items: how many leaked an entry the request never referred to, and how many recalled
    everything they referred to."""
    mine = [r for r in rows if r["capability"] == "memory" and r["agent"]["status"] != "skipped"]
    if not mine:
        return None
    leaks = [r for r in mine if r["agent"].get("leaked")]
    expecting = [r for r in mine if r["agent"].get("missing") is not None and _expects(r)]
    recalled = [r for r in expecting if not r["agent"].get("missing") and not r["agent"].get("leaked")]
    return {"items": len(mine), "leaks": len(leaks), "expect": len(expecting), "recalled": len(recalled)}


def _expects(row: dict) -> bool:
    return bool(row.get("expects"))


def summary(score_table: dict, harms: dict | None, rows: list[dict] | None = None) -> dict:
    """Reason recall (agent, and the single-call baseline it must beat) next to ordinary harm, and what
    reasoning and memory did."""
    out: dict = {}
    if "reason" in score_table:
        out["reason_recall"] = {s: v["score"] for s, v in score_table["reason"].items()}
    if harms:
        out["ordinary_harm"] = harms["agent"]
    if rows:
        outcomes, memory = reason_outcomes(rows), memory_use(rows)
        if outcomes:
            out["reason_outcomes"] = outcomes
        if memory:
            out["memory"] = memory
    return out


def summary_line(report: dict) -> str | None:
    """'reason recall 0.56 (single-call 0.50) · ordinary harm 3.8% (3/80: dropped 1, new subject 2, head 0)'."""
    parts = []
    summ = report.get("summary") or {}
    recall = summ.get("reason_recall")
    if recall:

        def fmt(v):
            return "–" if v is None else f"{v:.2f}"

        single = f"single-call {fmt(recall['single'])}" if "single" in recall else "single-call not run"
        parts.append(f"reason recall {fmt(recall.get('agent'))} ({single})")
    h = summ.get("ordinary_harm")
    if h:
        parts.append(f"ordinary harm {h['rate']:.1%} ({h['harmed']}/{h['items']}: {_harm_kinds(h)})")
    o = summ.get("reason_outcomes")
    if o:
        parts.append(
            f"names: {o['right']} right, {o['wrong']} wrong, {o['withheld-right'] + o['withheld-wrong']} withheld "
            f"({o['withheld-right']} of them right)"
        )
    m = summ.get("memory")
    if m:
        parts.append(f"memory: {m['leaks']}/{m['items']} leaked, {m['recalled']}/{m['expect']} recalled")
    return " · ".join(parts) or None


def _harm_kinds(h: dict) -> str:
    kinds = [("dropped", "dropped"), ("new_subject", "new subject"), ("memory", "memory"), ("phantom_text", "text")]
    kinds += [("notes", "notes"), ("head", "head")]
    return ", ".join(f"{label} {h.get(key, 0)}" for key, label in kinds)


def latency(rows: list[dict]) -> dict:
    """Median and p90 seconds per planner stage (from each plan's timings), and per LLM baseline."""
    stages: dict[str, list[float]] = {}
    for r in rows:
        for stage, seconds in r.get("timings", {}).items():
            stages.setdefault(stage, []).append(seconds)
    for baseline in ("enhance", "single"):
        if baseline in systems(rows):
            stages[baseline] = [r[baseline]["seconds"] for r in rows]
    return {
        stage: {"median": round(statistics.median(v), 4), "p90": round(percentile(v, 90), 4), "n": len(v)}
        for stage, v in stages.items()
    }


def tokens(rows: list[dict]) -> dict:
    out = {}
    for system in [s for s in systems(rows) if s != "raw"]:
        total = sum(r[system]["tokens"] for r in rows)
        out[system] = {"total": total, "per_item": round(total / len(rows), 2) if rows else 0.0}
    return out


def build(
    rows: list[dict],
    *,
    suites: list[str],
    model: dict,
    seed: int | None,
    limit: int | None,
    settings: dict,
    version: str,
    split: str | None = None,
) -> dict:
    score_table, harms = scores(rows), harm(rows)
    suites_harm = by_suite(rows, "ordinary", harm)
    suites_reason = {name: t["reason"] for name, t in by_suite(rows, "reason", scores).items()}
    return {
        "qia_version": version,
        "model": model,
        "settings": settings,
        "split": split,
        "seed": seed,
        "limit": limit,
        "machine": machine(),
        "suites": suites,
        "systems": systems(rows),
        "items": len(rows),
        "errors": sum(1 for r in rows if "error" in r),
        "summary": summary(score_table, harms, rows),
        "scores": score_table,
        "harm": harms,
        "harm_by_suite": suites_harm if len(suites_harm) > 1 else None,
        "reason_by_suite": suites_reason if len(suites_reason) > 1 else None,
        "plan_detection": detection(rows),
        "latency": latency(rows),
        "tokens": tokens(rows),
        "results": rows,
    }


def _cell(entry: dict) -> str:
    if entry["score"] is None:
        return "–"
    return f"{entry['score']:.2f} [dim]({entry['passed']}/{entry['scored']})[/dim]"


def footer(report: dict) -> str:
    m, mach = report["model"], report["machine"]
    sampling = "no sampling" if report.get("seed") is None else f"sample seed {report['seed']}"
    parts = [f"model {m.get('file') or m.get('name')} sha256:{m.get('sha256') or '–'}"]
    k = m.get("knowledge")
    if k:
        parts.append(f"knowledge and single {k.get('file') or k.get('name')} sha256:{k.get('sha256') or '–'}")
    if report.get("split"):
        parts.append(f"split {report['split']}")
    parts += [
        sampling,
        f"{mach['cpus']} CPUs, GPU {mach['gpu'] or 'none'}",
        f"qia {report['qia_version']}",
        f"{report['items']} items",
    ]
    if report["errors"]:
        parts.append(f"{report['errors']} errors")
    return " · ".join(parts)


def render(report: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    shown = report.get("systems") or list(SYSTEMS)
    table = Table(title="Context acquired (share of items passed)", title_justify="left")
    table.add_column("capability")
    for system in shown:
        table.add_column(system, justify="right")
    table.add_column("skipped", justify="right", style="dim")
    for cap, by_system in report["scores"].items():
        table.add_row(cap, *(_cell(by_system[s]) for s in shown), str(by_system["agent"]["skipped"]))
    console.print(table)

    line = summary_line(report)
    if line:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    harms = report.get("harm")
    if harms:
        console.print(
            "ordinary harm by system: "
            + "; ".join(f"{s} {h['rate']:.1%} ({_harm_kinds(h)})" for s, h in harms.items()),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    for name, by_system in (report.get("harm_by_suite") or {}).items():
        console.print(
            f"harm on {name}: " + "; ".join(f"{s} {h['harmed']}/{h['items']}" for s, h in by_system.items()),
            markup=False,
            highlight=False,
        )
    for name, by_system in (report.get("reason_by_suite") or {}).items():
        console.print(
            f"recall on {name}: " + "; ".join(f"{s} {v['passed']}/{v['scored']}" for s, v in by_system.items()),
            markup=False,
            highlight=False,
        )

    det = report.get("plan_detection")
    if det:

        def fmt(v):
            return "–" if v is None else f"{v:.2f}"

        console.print(
            "underspecified detection: "
            + "; ".join(f"{s} precision {fmt(det[s]['precision'])} recall {fmt(det[s]['recall'])}" for s in det)
        )

    lat = Table(title="Latency per stage (seconds)", title_justify="left")
    for col in ("stage", "median", "p90", "n"):
        lat.add_column(col, justify="left" if col == "stage" else "right")
    for stage, v in report["latency"].items():
        lat.add_row(stage, f"{v['median']:.3f}", f"{v['p90']:.3f}", str(v["n"]))
    console.print(lat)

    console.print(
        "tokens generated: "
        + ", ".join(f"{s} {t['total']} ({t['per_item']}/item)" for s, t in report["tokens"].items())
    )
    console.print(f"[dim]{escape(footer(report))}[/dim]", markup=True, highlight=False)
