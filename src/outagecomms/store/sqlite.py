"""The SQLite engine: the embedded default, one file, safe for several senders on one machine."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from ..errors import ConfigError, StoreError
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


T = TypeVar("T")
# A statement waits for another process's write lock in steps of this long.
_BUSY_STEP_SECONDS = 0.25


class SqliteStore(Store):
    """The store in one SQLite file (WAL, so readers never wait for the sender)."""

    def __init__(
        self, path: Path, mode: Mode = "live", *, read_only: bool = False, recover: bool = True
    ) -> None:
        super().__init__(str(path), mode, read_only=read_only, recover=recover)
        self.path = path
        self._aside: sqlite3.Connection | None = None
        try:
            self._db = self._open_read_only() if read_only else self._open()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(_cannot_open(path, exc)) from None
        try:
            self._opened()
        except StoreError as exc:
            self._db.close()
            raise ConfigError(_cannot_open(path, exc.__cause__ or exc)) from None

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and not os.access(self.path, os.W_OK):
            # SQLite would open it read-only without a word and fail at the first write.
            raise sqlite3.OperationalError("attempt to write a readonly database")
        db = self._connect()
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL keeps every commit safe from a process crash; only power loss can undo one.
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA.format(serial="") + _LEGACY)
            _add_person_column(db)
        except BaseException:
            db.close()
            raise
        return db

    def _open_read_only(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            db.execute("SELECT 1 FROM deliveries LIMIT 1").fetchall()  # fails now, not later
        except BaseException:
            db.close()
            raise
        return db

    def _connect(self) -> sqlite3.Connection:
        # Autocommit: every statement is its own transaction unless we BEGIN explicitly.
        return sqlite3.connect(
            self.path, isolation_level=None, timeout=_BUSY_STEP_SECONDS, check_same_thread=False
        )

    def _close_connections(self) -> None:
        with self.lock:
            self._db.close()
            if self._aside is not None:
                self._aside.close()

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)``, waiting for another process's write lock in short steps, so
        that a shorter ``wait_at_most`` is heard within a quarter of a second (and
        signals are handled between the steps)."""
        started = time.monotonic()
        while True:
            try:
                return fn(*args)
            except sqlite3.OperationalError as exc:
                locked = "locked" in str(exc) or "busy" in str(exc)
                if not locked or time.monotonic() - started >= self.lock_wait_seconds:
                    raise StoreError(f"ledger {self.name}: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"ledger {self.name}: {exc}") from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            if self._db.in_transaction:
                yield
                return
            self._call(self._db.execute, "BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._call(self._db.execute, "COMMIT")

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self.lock:
            return self._call(lambda: self._db.execute(sql, params).fetchall())

    def execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        with self.lock:
            return self._call(lambda: self._db.executemany(sql, rows).rowcount)

    def execute_count(self, sql: str, params: Sequence[object] = ()) -> int:
        with self.lock:
            return self._call(lambda: self._db.execute(sql, params).rowcount)

    def execute_aside(self, sql: str, params: Sequence[object]) -> None:
        if self._aside is None:
            self._aside = self._connect()
        self._aside.execute(sql, params)


def _cannot_open(path: Path, exc: BaseException) -> str:
    """One line naming the ledger, what is wrong with it and what to do."""
    reason = str(exc) or type(exc).__name__
    if path.is_dir():
        hint = "it is a folder; point 'ledger:' at a file, e.g. sqlite:///.outagecomms/ledger.db"
    elif isinstance(exc, OSError):
        hint = f"its folder {path.parent} cannot be created ({exc.strerror or reason})"
    elif "not a database" in reason:
        hint = "the file is not an outagecomms ledger; move it away or point 'ledger:' elsewhere"
    elif "readonly" in reason or "read-only" in reason:
        hint = "the file is read-only; make it writable or point 'ledger:' elsewhere"
    elif "unable to open" in reason:
        hint = "check that its folder exists and is writable"
    else:
        hint = reason
    return f"ledger {path} cannot be opened: {hint}"


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
