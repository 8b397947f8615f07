"""The call log's SQLite database (`qia logs`): one file in qia's data folder, safe with parallel qia
processes and batch workers.

Each write opens its own connection (WAL mode, a busy timeout) and is one short IMMEDIATE transaction: a
plan's row and its calls together, never a long write. A database that is locked past the timeout, corrupt
or unwritable gives one warning per process and costs the plan nothing. The file stays under a size cap
(`logs_max_mb`, 100 MB by default): past it, the oldest plans and calls go. Full-text search (`-q`) uses
FTS5 over the request, the question and the answer.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qia_cli import paths
from qia_cli.calllog.record import Call, now
from qia_cli.errors import QiaError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import sqlite3

SCHEMA_VERSION = 1
DEFAULT_MAX_MB = 100
BUSY_TIMEOUT_S = 5.0
KEEP_AFTER_TRIM = 0.8  # past the cap, the oldest calls go until the log is at 80% of it
HASH_LIMIT = 2 << 30  # files above 2 GiB are hashed only when their name is their sha256 (the Hugging Face cache)

CALL_FIELDS = [
    "time",
    "plan_id",
    "request",
    "stage",
    "gap_id",
    "detail",
    "kind",
    "model",
    "backend",
    "model_path",
    "model_sha256",
    "question",
    "prompt",
    "answer",
    "logprob",
    "min_logprob",
    "tokens",
    "seconds",
    "finish_reason",
    "error",
    "used",
    "outcome",
    "why",
]
SCHEMA = """
CREATE TABLE IF NOT EXISTS plans (
    id TEXT PRIMARY KEY, time TEXT NOT NULL, request TEXT, prompt TEXT, negative_prompt TEXT, model TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, plan_id TEXT, request TEXT, stage TEXT NOT NULL,
    gap_id TEXT, detail TEXT, kind TEXT, model TEXT, backend TEXT, model_path TEXT, model_sha256 TEXT,
    question TEXT, prompt TEXT, answer TEXT, logprob REAL, min_logprob REAL, tokens INTEGER, seconds REAL,
    finish_reason TEXT, error TEXT, used INTEGER, outcome TEXT, why TEXT
);
CREATE INDEX IF NOT EXISTS calls_plan ON calls (plan_id);
CREATE TABLE IF NOT EXISTS images (
    plan_id TEXT NOT NULL, path TEXT NOT NULL, time TEXT NOT NULL, PRIMARY KEY (plan_id, path)
);
CREATE TABLE IF NOT EXISTS model_files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, sha256 TEXT);
"""
FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS calls_fts USING fts5(
    request, question, answer, content='calls', content_rowid='id'
);
CREATE TRIGGER IF NOT EXISTS calls_ai AFTER INSERT ON calls BEGIN
    INSERT INTO calls_fts (rowid, request, question, answer) VALUES (new.id, new.request, new.question, new.answer);
END;
CREATE TRIGGER IF NOT EXISTS calls_ad AFTER DELETE ON calls BEGIN
    INSERT INTO calls_fts (calls_fts, rowid, request, question, answer)
    VALUES ('delete', old.id, old.request, old.question, old.answer);
END;
CREATE TRIGGER IF NOT EXISTS calls_au AFTER UPDATE ON calls BEGIN
    INSERT INTO calls_fts (calls_fts, rowid, request, question, answer)
    VALUES ('delete', old.id, old.request, old.question, old.answer);
    INSERT INTO calls_fts (rowid, request, question, answer) VALUES (new.id, new.request, new.question, new.answer);
END;
"""


@dataclass
class Filters:
    plan: str | None = None  # a plan id or a unique prefix of one
    plans: int = 1  # the most recent plans with matching calls (0: all)
    stage: list[str] | None = None
    model: str | None = None  # a part of the model's name or path
    query: str | None = None  # full-text search over request, question and answer


class CallLog:
    """The SQLite call log at `path` (default: `paths.calllog_file()`). Opens nothing until used."""

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        max_mb: int = DEFAULT_MAX_MB,
        timeout: float = BUSY_TIMEOUT_S,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else paths.calllog_file()
        self.max_bytes = max(1, max_mb) << 20
        self.timeout = timeout
        self.on_warning = on_warning
        self.warnings: list[str] = []  # what went wrong (one warning is shown, the first)
        self._ready = False
        self._fts = True
        self._lock = threading.Lock()
        self._shas: dict[tuple[str, int, int], str | None] = {}

    # -- connections -------------------------------------------------------------------------------
    def _connect(self, *, create: bool) -> sqlite3.Connection:
        import sqlite3

        if create:
            from qia_cli.fsutil import make_private_dirs

            make_private_dirs(self.path.parent)
            if not self.path.exists():  # prompts can be personal: readable by the user only
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        elif not self.path.exists():
            raise FileNotFoundError(str(self.path))
        con = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            con.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            con.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes only on a new file, before any table
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            if not self._ready:
                self._init(con)
        except BaseException:
            con.close()
            raise
        return con

    def _init(self, con: sqlite3.Connection) -> None:
        import sqlite3

        with self._lock:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise QiaError(f"the call log {self.path} was written by a newer qia (schema {version})")
            if version < SCHEMA_VERSION:
                con.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _statements(SCHEMA):
                        con.execute(statement)
                    try:
                        for statement in _statements(FTS):
                            con.execute(statement)
                    except sqlite3.OperationalError:  # a SQLite without FTS5: -q falls back to LIKE
                        pass
                    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            self._fts = bool(
                con.execute("SELECT 1 FROM sqlite_master WHERE name = 'calls_fts' AND type = 'table'").fetchone()
            )
            self._ready = True

    def _warn(self, exc: BaseException) -> None:
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        low = reason.lower()
        if "locked" in low or "busy" in low:
            hint = "another qia held it too long; this plan's calls are not recorded"
        elif "not a database" in low or "malformed" in low or "corrupt" in low:
            hint = "move it aside (or delete it) and qia starts a new one; `qia logs off` stops logging"
        else:
            hint = "`qia logs off` stops logging"
        message = f"call log {self.path} not written: {reason} ({hint})"
        first = not self.warnings
        self.warnings.append(message)
        if first and self.on_warning is not None:
            self.on_warning(message)

    # -- writing -------------------------------------------------------------------------------------
    def write(self, plan: dict[str, Any] | None, calls: Iterable[Call | dict[str, Any]]) -> None:
        """One plan's row (when given) and its calls, in one transaction. Never raises."""
        import sqlite3

        rows = [c.as_dict() if isinstance(c, Call) else dict(c) for c in calls]
        if plan is None and not rows:
            return
        try:
            con = self._connect(create=True)
            try:
                for row in rows:
                    if row.get("model_sha256") is None and row.get("model_path"):
                        row["model_sha256"] = self._sha256(con, row["model_path"])
                con.execute("BEGIN IMMEDIATE")
                try:
                    if plan is not None:
                        _upsert_plan(con, plan)
                    con.executemany(
                        f"INSERT INTO calls ({', '.join(CALL_FIELDS)}) VALUES ({', '.join('?' * len(CALL_FIELDS))})",
                        [[_cell(row.get(k)) for k in CALL_FIELDS] for row in rows],
                    )
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                self._trim(con)
            finally:
                con.close()
        except (sqlite3.Error, OSError, QiaError) as exc:
            self._warn(exc)

    def add_images(self, plan_id: str | None, images: Iterable[str]) -> None:
        """Link a plan to the images it produced. Never raises."""
        import sqlite3

        images = [str(p) for p in images]
        if not plan_id or not images:
            return
        try:
            con = self._connect(create=True)
            try:
                con.execute("BEGIN IMMEDIATE")
                try:
                    when = now()
                    con.executemany(
                        "INSERT OR IGNORE INTO images (plan_id, path, time) VALUES (?, ?, ?)",
                        [(plan_id, path, when) for path in images],
                    )
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            finally:
                con.close()
        except (sqlite3.Error, OSError, QiaError) as exc:
            self._warn(exc)

    def _sha256(self, con: sqlite3.Connection, where: str) -> str | None:
        """The model file's sha256 (12 characters), where known: its name in the Hugging Face cache, the
        file itself up to 2 GiB (once per file and change: kept in the log), else None."""
        try:
            path = Path(where)
            if not path.is_file():
                return None
            real = path.resolve()
            if re.fullmatch(r"[0-9a-f]{64}", real.name):
                return real.name[:12]
            st = real.stat()
        except (OSError, ValueError):
            return None
        key = (str(real), st.st_size, st.st_mtime_ns)
        if key in self._shas:
            return self._shas[key]
        found = con.execute(
            "SELECT sha256 FROM model_files WHERE path = ? AND size = ? AND mtime_ns = ?", key
        ).fetchone()
        if found is not None:
            self._shas[key] = found[0]
            return found[0]
        digest = None
        if st.st_size <= HASH_LIMIT:
            hasher = hashlib.sha256()
            with open(real, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    hasher.update(block)
            digest = hasher.hexdigest()[:12]
            con.execute(
                "INSERT OR REPLACE INTO model_files (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)", (*key, digest)
            )
        self._shas[key] = digest
        return digest

    def _trim(self, con: sqlite3.Connection) -> None:
        """Past the size cap, the oldest calls (and plans left without any) go."""
        used = _used_bytes(con)
        if used <= self.max_bytes:
            return
        total = con.execute("SELECT COUNT(*), MIN(id), MAX(id) FROM calls").fetchone()
        count, low, high = total
        if not count:
            return
        share = 1 - KEEP_AFTER_TRIM * self.max_bytes / used
        cutoff = low + max(1, int((high - low + 1) * share))
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("DELETE FROM calls WHERE id < ?", (cutoff,))
            oldest = con.execute("SELECT MIN(time) FROM calls").fetchone()[0]
            if oldest is None:
                con.execute("DELETE FROM plans")
                con.execute("DELETE FROM images")
            else:
                _drop_plans_before(con, oldest)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        _shrink(con)

    # -- reading ------------------------------------------------------------------------------------
    def _read(self) -> sqlite3.Connection | None:
        """A connection for reading, or None when there is no log yet; a QiaError when it can't be read."""
        import sqlite3

        if not self.path.exists():
            return None
        try:
            return self._connect(create=False)
        except FileNotFoundError:
            return None
        except sqlite3.Error as exc:
            raise QiaError(
                f"the call log {self.path} cannot be read: {exc}",
                hint="move it aside (or delete it) and qia starts a new one",
            ) from None

    def query(self, filters: Filters | None = None) -> list[dict[str, Any]]:
        """Plans (most recent first) with their images and the calls that match `filters`."""
        import sqlite3

        filters = filters or Filters()
        con = self._read()
        if con is None:
            return []
        try:
            where, args = self._where(con, filters)
            keys = con.execute(
                f"SELECT COALESCE(plan_id, 'call:' || id) AS k, MAX(id) AS last FROM calls WHERE {where} "
                "GROUP BY k ORDER BY last DESC" + (" LIMIT ?" if filters.plans > 0 else ""),
                [*args, filters.plans] if filters.plans > 0 else args,
            ).fetchall()
            groups = []
            for key, _last in reversed(keys):  # the oldest first, like a log
                if key.startswith("call:"):
                    rows = con.execute(f"SELECT * FROM calls WHERE id = ? AND {where}", [int(key[5:]), *args])
                    plan: dict[str, Any] = {"id": None}
                else:
                    rows = con.execute(f"SELECT * FROM calls WHERE plan_id = ? AND {where} ORDER BY id", [key, *args])
                    found = con.execute("SELECT * FROM plans WHERE id = ?", (key,)).fetchone()
                    plan = _row(con, found, "plans") if found else {"id": key}
                    plan["images"] = [
                        r[0] for r in con.execute("SELECT path FROM images WHERE plan_id = ? ORDER BY time", (key,))
                    ]
                calls = [_call_row(_row(con, r, "calls")) for r in rows.fetchall()]
                plan.setdefault("time", calls[0]["time"] if calls else None)
                plan.setdefault("request", calls[0]["request"] if calls else None)
                plan["calls"] = calls
                groups.append(plan)
            return groups
        except sqlite3.Error as exc:
            raise QiaError(f"the call log {self.path} cannot be read: {exc}") from None
        finally:
            con.close()

    def _where(self, con: sqlite3.Connection, filters: Filters) -> tuple[str, list[Any]]:
        clauses, args = ["1"], []
        if filters.plan:
            ids = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT plan_id FROM calls WHERE plan_id LIKE ? ESCAPE '\\' "
                    "UNION SELECT id FROM plans WHERE id LIKE ? ESCAPE '\\'",
                    (_like_prefix(filters.plan),) * 2,
                )
            ]
            exact = [i for i in ids if i == filters.plan]
            if not ids:
                raise UsageError(f"no plan '{filters.plan}' in the call log", hint="qia logs -n 10 lists recent plans")
            if len(ids) > 1 and not exact:
                raise UsageError(
                    f"'{filters.plan}' matches {len(ids)} plans: " + ", ".join(sorted(ids)[:5]),
                    hint="give more characters of the id",
                )
            clauses.append("plan_id = ?")
            args.append(exact[0] if exact else ids[0])
        if filters.stage:
            clauses.append(f"stage IN ({', '.join('?' * len(filters.stage))})")
            args += filters.stage
        if filters.model:
            clauses.append("(model LIKE ? ESCAPE '\\' OR model_path LIKE ? ESCAPE '\\')")
            args += [f"%{_like(filters.model)}%"] * 2
        if filters.query and filters.query.strip():
            if self._fts:
                clauses.append("id IN (SELECT rowid FROM calls_fts WHERE calls_fts MATCH ?)")
                args.append(_fts_query(filters.query))
            else:
                terms = filters.query.split()
                for term in terms:
                    clauses.append(
                        "(request LIKE ? ESCAPE '\\' OR question LIKE ? ESCAPE '\\' OR answer LIKE ? ESCAPE '\\')"
                    )
                    args += [f"%{_like(term)}%"] * 3
        return " AND ".join(clauses), args

    def last_plan(self) -> str | None:
        con = self._read()
        if con is None:
            return None
        try:
            found = con.execute(
                "SELECT plan_id FROM calls WHERE plan_id IS NOT NULL ORDER BY id DESC LIMIT 1"
            ).fetchone()
            return found[0] if found else None
        finally:
            con.close()

    def stats(self) -> dict[str, Any]:
        con = self._read()
        if con is None:
            return {"plans": 0, "calls": 0, "bytes": 0}
        try:
            plans = con.execute("SELECT COUNT(*) FROM plans").fetchone()[0]
            calls = con.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            return {"plans": plans, "calls": calls, "bytes": _used_bytes(con)}
        finally:
            con.close()

    def prune(self, older_than: timedelta) -> tuple[int, int]:
        """Delete the plans and calls older than `older_than`; returns (plans, calls) deleted."""
        import sqlite3

        con = self._read()
        if con is None:
            return 0, 0
        cutoff = (datetime.now(timezone.utc) - older_than).isoformat(timespec="milliseconds")
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                calls = con.execute("DELETE FROM calls WHERE time < ?", (cutoff,)).rowcount
                plans = _drop_plans_before(con, cutoff)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            _shrink(con)
            return plans, calls
        except sqlite3.Error as exc:
            raise QiaError(f"the call log {self.path} cannot be pruned: {exc}") from None
        finally:
            con.close()


def _statements(script: str) -> list[str]:
    """The statements of a script (triggers keep their inner semicolons)."""
    out, buf = [], []
    for line in script.strip().splitlines():
        buf.append(line)
        text = "\n".join(buf).strip()
        if text.endswith(";") and (not text.upper().startswith("CREATE TRIGGER") or text.upper().endswith("END;")):
            out.append(text)
            buf = []
    return out


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    return value


def _upsert_plan(con: sqlite3.Connection, plan: dict[str, Any]) -> None:
    con.execute(
        "INSERT INTO plans (id, time, request, prompt, negative_prompt, model, error) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET prompt = COALESCE(excluded.prompt, prompt), "
        "negative_prompt = COALESCE(excluded.negative_prompt, negative_prompt), "
        "model = COALESCE(excluded.model, model), error = COALESCE(excluded.error, error)",
        (
            plan["id"],
            plan.get("time") or now(),
            plan.get("request"),
            plan.get("prompt"),
            plan.get("negative_prompt"),
            plan.get("model"),
            plan.get("error"),
        ),
    )


def _drop_plans_before(con: sqlite3.Connection, cutoff: str) -> int:
    """Plans older than `cutoff` with no calls left, and their image links."""
    gone = con.execute(
        "DELETE FROM plans WHERE time < ? AND id NOT IN (SELECT plan_id FROM calls WHERE plan_id IS NOT NULL)",
        (cutoff,),
    ).rowcount
    con.execute("DELETE FROM images WHERE plan_id NOT IN (SELECT id FROM plans) AND time < ?", (cutoff,))
    return gone


def _used_bytes(con: sqlite3.Connection) -> int:
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    free = con.execute("PRAGMA freelist_count").fetchone()[0]
    size = con.execute("PRAGMA page_size").fetchone()[0]
    return (pages - free) * size


def _shrink(con: sqlite3.Connection) -> None:
    """Give the freed pages back to the file system (the log was made with auto_vacuum=INCREMENTAL)."""
    import sqlite3

    try:
        con.execute("PRAGMA incremental_vacuum").fetchall()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass  # another process is reading: the pages are reused all the same


def _row(con: sqlite3.Connection, row: tuple, table: str) -> dict[str, Any]:
    names = [d[1] for d in con.execute(f"PRAGMA table_info({table})")]
    return dict(zip(names, row))


def _call_row(row: dict[str, Any]) -> dict[str, Any]:
    if row.get("used") is not None:
        row["used"] = bool(row["used"])
    row["model"] = {
        "name": row.get("model"),
        "backend": row.pop("backend", None),
        "path": row.pop("model_path", None),
        "sha256": row.pop("model_sha256", None),
    }
    return row


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_prefix(text: str) -> str:
    return _like(text.strip()) + "%"


def _fts_query(text: str) -> str:
    """The user's words as an FTS5 query: each word quoted (no operators), all of them required."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in text.split())


def open_log(settings: Any, *, enabled: bool = True, on_warning: Callable[[str], None] | None = None) -> CallLog | None:
    """The call log the settings ask for (None when logging is off or `enabled` is False)."""
    if not enabled or not getattr(settings, "logs", True):
        return None
    return CallLog(max_mb=getattr(settings, "logs_max_mb", DEFAULT_MAX_MB), on_warning=on_warning)
