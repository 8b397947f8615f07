"""Small file-system helpers shared by the memory store, the config file and the outputs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half of one.

    A private file (no group or other bits in `mode`) gets private new folders too (0700)."""
    atomic_write(path, lambda fh: fh.write(data), mode)


def atomic_write(path: Path, writer: Callable[[BinaryIO], object], mode: int = 0o644) -> None:
    """`writer(fh)` fills a temporary file next to `path`, which then replaces `path` in one rename
    (after an fsync): readers see the old file or the new one, and an error or Ctrl-C leaves neither
    half a file nor the temporary one. Folders are made as `atomic_write_bytes` says."""
    path = Path(path)
    if mode & 0o077 == 0:
        make_private_dirs(path.parent)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def make_private_dirs(folder: Path) -> None:
    """Create `folder` and any missing parents as 0700 (folders that exist keep their mode)."""
    folder = Path(folder)
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask


def read_bounded(path: Path | str, limit: int) -> bytes:
    """The bytes of `path`, or OSError(EFBIG) past `limit` bytes: /dev/zero or a FIFO can't grow memory."""
    import errno

    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit / 2**20:g} MB", str(path))
    return data
