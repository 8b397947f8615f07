"""Web search for grounding: backends (ddgs, off, fixture:PATH), a disk cache, a deadline."""

from qia_cli.search.base import SearchBackend, SearchResult, clean
from qia_cli.search.service import make_backend, search_many

__all__ = ["SearchBackend", "SearchResult", "clean", "make_backend", "search_many"]
