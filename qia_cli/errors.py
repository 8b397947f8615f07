"""Errors that the CLI turns into one clear line and an exit code.

Exit codes (documented in the README):
0 success, 1 runtime failure (for `qia batch`: some lines failed), 2 bad usage or input,
3 a batch that stopped before its end, 130 interrupt.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3
EXIT_INTERRUPT = 130


class QiaError(Exception):
    """An expected failure with a message meant for the user."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(QiaError):
    """Bad input from the user: a flag, a prompt, a file they named."""

    exit_code = EXIT_USAGE


class ModelError(UsageError):
    """A model that is missing, not the right format, or not available offline."""


class MemoryCorruptError(QiaError):
    """The memory file exists but cannot be read; its bytes are kept untouched."""


class BatchStopped(QiaError):
    """A batch that stopped before its end (the planner cannot work, the Ray workers are gone, a crash): not
    the same as lines that failed (exit 1). The records so far are kept; a rerun resumes."""

    exit_code = EXIT_STOPPED


class SearchError(QiaError):
    """A search backend failed; planning goes on with a warning."""

    offline = False  # the engines cannot be reached at all (no DNS, no route): every search fails alike


def home_error(exc: BaseException) -> UsageError | None:
    """Path.expanduser() on '~someone' with no such user raises a bare RuntimeError: a usage error."""
    if isinstance(exc, RuntimeError) and "home directory" in str(exc):
        return UsageError(
            "a path starts with ~ but that home directory is unknown", hint="write the path in full, or as ~/folder"
        )
    return None


def first_line(exc: BaseException, *, limit: int | None = None) -> str:
    """The first line of an exception's message (library errors run to pages), at most `limit` characters;
    its class name when the message is empty. The one summary of a foreign exception."""
    text = str(exc).strip().splitlines()
    return text[0][:limit] if text else type(exc).__name__
