"""A small disk cache of search results: one JSON file per (backend, query), with a TTL."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from qia_cli import paths
from qia_cli.fsutil import atomic_write_bytes
from qia_cli.search.base import SearchResult


class SearchCache:
    def __init__(self, directory: Path | str | None = None, ttl: float = 86400.0):
        self.dir = Path(directory) if directory is not None else paths.search_cache_dir()
        self.ttl = ttl

    def _file(self, backend: str, query: str) -> Path:
        key = hashlib.sha256(f"{backend}\0{query.strip().lower()}".encode()).hexdigest()
        return self.dir / f"{key}.json"

    def get(self, backend: str, query: str, now: float | None = None) -> list[SearchResult] | None:
        """Fresh cached results, or None (missing, expired, or unreadable: a bad entry is ignored)."""
        if self.ttl <= 0:
            return None
        try:
            data = json.loads(self._file(backend, query).read_bytes())
            if not isinstance(data, dict) or (now or time.time()) - float(data["time"]) > self.ttl:
                return None
            return [SearchResult.model_validate(r) for r in data["results"]]
        except Exception:  # noqa: BLE001 - missing or corrupt: a miss
            return None

    def put(self, backend: str, query: str, results: list[SearchResult]) -> None:
        doc = {"time": time.time(), "backend": backend, "query": query, "results": [r.model_dump() for r in results]}
        try:
            atomic_write_bytes(self._file(backend, query), json.dumps(doc).encode("utf-8"), mode=0o600)
        except OSError:
            pass  # a cache that cannot be written is only slower
