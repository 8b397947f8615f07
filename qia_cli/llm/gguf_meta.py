"""Read a GGUF file's header: its key-value metadata and the shapes of its tensors, never the weights.

The `gguf` package's GGUFReader parses every element of the tokenizer arrays into numpy views, which
takes seconds for a 150k-token vocabulary; a profile is read on every `qia plan`, so this reader walks
the header with `struct` over an mmap and skips long arrays (their length is kept, not their items).
Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (versions 2 and 3).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
KEEP_ARRAY = 64  # arrays up to this many items are kept (general.languages, tags); longer ones are skipped

# value type -> struct format of one scalar (8 = string, 9 = array are handled apart)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    """The file is not GGUF, or its header is cut off or malformed."""


@dataclass
class SkippedArray:
    """A long array (the vocabulary, the merges): only its item type and length are kept."""

    item_type: int
    count: int


@dataclass
class GGUFHeader:
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensor_count: int = 0
    parameters: int = 0  # elements summed over every tensor


class _Cursor:
    def __init__(self, buf, size: int) -> None:
        self.buf, self.size, self.pos = buf, size, 0

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise GGUFError("the GGUF header is cut off")

    def scalar(self, fmt: str):
        n = struct.calcsize(fmt)
        self.need(n)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self) -> str:
        n = self.scalar("<Q")
        self.need(n)
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(raw).decode("utf-8", "replace")

    def skip_string(self) -> None:
        n = self.scalar("<Q")
        self.need(n)
        self.pos += n

    def value(self, kind: int):
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, count = self.scalar("<I"), self.scalar("<Q")
            if count <= KEEP_ARRAY:
                return [self.value(item) for _ in range(count)]
            if item in _SCALARS:
                step = struct.calcsize(_SCALARS[item]) * count
                self.need(step)
                self.pos += step
            elif item == _STRING:
                for _ in range(count):
                    self.skip_string()
            else:
                for _ in range(count):
                    self.value(item)
            return SkippedArray(item, count)
        raise GGUFError(f"unknown GGUF value type {kind}")


def read_header(path: str | Path) -> GGUFHeader:
    """The metadata and parameter count of the GGUF at `path`; GGUFError for anything else."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            if size < 24:
                raise GGUFError(f"not a GGUF file: {path}")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(_Cursor(buf, size), path)
    except OSError as exc:
        raise GGUFError(f"cannot read {path}: {exc.strerror or exc}") from None


def _parse(cur: _Cursor, path: Path) -> GGUFHeader:
    cur.need(4)
    if bytes(cur.buf[0:4]) != MAGIC:
        raise GGUFError(f"not a GGUF file: {path}")
    cur.pos = 4
    version = cur.scalar("<I")
    if version < 2:
        raise GGUFError(f"GGUF version {version} is too old to read: {path}")
    tensors, kv_count = cur.scalar("<Q"), cur.scalar("<Q")
    header = GGUFHeader(version=version, tensor_count=tensors)
    for _ in range(kv_count):
        key = cur.string()
        header.metadata[key] = cur.value(cur.scalar("<I"))
    total = 0
    for _ in range(tensors):
        cur.skip_string()  # the tensor's name
        n_dims = cur.scalar("<I")
        if n_dims > 8:
            raise GGUFError(f"malformed tensor info in {path}")
        count = 1
        for _ in range(n_dims):
            count *= cur.scalar("<Q")
        cur.scalar("<I")  # ggml type
        cur.scalar("<Q")  # offset of the data
        total += count
    header.parameters = total
    return header
