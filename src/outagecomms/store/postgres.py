"""The PostgreSQL engine: one ledger for several senders on several machines.

Claims lock the rows they take with ``FOR UPDATE SKIP LOCKED`` (a sender never waits for
another's rows, and never takes them); a partial index keeps pending rows quick to find;
the tables are created under an advisory lock, so senders starting together do not trip
over each other. The password comes from the DSN of the environment, ``PGPASSWORD`` or
``~/.pgpass``; it is registered as a secret and never shown.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors

from ..errors import ConfigError, StoreError
from ..redact import redact, register_secret
from .base import SCHEMA, Store
from .records import Mode

# Pending rows are what a claim looks for; the index holds only them, so it stays small.
_EXTRA = """
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS person TEXT;
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (mode, announcement, channel)
    WHERE state = 'pending';
"""
# Any number both kinds of sender agree on: the key of the schema's advisory lock.
_SCHEMA_LOCK = 0x6F757461  # "outa"
_CONNECT_TIMEOUT = 10
# The pool reports every failed reconnection as a warning; a lost database is reported
# once, as the run's error (StoreError), instead.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
_WAIT_SECONDS = 5


def shown_dsn(url: str) -> str:
    """The DSN as messages show it: the password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://…"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _first_line(exc: BaseException) -> str:
    """A database error in one line, without secrets."""
    lines = [line.strip() for line in redact(str(exc)).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@functools.lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresStore(Store):
    """The store in a PostgreSQL database."""

    row_id = "id"
    claim_lock = " FOR UPDATE SKIP LOCKED"

    def __init__(
        self, url: str, mode: Mode = "live", *, read_only: bool = False, recover: bool = True
    ) -> None:
        with contextlib.suppress(ValueError):
            register_secret(urlsplit(url).password)
        super().__init__(shown_dsn(url), mode, read_only=read_only, recover=recover)
        with self._failing_as_config("cannot connect"):
            with psycopg.connect(url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT) as conn:
                if not read_only:
                    self._create_tables(conn)
            self._pool = psycopg_pool.ConnectionPool(
                url,
                min_size=1,
                max_size=4,
                kwargs={"autocommit": True, "connect_timeout": _CONNECT_TIMEOUT},
                # How long a statement waits for a connection when the database is gone.
                timeout=_WAIT_SECONDS,
                open=False,
            )
            self._pool.open(wait=True, timeout=_CONNECT_TIMEOUT)
        self._tx: psycopg.Connection | None = None
        self._tx_owner: int | None = None
        self._opened()

    @contextlib.contextmanager
    def _failing_as_config(self, doing: str) -> Iterator[None]:
        """Connection and permission problems while opening: bad configuration (exit 2)."""
        try:
            yield
        except pg_errors.InsufficientPrivilege as exc:
            raise ConfigError(
                f"ledger {self.name}: no permission to create or use its tables "
                f"({_first_line(exc)}); let the user own the database, or create the tables "
                "once as a user who may"
            ) from None
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise ConfigError(f"ledger {self.name}: {doing}: {_first_line(exc)}") from None

    def _create_tables(self, conn: psycopg.Connection) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in (SCHEMA.format(serial="id BIGSERIAL UNIQUE,") + _EXTRA).split(";"):
                if statement.strip():
                    conn.execute(statement)  # type: ignore[call-overload]

    def _close_connections(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def _failing_as_store_error(self) -> Iterator[None]:
        """The database lost during a run: one error naming the ledger (exit 1)."""
        try:
            yield
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise StoreError(f"ledger {self.name}: {_first_line(exc)}") from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            if self._tx is not None:
                yield
                return
            with (
                self._failing_as_store_error(),
                self._pool.connection() as conn,
                conn.transaction(),
            ):
                self._tx = conn
                try:
                    yield
                finally:
                    self._tx = None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        with self.lock, self._failing_as_store_error():
            if self._tx is not None:
                yield self._tx
            else:
                with self._pool.connection() as conn:
                    yield conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self._connection() as conn:
            cursor = conn.execute(_pg(sql), params)  # type: ignore[call-overload]
            return cursor.fetchall() if cursor.description else []

    def execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        if not rows:
            return 0
        with self._connection() as conn, conn.cursor() as cursor:
            cursor.executemany(_pg(sql), rows)  # type: ignore[call-overload]
            return max(cursor.rowcount, 0)

    def execute_count(self, sql: str, params: Sequence[object] = ()) -> int:
        with self._connection() as conn:
            return conn.execute(_pg(sql), params).rowcount  # type: ignore[call-overload]

    def execute_aside(self, sql: str, params: Sequence[object]) -> None:
        # A connection of the pool's own, outside ``self.lock``: a heartbeat never waits
        # for the sender's statements.
        with self._pool.connection() as conn:
            conn.execute(_pg(sql), params)  # type: ignore[call-overload]
