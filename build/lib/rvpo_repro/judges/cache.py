"""On-disk judge cache: SQLite (stdlib) in WAL mode, safe to share between processes and runs.

Rows are keyed by the sha256 the judge computes from (back end, judge model, messages, sampling
settings, parse function name) and hold the raw reply text and the parsed value as JSON. Only
usable (non-missing) verdicts are written, so a failure is retried on the next run. WAL needs
the file on a local file system (not NFS); each operation opens its own short-lived connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
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


class JudgeCache:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")  # persistent: readers never block the writer
            con.execute(_SCHEMA)

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
        """{key: (raw, value)} for the keys present."""
        out: dict[str, tuple[str | None, Any]] = {}
        if not keys:
            return out
        with self._connect() as con:
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start : start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT key, raw, value FROM judgments WHERE key IN ({marks})"
                for key, raw, value in con.execute(sql, chunk):
                    out[key] = (raw, json.loads(value))
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
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany("INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?)", encoded)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        return len(encoded)

    def __len__(self) -> int:
        with self._connect() as con:
            return con.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

    def __repr__(self) -> str:
        return f"JudgeCache({str(self.path)!r})"
