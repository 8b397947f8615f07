"""Recorded search results for tests and benchmarks: no network.

File: a JSON list of {"query": "...", "results": [{"title", "href", "body"}, ...]}. A query gets
the results of the recorded query sharing most content words with it; none shared -> [].
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from qia_cli.errors import UsageError, first_line
from qia_cli.fsutil import read_bounded
from qia_cli.search.base import SearchResult, clean_result, content_words

MAX_FIXTURE_BYTES = 64 << 20  # recorded results for tests and benchmarks; not a stream


class Recorded(BaseModel):
    query: str
    results: list[SearchResult] = []


class FixtureBackend:
    name = "fixture"
    cacheable = False

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser()
        try:
            data = json.loads(read_bounded(self.path, MAX_FIXTURE_BYTES).decode("utf-8-sig"))
            if not isinstance(data, list):
                raise ValueError("expected a JSON list of {query, results}")
            self.records = [Recorded.model_validate(item) for item in data]
        except (OSError, ValueError, ValidationError, RecursionError) as exc:
            if isinstance(exc, RecursionError):
                reason = "nested too deeply"
            else:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
            raise UsageError(
                f"search fixture {self.path} cannot be read: {reason}",
                hint='expected [{"query": "...", "results": [{"title": "", "href": "", "body": ""}]}]',
            ) from None
        self._words = [content_words(r.query) for r in self.records]

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        wanted = content_words(query)
        best, best_score = None, (0, 0)
        for record, words in zip(self.records, self._words):
            score = (len(wanted & words), -len(words - wanted))  # most shared, then fewest extra
            if score[0] and score > best_score:
                best, best_score = record, score
        if best is None:
            return []
        return [clean_result(r) for r in best.results[:max_results]]
