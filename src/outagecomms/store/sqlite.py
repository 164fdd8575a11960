"""The SQLite engine: the embedded default, one file, safe for several senders on one machine."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from .base import SCHEMA, Store
from .records import Mode

# No secondary index holds ``state``: a message changes state twice (claim, finish), and
# every index holding it would be rewritten in both commits (measured with `python -m
# bench overhead`: the ledger cost per SMS fell from about 250 to 150 µs without them).
# Counts and failures read the primary key's (mode, announcement, channel) prefix.
_LEGACY = """
DROP INDEX IF EXISTS deliveries_by_incident;
DROP INDEX IF EXISTS deliveries_by_state;
"""


class SqliteStore(Store):
    """The store in one SQLite file (WAL, so readers never wait for the sender)."""

    def __init__(self, path: Path, mode: Mode = "live", *, read_only: bool = False) -> None:
        super().__init__(str(path), mode, read_only=read_only)
        self.path = path
        if read_only:
            self._db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
            with self.lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL keeps every commit safe from a process crash; only power loss can undo one.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(SCHEMA.format(serial="") + _LEGACY)
                _add_person_column(self._db)
        self._aside: sqlite3.Connection | None = None
        self._opened()

    def _connect(self) -> sqlite3.Connection:
        # Autocommit: every statement is its own transaction unless we BEGIN explicitly.
        return sqlite3.connect(
            self.path, isolation_level=None, timeout=60.0, check_same_thread=False
        )

    def _close_connections(self) -> None:
        with self.lock:
            self._db.close()
            if self._aside is not None:
                self._aside.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self.lock:
            return self._db.execute(sql, params).fetchall()

    def execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        with self.lock:
            return self._db.executemany(sql, rows).rowcount

    def execute_count(self, sql: str, params: Sequence[object] = ()) -> int:
        with self.lock:
            return self._db.execute(sql, params).rowcount

    def execute_aside(self, sql: str, params: Sequence[object]) -> None:
        if self._aside is None:
            self._aside = self._connect()
        self._aside.execute(sql, params)


def _add_person_column(db: sqlite3.Connection) -> None:
    """Give a ledger made before ``deliveries.person`` existed that column (its rows keep
    NULL: the report then counts their addresses as people)."""
    if any(row[1] == "person" for row in db.execute("PRAGMA table_info(deliveries)")):
        return
    try:
        db.execute("ALTER TABLE deliveries ADD COLUMN person TEXT")
    except sqlite3.OperationalError as exc:  # another process added it a moment ago
        if "duplicate column" not in str(exc):
            raise
