"""The delivery ledger: one row per (announcement, channel, recipient), in a SQLite file.

Rules (DESIGN §7):

* a row is ``pending`` when planned, ``sending`` just before the provider
  call (committed first), then ``sent`` or ``failed``;
* ``sent``, ``delivered`` and ``skipped`` rows are never sent again;
* a ``sending`` row whose process is gone (a crash, ``kill -9``) becomes
  ``unknown``: the provider may or may not have taken it, so it is only
  sent again when the operator asks (``--retry-unknown``);
* claiming a row is one atomic UPDATE, so two ``send`` processes on the
  same machine never both send the same row.

Sandbox runs write to the same file under ``mode = 'sandbox'``, so a
rehearsal is visible in ``outagecomms ledger`` but never counts as a real delivery.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from .models import Outcome
from .redact import redact

State = Literal[
    "pending", "sending", "sent", "failed", "skipped", "unknown", "delivered", "undelivered"
]
STATES: tuple[State, ...] = (
    "pending",
    "sending",
    "sent",
    "failed",
    "skipped",
    "unknown",
    "delivered",
    "undelivered",
)
DONE_STATES: frozenset[str] = frozenset({"sent", "delivered", "skipped"})
Mode = Literal["live", "sandbox"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    mode         TEXT NOT NULL,
    announcement TEXT NOT NULL,
    incident     TEXT NOT NULL,
    channel      TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    state        TEXT NOT NULL,
    provider     TEXT,
    provider_id  TEXT,
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    owner        TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    sent_at      TEXT,
    PRIMARY KEY (mode, announcement, channel, recipient)
);
-- No secondary index holds ``state``: a message changes state twice (claim, finish), and
-- every index holding it would be rewritten in both commits (measured with `python -m
-- bench overhead`: the ledger cost per SMS fell from about 250 to 150 µs without them).
-- Counts and failures read the primary key's (mode, announcement, channel) prefix; crash
-- recovery has its partial index.
CREATE INDEX IF NOT EXISTS deliveries_by_incident_channel ON deliveries (incident, channel);
CREATE INDEX IF NOT EXISTS deliveries_sending ON deliveries (owner) WHERE state = 'sending';
-- The indexes of earlier versions, replaced by the two above.
DROP INDEX IF EXISTS deliveries_by_incident;
DROP INDEX IF EXISTS deliveries_by_state;
"""

# One chunk of SQL parameters; SQLite allows 32766 per statement.
_CHUNK = 900


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        # Another machine's row: we cannot tell, so we must not call it crashed.
        return host != socket.gethostname()
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class Row:
    """One ledger row as shown by ``outagecomms ledger``."""

    announcement: str
    channel: str
    recipient: str
    state: str
    provider: str | None
    provider_id: str | None
    error: str | None
    attempts: int
    created_at: str
    updated_at: str
    sent_at: str | None
    incident: str
    sandbox: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "announcement": self.announcement,
            "channel": self.channel,
            "recipient": self.recipient,
            "state": self.state,
            "provider_id": self.provider_id,
            "error": self.error,
            "attempts": self.attempts,
            "updated_at": self.updated_at,
            "provider": self.provider,
            "incident": self.incident,
            "sandbox": self.sandbox,
            "created_at": self.created_at,
            "sent_at": self.sent_at,
        }


class Ledger:
    """The ledger of one SQLite file, for one process (safe to share across its threads)."""

    def __init__(self, path: Path, mode: Mode = "live") -> None:
        self.path = path
        self.mode: Mode = mode
        self.owner = _this_process()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: every statement is its own transaction unless we BEGIN explicitly.
        self._db = sqlite3.connect(
            path, isolation_level=None, timeout=60.0, check_same_thread=False
        )
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL keeps every commit safe from a process crash; only power loss can undo one.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the writes of several calls into one transaction: one commit for all.

        The write lock is taken at once (``BEGIN IMMEDIATE``), so a second process
        waits for it instead of failing half-way. Nested uses join the outer one.
        """
        with self._lock:
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

    def _transaction(self, statements: Iterable[tuple[str, Sequence[object]]]) -> None:
        with self.transaction():
            for sql, params in statements:
                self._db.execute(sql, params)

    # --- planning and claiming -------------------------------------------------

    def add_pending(
        self, announcement: str, incident: str, channel: str, recipients: Sequence[str]
    ) -> None:
        """Record planned deliveries; rows that already exist keep their state."""
        stamp = now()
        rows = [
            (self.mode, announcement, incident, channel, r, "pending", stamp, stamp)
            for r in recipients
        ]
        with self.transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO deliveries (mode, announcement, incident, channel,"
                " recipient, state, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )

    def claim(
        self,
        announcement: str,
        channel: str,
        recipients: Sequence[str],
        *,
        retry_unknown: bool = False,
    ) -> list[str]:
        """Mark as ``sending`` those of ``recipients`` that may be sent; return them.

        One UPDATE per chunk: of two processes claiming the same row, exactly one wins.
        """
        states = ("pending", "failed", "unknown") if retry_unknown else ("pending", "failed")
        claimed: list[str] = []
        stamp = now()
        for start in range(0, len(recipients), _CHUNK):
            chunk = recipients[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = (
                "UPDATE deliveries SET state='sending', owner=?, attempts=attempts+1,"
                " updated_at=? WHERE mode=? AND announcement=? AND channel=?"
                f" AND state IN ({','.join('?' * len(states))}) AND recipient IN ({marks})"
                " RETURNING recipient"
            )
            params = (self.owner, stamp, self.mode, announcement, channel, *states, *chunk)
            with self.transaction():
                claimed += [row[0] for row in self._db.execute(sql, params).fetchall()]
        return claimed

    def add_attempt(self, announcement: str, channel: str, recipients: Sequence[str]) -> None:
        """Count one more attempt for rows this process holds in ``sending`` (a retry)."""
        self._update_held(announcement, channel, recipients, "attempts=attempts+1")

    def release(self, announcement: str, channel: str, recipients: Sequence[str]) -> None:
        """Put rows this process holds but did not send back to ``pending``."""
        self._update_held(announcement, channel, recipients, "state='pending', owner=NULL")

    def mark_unknown(
        self, announcement: str, channel: str, recipients: Sequence[str], why: str
    ) -> None:
        """Rows whose fate is unknown (interrupted mid-call): never re-sent without asking."""
        self._update_held(
            announcement, channel, recipients, "state='unknown', owner=NULL, error=?", (why,)
        )

    def _update_held(
        self,
        announcement: str,
        channel: str,
        recipients: Sequence[str],
        assignment: str,
        extra: tuple[object, ...] = (),
    ) -> None:
        stamp = now()
        statements = []
        for start in range(0, len(recipients), _CHUNK):
            chunk = recipients[start : start + _CHUNK]
            sql = (
                f"UPDATE deliveries SET {assignment}, updated_at=? WHERE mode=? AND announcement=?"
                f" AND channel=? AND state='sending' AND owner=?"
                f" AND recipient IN ({','.join('?' * len(chunk))})"
            )
            statements.append(
                (sql, (*extra, stamp, self.mode, announcement, channel, self.owner, *chunk))
            )
        self._transaction(statements)

    def finish(
        self, announcement: str, channel: str, results: Sequence[tuple[str, Outcome]]
    ) -> None:
        """Record the outcome of rows this process sent."""
        stamp = now()
        statements = []
        for recipient, outcome in results:
            error = outcome.error_text
            statements.append(
                (
                    "UPDATE deliveries SET state=?, provider=?, provider_id=?, error=?, owner=NULL,"
                    " updated_at=?, sent_at=CASE WHEN ?='sent' THEN ? ELSE sent_at END"
                    " WHERE mode=? AND announcement=? AND channel=? AND recipient=?",
                    (
                        outcome.state,
                        outcome.provider,
                        outcome.provider_id,
                        None if error is None else redact(error)[:1000],
                        stamp,
                        outcome.state,
                        stamp,
                        self.mode,
                        announcement,
                        channel,
                        recipient,
                    ),
                )
            )
        self._transaction(statements)

    def recover_crashed(self) -> int:
        """Turn ``sending`` rows of processes that no longer exist into ``unknown``."""
        with self._lock:
            owners = [
                row[0]
                for row in self._db.execute(
                    "SELECT DISTINCT owner FROM deliveries WHERE state='sending'"
                )
            ]
        dead = [o for o in owners if o is None or not _owner_alive(o)]
        changed = 0
        for owner in dead:
            with self._lock:
                cursor = self._db.execute(
                    "UPDATE deliveries SET state='unknown', owner=NULL, updated_at=?, error=?"
                    " WHERE state='sending' AND owner IS ?",
                    (
                        now(),
                        "interrupted while sending: the provider may or may not have it",
                        owner,
                    ),
                )
                changed += cursor.rowcount
        return changed

    # --- reading ---------------------------------------------------------------

    def counts(self, announcement: str, channel: str) -> dict[str, int]:
        """Rows of one announcement and channel by state (every state present)."""
        result = dict.fromkeys(STATES, 0)
        with self._lock:
            for state, count in self._db.execute(
                "SELECT state, COUNT(*) FROM deliveries WHERE mode=? AND announcement=?"
                " AND channel=? GROUP BY state",
                (self.mode, announcement, channel),
            ):
                result[state] = count
        return result

    def states(self, announcement: str, channel: str, recipients: Sequence[str]) -> dict[str, str]:
        """The current state of each of ``recipients`` that has a row."""
        found: dict[str, str] = {}
        for start in range(0, len(recipients), _CHUNK):
            chunk = recipients[start : start + _CHUNK]
            with self._lock:
                found.update(
                    self._db.execute(
                        "SELECT recipient, state FROM deliveries WHERE mode=? AND announcement=?"
                        f" AND channel=? AND recipient IN ({','.join('?' * len(chunk))})",
                        (self.mode, announcement, channel, *chunk),
                    ).fetchall()
                )
        return found

    def latest_post(self, incident: str, channel: str) -> str | None:
        """The provider id of the incident's latest post on a channel (for a reply thread)."""
        with self._lock:
            row = self._db.execute(
                "SELECT provider_id FROM deliveries WHERE mode=? AND incident=? AND channel=?"
                " AND state IN ('sent','delivered') AND provider_id IS NOT NULL"
                " ORDER BY sent_at DESC LIMIT 1",
                (self.mode, incident, channel),
            ).fetchone()
        return row[0] if row else None

    def failures(self, announcement: str, channel: str, limit: int = 1000) -> list[Row]:
        """Rows of one announcement and channel that are ``failed`` or ``unknown``."""
        return list(
            self._select(
                "WHERE mode=? AND announcement=? AND channel=? AND state IN ('failed','unknown')"
                " ORDER BY updated_at LIMIT ?",
                (self.mode, announcement, channel, limit),
            )
        )

    def rows(self, incident: str | None = None, *, all_modes: bool = True) -> Iterator[Row]:
        """Every row (of one incident), oldest first."""
        clauses, params = [], []
        if incident is not None:
            clauses.append("incident=?")
            params.append(incident)
        if not all_modes:
            clauses.append("mode=?")
            params.append(self.mode)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._select(f"{where} ORDER BY created_at, channel, recipient", tuple(params))

    def _select(self, tail: str, params: tuple[object, ...]) -> Iterator[Row]:
        sql = (
            "SELECT announcement, channel, recipient, state, provider, provider_id, error,"
            " attempts, created_at, updated_at, sent_at, incident, mode FROM deliveries " + tail
        )
        with self._lock:
            fetched = self._db.execute(sql, params).fetchall()
        for r in fetched:
            yield Row(*r[:12], sandbox=r[12] == "sandbox")

    def report(self, incident: str) -> list[ReportLine]:
        """Per announcement and channel of an incident: counts by state, carriers, timings."""
        with self._lock:
            fetched = self._db.execute(
                "SELECT mode, announcement, channel, state, COUNT(*), MIN(created_at),"
                " MAX(updated_at), GROUP_CONCAT(DISTINCT provider) FROM deliveries"
                " WHERE incident=? GROUP BY mode, announcement, channel, state"
                " ORDER BY MIN(created_at)",
                (incident,),
            ).fetchall()
        lines: dict[tuple[str, str, str], ReportLine] = {}
        for mode, announcement, channel, state, count, first, last, providers in fetched:
            line = lines.setdefault(
                (mode, announcement, channel),
                ReportLine(announcement, channel, mode == "sandbox", first=first, last=last),
            )
            line.counts[state] = count
            line.first, line.last = min(line.first, first), max(line.last, last)
            for provider in (providers or "").split(","):
                if provider and provider not in line.providers:
                    line.providers.append(provider)
        return list(lines.values())


@dataclass(slots=True)
class ReportLine:
    """One announcement on one channel, summed up for ``outagecomms report``."""

    announcement: str
    channel: str
    sandbox: bool
    counts: dict[str, int] = field(default_factory=dict)
    providers: list[str] = field(default_factory=list)
    first: str = ""
    last: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def seconds(self) -> float:
        start = datetime.fromisoformat(self.first.replace("Z", "+00:00"))
        end = datetime.fromisoformat(self.last.replace("Z", "+00:00"))
        return (end - start).total_seconds()
