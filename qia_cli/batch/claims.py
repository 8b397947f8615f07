"""Per-line claims in a batch output folder, so that two `qia batch` runs on one folder share the work.

A claim is an exclusive lock on `OUTDIR/.qia-claims/LINE.lock`, taken before the line is planned and
dropped after its record is appended. The operating system drops the lock of a process that dies (kill -9
included), so a crash never leaves a line claimed. On POSIX the lock is `flock`: the file is removed on
release, and a taker checks that the file it locked is still the one at the path. Elsewhere the
`filelock` package does the locking and the (empty) files stay.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

FOLDER = ".qia-claims"


class Claims:
    def __init__(self, outdir: Path) -> None:
        self.folder = Path(outdir) / FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.held: dict[int, object] = {}

    def take(self, line: int) -> bool:
        """True when this process now holds `line`; False when another process holds it."""
        if line in self.held:
            return True
        path = self.folder / f"{line}.lock"
        if fcntl is None:
            from filelock import FileLock, Timeout

            lock = FileLock(str(path), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                return False
            self.held[line] = lock
            return True
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # another run removed the empty folder at its end
                self.folder.mkdir(parents=True, exist_ok=True)
                continue
            try:
                locked = _lock_if_current(fd, path)
            except BaseException:  # Ctrl-C between open and lock: leave no file nobody holds
                _drop(fd, path)
                raise
            if locked is None:  # another process holds it
                return False
            if not locked:  # its holder released (and removed) it between our open and our lock: again
                continue
            self.held[line] = fd
            try:
                note = f"{socket.gethostname()} {os.getpid()}\n".encode()
                os.ftruncate(fd, 0)
                os.pwrite(fd, note, 0)  # who holds it, for people looking at the folder
            except OSError:
                pass
            return True

    def release(self, line: int) -> None:
        held = self.held.get(line)
        if held is None:
            return
        if isinstance(held, int):
            try:
                os.unlink(self.folder / f"{line}.lock")  # while still locked: nobody holds a removed file
            except OSError:
                pass
            del self.held[line]  # only now: a Ctrl-C before this leaves it for release_all
            os.close(held)
        else:
            held.release()  # type: ignore[attr-defined]
            del self.held[line]

    def release_all(self) -> None:
        """Release this run's claims, remove the files of claims nobody holds any more (a run killed with
        -9 leaves its empty files behind), and the folder when it is empty."""
        for line in list(self.held):
            self.release(line)
        if fcntl is not None:
            try:
                leftovers = list(self.folder.glob("*.lock"))
            except OSError:
                leftovers = []
            for path in leftovers:
                try:
                    fd = os.open(path, os.O_RDWR)
                except OSError:
                    continue
                if _lock_if_current(fd, path):
                    _drop(fd, path)
        try:
            self.folder.rmdir()  # only when empty: another run may hold claims
        except OSError:
            pass


def _lock_if_current(fd: int, path: Path) -> bool | None:
    """Lock `fd` without waiting: True when it is locked and still the file at `path`, False (and closed)
    when the file was removed or replaced meanwhile, None (and closed) when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
    return same


def _drop(fd: int, path: Path) -> None:
    """Remove the claim file open as `fd` unless another process holds it (nobody holds a removed file),
    then close it. Locking an fd this process has locked already succeeds at once."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    except OSError:  # BlockingIOError: it is another process's claim
        pass
    try:
        os.close(fd)
    except OSError:
        pass
