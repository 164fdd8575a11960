"""The store: the ledger of deliveries and everything kept beside it, engine-independent.

Rules of the ledger (DESIGN §7, §17):

* a row is ``pending`` when planned, ``sending`` just before the provider
  call (committed first), then ``sent`` or ``failed``;
* ``sent``, ``delivered`` and ``skipped`` rows are never sent again;
* a ``sending`` row whose sender's lease expired (a crash, ``kill -9``, a lost
  database) becomes ``unknown``: the provider may or may not have taken it, so
  it is only sent again when the operator asks (``--retry-unknown``);
* claiming rows is one atomic UPDATE (with ``FOR UPDATE SKIP LOCKED`` where the
  engine has it), so two senders never both send the same row.

Sandbox runs write under ``mode = 'sandbox'``, so a rehearsal is visible in
``outagecomms ledger`` but never counts as a real delivery.

All SQL lives here, written once with ``?`` placeholders; an engine (``sqlite.py``,
``postgres.py``) only connects, runs statements and groups them into transactions.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import ClassVar

from ..models import Outcome
from ..redact import redact
from .lease import Heartbeat, expired_before, lease_seconds, new_owner
from .records import (
    STATES,
    AnnouncementRecord,
    Mode,
    PausedCampaign,
    Row,
    Suppression,
    now,
)

# The tables of both engines. ``{serial}`` is the engine's row-id column (SQLite has rowid).
# Times are TEXT in the format of ``now()``, so both engines hand back the same strings.
SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    {serial}
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
    -- who the recipient is, whatever the channel (the audience row's email, else the
    -- address): the report's reach counts people, not addresses. NULL for broadcasts.
    person       TEXT,
    PRIMARY KEY (mode, announcement, channel, recipient)
);
CREATE INDEX IF NOT EXISTS deliveries_by_incident_channel ON deliveries (incident, channel);
CREATE INDEX IF NOT EXISTS deliveries_sending ON deliveries (owner) WHERE state = 'sending';
CREATE INDEX IF NOT EXISTS deliveries_by_provider_id ON deliveries (provider_id)
    WHERE provider_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_by_recipient ON deliveries (recipient);
CREATE TABLE IF NOT EXISTS announcements (
    mode          TEXT NOT NULL,
    key           TEXT NOT NULL,
    incident      TEXT NOT NULL,
    title         TEXT NOT NULL,
    status        TEXT NOT NULL,
    severity      TEXT NOT NULL,
    summary       TEXT NOT NULL,
    details       TEXT,
    started_at    TEXT NOT NULL,
    eta           TEXT,
    update_name   TEXT,
    affected      TEXT NOT NULL,
    content       TEXT NOT NULL,
    first_sent_at TEXT,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (mode, key)
);
CREATE INDEX IF NOT EXISTS announcements_by_incident ON announcements (incident);
CREATE TABLE IF NOT EXISTS suppressions (
    address    TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    source     TEXT NOT NULL,
    reason     TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    {serial}
    announcement TEXT NOT NULL,
    channel      TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    event        TEXT NOT NULL,
    detail       TEXT,
    at           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_by_recipient ON receipts (recipient);
CREATE TABLE IF NOT EXISTS webhook_events (
    event_id TEXT PRIMARY KEY,
    seen_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS paused_campaigns (
    incident    TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    send_at     TEXT,
    paused_at   TEXT NOT NULL,
    resumed_at  TEXT,
    PRIMARY KEY (incident, campaign_id)
);
CREATE TABLE IF NOT EXISTS leases (
    owner        TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
"""

#: Parameters per statement chunk (SQLite allows 32766 per statement).
CHUNK = 900
#: Rows read per page when a listing is streamed.
_PAGE = 5000
_INTERRUPTED = "interrupted while sending: the provider may or may not have it"
_ROW_COLUMNS = (
    "announcement, channel, recipient, state, provider, provider_id, error, attempts,"
    " created_at, updated_at, sent_at, incident, mode"
)
_ANNOUNCEMENT_COLUMNS = (
    "key, incident, title, status, severity, summary, details, started_at, eta, update_name,"
    " affected, content, first_sent_at, mode"
)
#: Receipt rules: the states a receipt may move a row from.
_RECEIPT_FROM: dict[str, tuple[str, ...]] = {
    "delivered": ("sent", "unknown", "sending", "undelivered"),
    "undelivered": ("sent", "unknown", "sending", "undelivered"),
}


#: States a row may be skipped from: never sent (or caught mid-claim).
SKIPPABLE = ("pending", "failed", "sending")


def marks(count: int) -> str:
    return ",".join("?" * count)


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fold(address: str) -> str:
    """An address as the store compares it: emails lower-cased, phones (E.164) as they are."""
    return address.strip().lower() if "@" in address else address.strip()


class Store(abc.ABC):
    """The ledger and its companion tables for one mode (live or sandbox).

    One instance per process, safe to share across its threads (one lock orders
    its statements). Use as a context manager, or call ``close``.
    """

    #: The engine's row id column, and what its claim sub-select appends to lock rows.
    row_id: ClassVar[str] = "rowid"
    claim_lock: ClassVar[str] = ""

    def __init__(
        self, name: str, mode: Mode, *, read_only: bool = False, recover: bool = True
    ) -> None:
        #: The ledger as error messages name it (a path, or a DSN with its password hidden).
        self.name = name
        self.mode: Mode = mode
        self.read_only = read_only
        self._recover = recover and not read_only
        self.owner = new_owner()
        self.lease_seconds = lease_seconds()
        self.lock = threading.RLock()
        self._heartbeat: Heartbeat | None = None
        #: ``sending`` rows of expired leases that opening this store turned ``unknown``.
        self.recovered = 0
        #: How long one statement may wait for a lock another process holds.
        self.lock_wait_seconds = 60.0

    def wait_at_most(self, seconds: float) -> None:
        """Shorten the lock wait of every statement, the waiting ones included (an
        interrupted run keeps its promise to stop soon); a statement that waited this
        long raises ``StoreError``."""
        self.lock_wait_seconds = min(self.lock_wait_seconds, seconds)

    def _opened(self) -> None:
        """Called by the engine once connected and the tables exist."""
        if self._recover:
            self.recovered = self.recover_crashed()

    # --- what an engine provides ------------------------------------------------

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Run one statement (``?`` placeholders) in the current transaction, or alone;
        the rows it returns."""

    @abc.abstractmethod
    def execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        """Run one statement for each of ``rows``; the number of rows it changed."""

    @abc.abstractmethod
    def execute_count(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Group several statements into one transaction; nested uses join the outer one.

        Writes inside wait for (or take) the write lock at once, so a second sender
        waits instead of failing half-way."""

    @abc.abstractmethod
    def execute_aside(self, sql: str, params: Sequence[object]) -> None:
        """Run one statement on a connection of its own (for the heartbeat thread)."""

    @abc.abstractmethod
    def _close_connections(self) -> None: ...

    # --- life cycle ---------------------------------------------------------------

    def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
            with contextlib.suppress(Exception):  # an expired lease is harmless
                self.execute("DELETE FROM leases WHERE owner=?", (self.owner,))
        self._close_connections()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- leases ---------------------------------------------------------------------

    def _hold_lease(self) -> None:
        """Start this sender's lease (before its first claim) and its heartbeat."""
        if self._heartbeat is not None:
            return
        self._beat(self.execute)
        interval = max(0.1, min(5.0, self.lease_seconds / 6))
        self._heartbeat = Heartbeat(lambda: self._beat(self.execute_aside), interval)
        self._heartbeat.start()

    def _beat(self, run: object) -> None:
        stamp = now()
        run(  # type: ignore[operator]
            "INSERT INTO leases (owner, host, pid, started_at, heartbeat_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT (owner) DO UPDATE SET heartbeat_at=excluded.heartbeat_at",
            (self.owner, socket.gethostname(), os.getpid(), stamp, stamp),
        )

    def recover_crashed(self) -> int:
        """Turn ``sending`` rows whose sender's lease expired into ``unknown``; how many."""
        cutoff = expired_before(self.lease_seconds)
        stale = (
            "state='sending' AND (owner IS NULL OR owner NOT IN"
            " (SELECT owner FROM leases WHERE heartbeat_at >= ?))"
        )
        # A read first: opening a store that has nothing to recover never waits for a lock.
        if not self.execute(f"SELECT 1 FROM deliveries WHERE {stale} LIMIT 1", (cutoff,)):
            return 0
        with self.transaction():
            changed = self.execute_count(
                f"UPDATE deliveries SET state='unknown', owner=NULL, updated_at=?, error=?"
                f" WHERE {stale}",
                (now(), _INTERRUPTED, cutoff),
            )
            self.execute("DELETE FROM leases WHERE heartbeat_at < ?", (cutoff,))
        return changed

    # --- planning and claiming -------------------------------------------------

    def add_pending(
        self,
        announcement: str,
        incident: str,
        channel: str,
        recipients: Sequence[str],
        persons: Sequence[str | None] | None = None,
    ) -> None:
        """Record planned deliveries; rows that already exist keep their state.

        ``persons`` (one per recipient) names who each recipient is, for the report's reach.
        """
        stamp = now()
        who = persons if persons is not None else [None] * len(recipients)
        rows = [
            (self.mode, announcement, incident, channel, r, "pending", stamp, stamp, person)
            for r, person in zip(recipients, who, strict=True)
        ]
        with self.transaction():
            self.execute_many(
                "INSERT INTO deliveries (mode, announcement, incident, channel, recipient, state,"
                " created_at, updated_at, person) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT DO NOTHING",
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

        One UPDATE per chunk; rows another sender holds are skipped, never waited for:
        of two senders claiming the same row, exactly one wins.
        """
        self._hold_lease()
        states = ("pending", "failed", "unknown") if retry_unknown else ("pending", "failed")
        claimed: list[str] = []
        stamp = now()
        for chunk in chunks(recipients):
            sql = (
                "UPDATE deliveries SET state='sending', owner=?, attempts=attempts+1,"
                f" updated_at=? WHERE {self.row_id} IN (SELECT {self.row_id} FROM deliveries"
                " WHERE mode=? AND announcement=? AND channel=?"
                f" AND state IN ({marks(len(states))})"
                f" AND recipient IN ({marks(len(chunk))}){self.claim_lock}) RETURNING recipient"
            )
            params = (self.owner, stamp, self.mode, announcement, channel, *states, *chunk)
            # One statement is atomic by itself: no transaction around it (on PostgreSQL
            # that would be two more round trips per claim).
            got = {row[0] for row in self.execute(sql, params)}
            claimed += [r for r in chunk if r in got]  # in the order asked for
        return claimed

    def add_attempt(self, announcement: str, channel: str, recipients: Sequence[str]) -> None:
        """Count one more attempt for rows this sender holds in ``sending`` (a retry)."""
        self._update_held(announcement, channel, recipients, "attempts=attempts+1")

    def release(self, announcement: str, channel: str, recipients: Sequence[str]) -> None:
        """Put rows this sender holds but did not send back to ``pending``."""
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
        with self.transaction():
            for chunk in chunks(recipients):
                self.execute(
                    f"UPDATE deliveries SET {assignment}, updated_at=? WHERE mode=?"
                    " AND announcement=? AND channel=? AND state='sending' AND owner=?"
                    f" AND recipient IN ({marks(len(chunk))})",
                    (*extra, stamp, self.mode, announcement, channel, self.owner, *chunk),
                )

    def finish(
        self, announcement: str, channel: str, results: Sequence[tuple[str, Outcome]]
    ) -> None:
        """Record the outcome of rows this sender sent."""
        stamp = now()
        rows = []
        for recipient, outcome in results:
            error = outcome.error_text
            rows.append(
                (
                    outcome.state,
                    outcome.provider,
                    outcome.provider_id,
                    None if error is None else redact(error)[:1000],
                    stamp,
                    stamp if outcome.state == "sent" else None,
                    self.mode,
                    announcement,
                    channel,
                    recipient,
                )
            )
        with self.transaction():
            self.execute_many(
                "UPDATE deliveries SET state=?, provider=?, provider_id=?, error=?, owner=NULL,"
                " updated_at=?, sent_at=COALESCE(?, sent_at)"
                " WHERE mode=? AND announcement=? AND channel=? AND recipient=?",
                rows,
            )

    def skip(self, announcement: str, channel: str, reasons: Sequence[tuple[str, str]]) -> None:
        """Mark planned rows ``skipped`` with their reason (e.g. suppressed since planning).

        Only rows that were never sent change: a ``sent`` row stays what it is."""
        self._set_with_reason(announcement, channel, reasons, "skipped", SKIPPABLE)

    def add_skipped(
        self, announcement: str, incident: str, channel: str, reasons: Sequence[tuple[str, str]]
    ) -> None:
        """Record audience rows the channel skips (``skipped``, the reason in ``error``);
        an address that already has a row keeps it (it was planned from another row)."""
        stamp = now()
        rows = [
            (self.mode, announcement, incident, channel, r, why, stamp, stamp) for r, why in reasons
        ]
        with self.transaction():
            self.execute_many(
                "INSERT INTO deliveries (mode, announcement, incident, channel, recipient, state,"
                " error, created_at, updated_at) VALUES (?,?,?,?,?,'skipped',?,?,?)"
                " ON CONFLICT DO NOTHING",
                rows,
            )

    def replan(self, announcement: str, channel: str, recipients: Sequence[str]) -> None:
        """Skipped rows of addresses that may be sent now (opted in, no longer suppressed)
        become ``pending`` again."""
        stamp = now()
        with self.transaction():
            for chunk in chunks(recipients):
                self.execute(
                    "UPDATE deliveries SET state='pending', error=NULL, updated_at=?"
                    " WHERE mode=? AND announcement=? AND channel=? AND state='skipped'"
                    f" AND recipient IN ({marks(len(chunk))})",
                    (stamp, self.mode, announcement, channel, *chunk),
                )

    def defer(self, announcement: str, channel: str, reasons: Sequence[tuple[str, str]]) -> None:
        """Leave planned rows ``pending`` with the reason they wait (quiet hours); a
        ``failed`` row waits too. The next send that may send them does."""
        self._set_with_reason(announcement, channel, reasons, "pending", ("pending", "failed"))

    def _set_with_reason(
        self,
        announcement: str,
        channel: str,
        reasons: Sequence[tuple[str, str]],
        state: str,
        from_states: Sequence[str],
    ) -> None:
        """Rows in one of ``from_states`` become ``state``, each with its reason in ``error``."""
        stamp = now()
        with self.transaction():
            self.execute_many(
                "UPDATE deliveries SET state=?, error=?, owner=NULL, updated_at=?"
                " WHERE mode=? AND announcement=? AND channel=? AND recipient=?"
                f" AND state IN ({marks(len(from_states))})",
                [
                    (state, why, stamp, self.mode, announcement, channel, r, *from_states)
                    for r, why in reasons
                ],
            )

    # --- reading deliveries ------------------------------------------------------

    def counts(self, announcement: str, channel: str) -> dict[str, int]:
        """Rows of one announcement and channel by state (every state present)."""
        result = dict.fromkeys(STATES, 0)
        for state, count in self.execute(
            "SELECT state, COUNT(*) FROM deliveries WHERE mode=? AND announcement=?"
            " AND channel=? GROUP BY state",
            (self.mode, announcement, channel),
        ):
            result[state] = int(count)
        return result

    def states(self, announcement: str, channel: str, recipients: Sequence[str]) -> dict[str, str]:
        """The current state of each of ``recipients`` that has a row."""
        found: dict[str, str] = {}
        for chunk in chunks(recipients):
            found.update(
                self.execute(
                    "SELECT recipient, state FROM deliveries WHERE mode=? AND announcement=?"
                    f" AND channel=? AND recipient IN ({marks(len(chunk))})",
                    (self.mode, announcement, channel, *chunk),
                )
            )
        return found

    def latest_post(self, incident: str, channel: str) -> str | None:
        """The provider id of the incident's latest post on a channel (for a reply thread)."""
        rows = self.execute(
            "SELECT provider_id FROM deliveries WHERE mode=? AND incident=? AND channel=?"
            " AND state IN ('sent','delivered') AND provider_id IS NOT NULL"
            " ORDER BY sent_at DESC LIMIT 1",
            (self.mode, incident, channel),
        )
        return rows[0][0] if rows else None

    def failures(self, announcement: str, channel: str, limit: int = 1000) -> list[Row]:
        """Rows of one announcement and channel that are ``failed`` or ``unknown``."""
        rows = self.execute(
            f"SELECT {_ROW_COLUMNS} FROM deliveries WHERE mode=? AND announcement=?"
            " AND channel=? AND state IN ('failed','unknown') ORDER BY updated_at LIMIT ?",
            (self.mode, announcement, channel, limit),
        )
        return [_row(r) for r in rows]

    def rows(self, incident: str | None = None, *, all_modes: bool = True) -> Iterator[Row]:
        """Every row (of one incident) in the order they were planned, read page by page."""
        clauses, params = [], []
        if incident is not None:
            clauses.append("incident=?")
            params.append(incident)
        if not all_modes:
            clauses.append("mode=?")
            params.append(self.mode)
        after: object = -1
        while True:
            where = " AND ".join([*clauses, f"{self.row_id} > ?"])
            page = self.execute(
                f"SELECT {_ROW_COLUMNS}, {self.row_id} FROM deliveries WHERE {where}"
                f" ORDER BY {self.row_id} LIMIT {_PAGE}",
                (*params, after),
            )
            for r in page:
                yield _row(r)
            if len(page) < _PAGE:
                return
            after = page[-1][-1]

    def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """A read-only query for reports (``?`` placeholders, portable SQL); its rows."""
        return [tuple(r) for r in self.execute(sql, params)]

    # --- announcements ------------------------------------------------------------

    def record_announcement(self, rec: AnnouncementRecord) -> None:
        """Remember what an announcement says, the first time it is planned (never overwrites)."""
        self.execute(
            f"INSERT INTO announcements ({_ANNOUNCEMENT_COLUMNS}, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (
                rec.key,
                rec.incident,
                rec.title,
                rec.status,
                rec.severity,
                rec.summary,
                rec.details,
                rec.started_at,
                rec.eta,
                rec.update,
                json.dumps(rec.affected, ensure_ascii=False),
                rec.content,
                rec.first_sent_at,
                self.mode,
                now(),
            ),
        )

    def mark_announcement_sent(self, key: str, at: str) -> None:
        """Set when the announcement's first message went out (once; later calls keep it)."""
        self.execute(
            "UPDATE announcements SET first_sent_at=? WHERE mode=? AND key=?"
            " AND first_sent_at IS NULL",
            (at, self.mode, key),
        )

    def announcement(self, key: str) -> AnnouncementRecord | None:
        """The announcement recorded under ``key`` in this store's mode."""
        rows = self.execute(
            f"SELECT {_ANNOUNCEMENT_COLUMNS} FROM announcements WHERE mode=? AND key=?",
            (self.mode, key),
        )
        return _announcement(rows[0]) if rows else None

    def announcements(self, incident: str | None = None) -> list[AnnouncementRecord]:
        """Announcements of this mode (of one incident), oldest first."""
        where, params = "mode=?", [self.mode]
        if incident is not None:
            where, params = where + " AND incident=?", [*params, incident]
        rows = self.execute(
            f"SELECT {_ANNOUNCEMENT_COLUMNS} FROM announcements WHERE {where}"
            " ORDER BY created_at, key",
            params,
        )
        return [_announcement(r) for r in rows]

    # --- suppressions -------------------------------------------------------------

    def add_suppressions(self, items: Iterable[tuple[str, str, str, str | None]]) -> int:
        """Add ``(address, kind, source, reason)`` items; how many were new.

        An address already suppressed keeps its first source and reason."""
        stamp = now()
        rows = [(fold(a), kind, source, reason, stamp) for a, kind, source, reason in items]
        with self.transaction():
            return self.execute_many(
                "INSERT INTO suppressions (address, kind, source, reason, created_at)"
                " VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                rows,
            )

    def remove_suppressions(self, addresses: Iterable[str]) -> int:
        """Lift suppressions; how many there were."""
        folded = [fold(a) for a in addresses]
        removed = 0
        with self.transaction():
            for chunk in chunks(folded):
                removed += self.execute_count(
                    f"DELETE FROM suppressions WHERE address IN ({marks(len(chunk))})", chunk
                )
        return removed

    def suppressions(self) -> Iterator[Suppression]:
        """Every suppressed address, oldest first."""
        rows = self.execute(
            "SELECT address, kind, source, reason, created_at FROM suppressions"
            " ORDER BY created_at, address"
        )
        return (Suppression(*r) for r in rows)

    def suppressed(self, addresses: Sequence[str]) -> dict[str, Suppression]:
        """Those of ``addresses`` that are suppressed, keyed as given."""
        by_fold: dict[str, list[str]] = {}
        for address in addresses:
            by_fold.setdefault(fold(address), []).append(address)
        found: dict[str, Suppression] = {}
        for chunk in chunks(list(by_fold)):
            for r in self.execute(
                "SELECT address, kind, source, reason, created_at FROM suppressions"
                f" WHERE address IN ({marks(len(chunk))})",
                chunk,
            ):
                for given in by_fold[r[0]]:
                    found[given] = Suppression(*r)
        return found

    # --- receipts and webhooks ------------------------------------------------------

    def apply_receipt(
        self,
        *,
        provider_id: str | None = None,
        row: tuple[str, str, str] | None = None,
        state: str,
        error: str | None,
        event: str,
        at: str,
    ) -> bool:
        """Apply a provider's delivery receipt to live rows; True when a row was found.

        ``delivered`` never changes again; ``undelivered`` may still become ``delivered``
        (a late receipt wins); ``pending``/``failed``/``skipped`` rows are left alone.
        Every receipt for a row found is logged for ``why``."""
        if state not in _RECEIPT_FROM:
            raise ValueError(f"a receipt's state is delivered or undelivered, not {state!r}")
        if row is not None:
            where, params = "announcement=? AND channel=? AND recipient=?", list(row)
        elif provider_id is not None:
            where, params = "provider_id=?", [provider_id]
        else:
            raise ValueError("apply_receipt needs provider_id or row")
        detail = None if error is None else redact(error)[:1000]
        with self.transaction():
            found = self.execute(
                f"SELECT announcement, channel, recipient FROM deliveries WHERE mode='live'"
                f" AND {where}",
                params,
            )
            if not found:
                return False
            allowed = _RECEIPT_FROM[state]
            self.execute(
                f"UPDATE deliveries SET state=?, error=COALESCE(?, error), updated_at=?"
                f" WHERE mode='live' AND {where} AND state IN ({marks(len(allowed))})",
                (state, detail, at, *params, *allowed),
            )
            self.execute_many(
                "INSERT INTO receipts (announcement, channel, recipient, event, detail, at)"
                " VALUES (?,?,?,?,?,?)",
                [(a, c, r, event, detail or state, at) for a, c, r in found],
            )
        return True

    def receipts(self, recipient: str) -> list[dict[str, object]]:
        """Every receipt logged for an address, oldest first."""
        rows = self.execute(
            "SELECT announcement, channel, event, detail, at FROM receipts"
            f" WHERE recipient IN ({marks(2)}) ORDER BY at",
            (recipient, fold(recipient)),
        )
        keys = ("announcement", "channel", "event", "detail", "at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def first_time_event(self, event_id: str) -> bool:
        """True the first time a webhook event id is seen (providers deliver some twice)."""
        return (
            self.execute_count(
                "INSERT INTO webhook_events (event_id, seen_at) VALUES (?,?)"
                " ON CONFLICT DO NOTHING",
                (event_id, now()),
            )
            == 1
        )

    # --- paused campaigns -------------------------------------------------------------

    def record_paused(
        self, incident: str, campaign_id: str, name: str, send_at: str | None
    ) -> None:
        """Remember a campaign this incident unscheduled (paused again: a fresh record)."""
        self.execute(
            "INSERT INTO paused_campaigns (incident, campaign_id, name, send_at, paused_at)"
            " VALUES (?,?,?,?,?) ON CONFLICT (incident, campaign_id) DO UPDATE SET"
            " name=excluded.name, send_at=excluded.send_at, paused_at=excluded.paused_at,"
            " resumed_at=NULL",
            (incident, campaign_id, name, send_at, now()),
        )

    def paused(self, incident: str) -> list[PausedCampaign]:
        """The campaigns this incident paused, in the order it paused them."""
        rows = self.execute(
            "SELECT campaign_id, name, send_at, paused_at, resumed_at FROM paused_campaigns"
            " WHERE incident=? ORDER BY paused_at, campaign_id",
            (incident,),
        )
        return [PausedCampaign(*r) for r in rows]

    def mark_resumed(self, incident: str, campaign_id: str, at: str) -> None:
        self.execute(
            "UPDATE paused_campaigns SET resumed_at=? WHERE incident=? AND campaign_id=?",
            (at, incident, campaign_id),
        )


def _row(r: Sequence[object]) -> Row:
    return Row(*r[:12], sandbox=r[12] == "sandbox")  # type: ignore[arg-type]


def _announcement(r: Sequence[object]) -> AnnouncementRecord:
    values = list(r)
    values[10] = json.loads(str(values[10]))
    return AnnouncementRecord(*values[:13], sandbox=values[13] == "sandbox")  # type: ignore[arg-type]
