"""The real web search: the `ddgs` metasearch library (imported only when a search runs)."""

from __future__ import annotations

import re
import socket

from qia_cli.errors import SearchError
from qia_cli.search.base import SearchResult, clean


class DdgsBackend:
    name = "ddgs"
    cacheable = True

    def __init__(self, timeout: float = 8.0):
        self.timeout = timeout

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        try:
            from ddgs import DDGS
            from ddgs.exceptions import DDGSException
        except ImportError as exc:
            raise SearchError(
                "web search needs the 'ddgs' package", hint="pip install ddgs, or use --search off"
            ) from exc
        try:
            rows = DDGS(timeout=max(1, round(self.timeout))).text(query, max_results=max_results)
        except (DDGSException, OSError) as exc:
            kind = type(exc).__name__
            if "Ratelimit" in kind:
                reason = "rate limited by the search engines"
            elif "Timeout" in kind:
                reason = f"timed out ({exc})"
            else:
                reason = f"{kind}: {exc}" if str(exc) else kind
            error = SearchError(reason)
            error.offline = _offline(exc)
            raise error from exc
        results = []
        for row in rows or []:
            if not isinstance(row, dict):
                continue
            results.append(
                SearchResult(
                    title=clean(row.get("title"), 200),
                    href=clean(row.get("href") or row.get("url"), 500),
                    body=clean(row.get("body") or row.get("snippet")),
                )
            )
        return results[:max_results]


# What ddgs (or the socket under it) says when there is no network: names that do not resolve, no route.
_OFFLINE = re.compile(
    r"DNSError|error resolving DNS|name resolution|Name or service not known|nodename nor servname|getaddrinfo"
    r"|Network is unreachable|No route to host",
    re.IGNORECASE,
)


def _offline(exc: BaseException) -> bool:
    """The search failed because this machine cannot reach any engine, not because of the query."""
    return isinstance(exc, socket.gaierror) or bool(_OFFLINE.search(str(exc)))
