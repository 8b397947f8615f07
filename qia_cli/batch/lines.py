"""The requests of a batch file: JSONL (`{"request": ..., "seed"?, "size"?, "model"?, "count"?, "id"?}` per
line) or plain text (one request per line); blank lines and `#` comments are skipped, and lines keep their
numbers. No Typer or Rich here."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qia_cli.errors import UsageError
from qia_cli.seeds import MAX_SEED

FIELDS: dict[str, tuple[type, ...]] = {
    "request": (str,),
    "id": (str, int),
    "seed": (int,),
    "size": (str,),
    "model": (str,),
    "count": (int,),
}
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


@dataclass
class Line:
    line: int  # 1-based number in the file
    request: str
    id: str | None = None
    seed: int | None = None
    size: str | None = None
    model: str | None = None
    count: int | None = None

    @functools.cached_property
    def key(self) -> str:
        """A hash of what the line asks for: an edited line is a new request."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "line" and v is not None}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


# -- reading the file -----------------------------------------------------------------------------
class BatchFile:
    """The requests of a batch file (those of one `--shard I/N`), read as a stream: memory stays the same
    whatever the length of the file.

    Making one reads the whole file once and checks every line, so a bad file fails (UsageError naming
    the first bad line) before any work; each iteration reads it again and yields its `Line`s in order.
    A line that starts with `{` is a JSON record when it parses as one. When it does not, it is an error
    in a JSONL file (by its suffix, or because another line is a JSON record) or when it starts like JSON
    (`{"`); in a plain-text file it is a request like any other (`{red} balloons`). A UTF-8 BOM is skipped.
    """

    def __init__(self, path: Path, shard: str | None = None) -> None:
        self.path = Path(path)
        self.every, self.start = _parse_shard(shard)
        self.jsonl = self.path.suffix.lower() in JSONL_SUFFIXES
        requests = 0
        maybe_bad: UsageError | None = None  # the first broken `{` line: an error if the file is JSONL
        bad: UsageError | None = None  # the first broken `{"` line after it (the error if the file is text)
        for number, stripped in self._raw():
            data = _json_or_error(stripped)
            if isinstance(data, dict):
                self.jsonl = True
                if maybe_bad is not None:
                    raise maybe_bad
                _parse_record(self.path, number, data)  # checked now, parsed again when the line is read
            elif isinstance(data, ValueError):
                error = _not_json(self.path, number, data)
                if self.jsonl or stripped.startswith('{"'):
                    if maybe_bad is None:
                        raise error
                    bad = bad or error
                maybe_bad = maybe_bad or error
            requests += 1
        if self.jsonl and maybe_bad is not None:
            raise maybe_bad
        if bad is not None:
            raise bad
        if not requests:
            raise UsageError(f"batch file {self.path} has no requests", hint="one request per line, as text or JSON")
        self.size = len(range(self.start, requests, self.every))  # the requests of this shard

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[Line]:
        index = -1
        for number, stripped in self._raw():
            index += 1
            if index % self.every != self.start:
                continue
            data = _json_or_error(stripped)
            if isinstance(data, dict):
                yield _parse_record(self.path, number, data)
            elif isinstance(data, ValueError) and (self.jsonl or stripped.startswith('{"')):
                raise _not_json(self.path, number, data)  # the file changed since it was checked
            else:
                yield Line(line=number, request=stripped)

    def _raw(self) -> Iterator[tuple[int, str]]:
        """(line number, text) of each line that is not blank or a comment; numbered as str.splitlines()
        numbers them, so results of earlier runs keep matching."""
        try:
            with open(self.path, encoding="utf-8-sig") as fh:
                number = 0
                for chunk in fh:
                    for raw in chunk.splitlines() or [""]:
                        number += 1
                        stripped = raw.strip().lstrip("\ufeff").strip()
                        if stripped and not stripped.startswith("#"):
                            yield number, stripped
        except FileNotFoundError:
            raise UsageError(f"batch file not found: {self.path}") from None
        except IsADirectoryError:
            raise UsageError(f"batch file is a folder: {self.path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"batch file {self.path} cannot be read: {exc}") from None


def read_lines(path: Path) -> list[Line]:
    """Every request of the file as a list (see BatchFile, which streams them)."""
    return list(BatchFile(path))


def _json_or_error(stripped: str) -> Any:
    """The JSON value of a line that starts with `{`, the ValueError of one that does not parse, or None."""
    if not stripped.startswith("{"):
        return None
    try:
        return json.loads(stripped)
    except ValueError as exc:
        return exc
    except RecursionError:
        return ValueError("nested too deeply")


def _not_json(path: Path, number: int, exc: ValueError) -> UsageError:
    return UsageError(
        f"{path}:{number} is not valid JSON: {exc}",
        hint="a text request that starts with '{' belongs in a plain-text file (not .jsonl)",
    )


def _parse_record(path: Path, number: int, data: dict[str, Any]) -> Line:
    where = f"{path}:{number}"
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise UsageError(f"{where}: unknown field '{unknown[0]}'", hint="fields: " + ", ".join(FIELDS))
    if "request" not in data:
        raise UsageError(f'{where}: no "request"', hint='e.g. {"request": "a red bicycle", "seed": 7}')
    for key, value in data.items():
        if value is None and key != "request":
            continue
        if not isinstance(value, FIELDS[key]) or isinstance(value, bool):
            kinds = " or ".join(t.__name__ for t in FIELDS[key])
            raise UsageError(f'{where}: "{key}" must be {kinds}, not {json.dumps(value)}')
    if data.get("seed") is not None and not 0 <= data["seed"] <= MAX_SEED:
        raise UsageError(f'{where}: "seed" must be between 0 and {MAX_SEED}')
    if data.get("count") is not None and not 1 <= data["count"] <= 64:
        raise UsageError(f'{where}: "count" must be between 1 and 64')
    if data.get("id") is not None:
        data["id"] = str(data["id"])
    return Line(line=number, **data)


def _parse_shard(shard: str | None) -> tuple[int, int]:
    """`i/n` (1 <= i <= n): every n-th request, starting with the i-th, as (n, i - 1); (1, 0) for all."""
    if not shard:
        return 1, 0
    try:
        i, n = (int(part) for part in shard.split("/"))
    except ValueError:
        i = n = 0
    if not (n >= 1 and 1 <= i <= n):
        raise UsageError(f"invalid shard '{shard}'", hint="use I/N with 1 <= I <= N, e.g. --shard 2/4")
    return n, i - 1
