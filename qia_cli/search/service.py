"""Pick a backend and run a plan's queries in parallel under one hard deadline.

ddgs tries several engines in turn and can take several times its own timeout, so the deadline is
enforced here: queries still running when it passes are abandoned (daemon threads, never joined)
and reported as warnings. Nothing here raises for a failed search.
"""

from __future__ import annotations

import queue
import threading
import time

from qia_cli.errors import UsageError
from qia_cli.search.base import SearchBackend, SearchResult
from qia_cli.search.cache import SearchCache

MAX_WORKERS = 4


def make_backend(spec: str, *, timeout: float) -> SearchBackend | None:
    """`ddgs` (the web), `off` (None), or `fixture:PATH` (recorded results)."""
    spec = (spec or "").strip()
    low = spec.lower()
    if low in {"off", "none", "no", "false", ""}:
        return None
    if low == "ddgs":
        from qia_cli.search.ddgs_backend import DdgsBackend

        return DdgsBackend(timeout=timeout)
    if low.startswith("fixture:") and spec[len("fixture:") :].strip():
        from qia_cli.search.fixture import FixtureBackend

        return FixtureBackend(spec[len("fixture:") :].strip())
    raise UsageError(f"unknown search backend '{spec}'", hint="use ddgs, off, or fixture:PATH")


def _short(query: str, width: int = 60) -> str:
    return query if len(query) <= width else query[: width - 1] + "\u2026"


def search_many(
    backend: SearchBackend | None,
    queries: list[str],
    *,
    deadline_s: float,
    max_results: int = 5,
    ttl: float = 86400.0,
    use_cache: bool = True,
) -> tuple[dict[str, list[SearchResult]], list[str]]:
    """Results per query that finished in time, and warnings for those that did not."""
    end = time.monotonic() + max(0.0, deadline_s)
    todo = list(dict.fromkeys(q.strip() for q in queries if q and q.strip()))
    if backend is None or not todo:
        return {}, []
    name = getattr(backend, "name", type(backend).__name__)
    cache = SearchCache(ttl=ttl) if use_cache and getattr(backend, "cacheable", True) else None
    results: dict[str, list[SearchResult]] = {}
    warnings: list[str] = []
    if cache is not None:
        for q in list(todo):
            hit = cache.get(name, q)
            if hit is not None:
                results[q] = hit
                todo.remove(q)
    if not todo:
        return results, warnings
    outcomes = _run_until(backend, todo, max_results, end)
    offline = 0  # queries that failed because no engine can be reached: one warning for them all
    for q in todo:  # in the order asked
        outcome = outcomes.get(q)
        if outcome is None:
            warnings.append(f"search skipped for '{_short(q)}': timed out after {deadline_s:.1f} s")
        elif getattr(outcome, "offline", False) is True:
            offline += 1
        elif isinstance(outcome, BaseException):
            msg = getattr(outcome, "message", None) or str(outcome) or type(outcome).__name__
            warnings.append(f"search failed for '{_short(q)}': {msg}")
        else:
            results[q] = outcome
            if cache is not None and outcome:
                cache.put(name, q, outcome)
    if offline:
        facts = "fact was" if offline == 1 else "facts were"
        warnings.insert(0, f"web search unavailable (offline?): {offline} time-sensitive {facts} assumed, not checked")
    return results, warnings


def _run_until(
    backend: SearchBackend, todo: list[str], max_results: int, end: float
) -> dict[str, list[SearchResult] | BaseException]:
    """Run the queries on up to MAX_WORKERS daemon threads; what finished by `end` (monotonic time):
    results, or the exception a query raised. Threads still running then are left behind, never joined."""
    jobs: queue.Queue[str] = queue.Queue()
    for q in todo:
        jobs.put(q)
    done: dict[str, list[SearchResult] | BaseException] = {}
    finished = threading.Condition(threading.Lock())
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                q = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                outcome: list[SearchResult] | BaseException = list(backend.search(q, max_results))[:max_results]
            except BaseException as exc:  # noqa: BLE001 - reported as a warning
                outcome = exc
            with finished:
                done[q] = outcome
                finished.notify_all()

    for i in range(min(MAX_WORKERS, len(todo))):
        threading.Thread(target=worker, name=f"qia-search-{i}", daemon=True).start()
    with finished:
        while len(done) < len(todo):
            left = end - time.monotonic()
            if left <= 0:
                break
            finished.wait(left)
        stop.set()
        return dict(done)
