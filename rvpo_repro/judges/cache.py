"""On-disk judge cache: SQLite (stdlib) in WAL mode, safe to share between processes and runs.

Rows are keyed by the sha256 the judge computes from (back end, judge model, messages, sampling
settings, parse function name) and hold the raw reply text and the parsed value as JSON. Only
usable (non-missing) verdicts are written, so a failure is retried on the next run. WAL needs
the file on a local file system (not NFS); each operation opens its own short-lived connection.

A cache file SQLite cannot read (truncated, overwritten, not a database) is never trusted: the
first operation that meets it logs one line naming it, renames it (with its -wal/-shm files) to
`<name>.unreadable-<UTC time>` and starts a fresh, empty cache in its place; the verdicts it
held are asked again. Rows are also validated one by one when read (`Judge.agrade`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("rvpo_repro.judges")

_CHUNK = 500  # keys per SELECT (SQLite's bound-parameter limit is 999 on old builds)
_BUSY_MS = 60_000  # wait this long for another process's write lock before failing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    key TEXT PRIMARY KEY,
    raw TEXT,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def _unreadable(exc: BaseException) -> bool:
    """A damaged or foreign file ("file is not a database", "database disk image is malformed"),
    not a busy one: OperationalError (locked, no such table ...) is left to the caller."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


class JudgeCache:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.set_aside: Path | None = None  # where an unreadable file went, if one was met
        self._guarded(self._open)

    def _open(self) -> None:
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block the writer
            con.execute(_SCHEMA)

    def _guarded(self, operation: Callable[[], Any]) -> Any:
        """`operation()`; when the file is unreadable, set it aside, start afresh and run it again."""
        try:
            return operation()
        except sqlite3.DatabaseError as exc:
            if not _unreadable(exc):
                raise
            self._set_aside(exc)
            self._open()
            return operation()

    def _set_aside(self, exc: BaseException) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.unreadable-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):  # another process may have moved it first
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        self.set_aside = aside
        log.warning(
            "judge cache %s is unreadable (%s: %s); moved it to %s and started an empty cache "
            "(its verdicts will be asked again)",
            self.path,
            type(exc).__name__,
            exc,
            aside.name,
        )

    @contextlib.contextmanager
    def _connect(self):
        con = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None)
        try:
            con.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
            con.execute("PRAGMA synchronous=NORMAL")
            yield con
        finally:
            con.close()

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str | None, Any]]:
        """{key: (raw, value)} for the keys present (a value that is not JSON is left out)."""
        if not keys:
            return {}
        return self._guarded(lambda: self._select(keys))

    def _select(self, keys: Sequence[str]) -> dict[str, tuple[str | None, Any]]:
        out: dict[str, tuple[str | None, Any]] = {}
        with self._connect() as con:
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start : start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT key, raw, value FROM judgments WHERE key IN ({marks})"
                for key, raw, value in con.execute(sql, chunk):
                    try:
                        out[key] = (raw, json.loads(value))
                    except (TypeError, ValueError):
                        log.debug("judge cache %s: row %s holds no JSON value; asked again", self.path, key)
        return out

    def put_many(self, rows: Iterable[tuple[str, str | None, Any]]) -> int:
        """Insert or replace (key, raw, value) rows in one transaction; returns rows written."""
        now = time.time()
        encoded = []
        for key, raw, value in rows:
            try:
                encoded.append((key, raw, json.dumps(value), now))
            except (TypeError, ValueError):
                log.debug("judge cache: value of type %s is not JSON; not cached", type(value).__name__)
        if not encoded:
            return 0
        self._guarded(lambda: self._insert(encoded))
        return len(encoded)

    def _insert(self, encoded: list[tuple]) -> None:
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany("INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?)", encoded)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def __len__(self) -> int:
        def count() -> int:
            with self._connect() as con:
                return con.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

        return self._guarded(count)

    def __repr__(self) -> str:
        return f"JudgeCache({str(self.path)!r})"
