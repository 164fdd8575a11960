"""The impact report of one incident (DESIGN §14), computed where the rows are.

Every number is a SQL aggregate run through ``Store.fetch`` in SQL that SQLite
and PostgreSQL both understand, so a million-row incident is summed up by the
database and Python only ever holds a few rows per channel:

* counts by announcement, channel and state (skipped rows also by reason), with
  when each announcement's rows were first planned (the start of its first
  delivery attempt) and when its first and last messages went out, in one GROUP BY;
* the first, median and 95th-percentile time from that start to each message
  sent, by nearest rank (``ROW_NUMBER() OVER (PARTITION BY channel ORDER BY ...)``);
* reach: distinct people (``deliveries.person``, one audience row) with a message
  sent or delivered on any channel;
* opt-outs: suppressions created from the incident's start to 7 days after it was
  resolved, by source.

The two engines share no function that turns a time into seconds (SQLite has
``julianday``, PostgreSQL ``EXTRACT(EPOCH ...)``), so ``_timings`` reads them
from the fixed-width text the store writes (``YYYY-MM-DDTHH:MM:SS.ffffffZ``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from .errors import UnknownIncidentError

#: Opt-outs this long after the resolution still count as the incident's.
OPT_OUT_WINDOW = timedelta(days=7)
#: States of a message that went out (a receipt may have changed ``sent`` since).
SENT_STATES = ("sent", "delivered", "undelivered")
#: States of a message that reached someone, for ``reach``.
REACHED_STATES = ("sent", "delivered")


class ReadableStore(Protocol):
    """What the report needs of the store: portable read-only SQL."""

    def fetch(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...


@dataclass(slots=True)
class ChannelReport:
    """One channel's numbers over every announcement of the incident; its fields are the
    keys of the JSON (DESIGN §14), in order."""

    kind: str | None
    planned: int = 0
    sent: int = 0
    delivered: int = 0
    undelivered: int = 0
    failed: int = 0
    unknown: int = 0
    pending: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    first_sent_after_s: float | None = None
    p50_sent_after_s: float | None = None
    p95_sent_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class AnnouncementLine:
    key: str
    status: str
    update: str | None
    first_sent_at: str | None
    last_sent_at: str | None


@dataclass(frozen=True, slots=True)
class IncidentLine:
    id: str
    title: str | None
    severity: str | None
    started_at: str | None
    resolved_at: str | None


@dataclass(slots=True)
class Report:
    """The impact report; ``as_json()`` is exactly the object of DESIGN §14.

    ``timeline`` (messages sent per channel per time bucket, oldest first) is only
    filled when asked for (the html charts); it is not part of the JSON.
    """

    incident: IncidentLine
    announcements: list[AnnouncementLine]
    channels: dict[str, ChannelReport]
    reach: int
    opt_outs: dict[str, int]
    sandbox: bool = False
    timeline: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @property
    def opt_outs_total(self) -> int:
        return sum(self.opt_outs.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "incident": asdict(self.incident),
            "announcements": [asdict(a) for a in self.announcements],
            "channels": {name: asdict(c) for name, c in self.channels.items()},
            "reach": self.reach,
            "opt_outs": {"total": self.opt_outs_total, "by_source": dict(self.opt_outs)},
        }


# --- SQL helpers -------------------------------------------------------------------


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def store_time(moment: datetime) -> str:
    """A time in the store's fixed-width text form, to compare with its columns."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- building the report -------------------------------------------------------------


def build_report(
    store: ReadableStore,
    incident_id: str,
    *,
    sandbox: bool = False,
    kinds: Mapping[str, str] | None = None,
    timeline: bool = False,
) -> Report:
    """The report of ``incident_id`` from the store's live rows (sandbox rows with
    ``sandbox=True``); ``kinds`` maps channel names to their kind (from the config).

    Raises ``UnknownIncidentError`` when the store holds nothing of the incident.
    """
    mode = "sandbox" if sandbox else "live"
    scope = (mode, incident_id)
    announced = store.fetch(
        "SELECT key, status, update_name, title, severity, started_at, first_sent_at"
        " FROM announcements WHERE mode=? AND incident=? ORDER BY created_at, key",
        scope,
    )
    groups = [_Group(*row) for row in store.fetch(_GROUPS_SQL, (*SENT_STATES, *scope))]
    if not announced and not groups:
        raise UnknownIncidentError(_unknown_message(store, incident_id, mode))
    waves = _waves(groups)
    announcements = _announcements(announced, waves)
    incident = _incident_line(incident_id, announced)
    channels = _channel_counts(store, scope, groups, kinds or {})
    _timings(store, scope, channels, waves, _timed(groups))
    report = Report(
        incident=incident,
        announcements=announcements,
        channels=channels,
        reach=_reach(store, scope),
        opt_outs=_opt_outs(store, incident),
        sandbox=sandbox,
    )
    if timeline:
        report.timeline = _timeline(store, scope, announcements)
    return report


def _unknown_message(store: ReadableStore, incident_id: str, mode: str) -> str:
    import difflib

    other = "live" if mode == "sandbox" else "sandbox"
    elsewhere = store.fetch(
        "SELECT COUNT(*) FROM deliveries WHERE mode=? AND incident=?", (other, incident_id)
    )[0][0]
    if elsewhere:
        if other == "sandbox":
            return f"incident '{incident_id}' was only sent in the sandbox: add --sandbox"
        return f"incident '{incident_id}' was only sent for real: leave out --sandbox"
    known = [
        str(r[0])
        for r in store.fetch("SELECT DISTINCT incident FROM deliveries WHERE mode=?", (mode,))
    ]
    close = difflib.get_close_matches(incident_id, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    listing = f" (known: {', '.join(sorted(known)[:5])})" if known and not close else ""
    return f"no incident '{incident_id}' in the ledger{hint}{listing}"


@dataclass(slots=True)
class _Wave:
    """One announcement's rows: when they were first planned, first and last sent."""

    planned_at: str
    first_sent_at: str | None = None
    last_sent_at: str | None = None


#: States counted apart, in the order of ``_Group``'s count fields.
_GROUP_STATES = ("sent", "delivered", "undelivered", "failed", "unknown", "pending", "sending")
# Per announcement and channel: the (mode, announcement, channel, ...) primary key hands the
# rows over in that order, so the database groups them without sorting a million rows.
_GROUPS_SQL = (
    "SELECT announcement, channel, "
    + ", ".join(f"SUM(CASE WHEN state='{state}' THEN 1 ELSE 0 END)" for state in _GROUP_STATES)
    + ", MIN(created_at), MIN(sent_at), MAX(sent_at),"
    f" SUM(CASE WHEN sent_at IS NOT NULL AND state IN ({_marks(SENT_STATES)}) THEN 1 ELSE 0 END)"
    " FROM deliveries WHERE mode=? AND incident=? GROUP BY announcement, channel"
)


@dataclass(frozen=True, slots=True)
class _Group:
    """One announcement on one channel: its rows by state, and its times."""

    announcement: str
    channel: str
    sent: int
    delivered: int
    undelivered: int
    failed: int
    unknown: int
    pending: int
    sending: int
    planned_at: str
    first_sent_at: str | None
    last_sent_at: str | None
    #: Rows sent (or delivered/undelivered since) with their send time recorded.
    timed: int


def _waves(groups: list[_Group]) -> dict[str, _Wave]:
    """Per announcement, oldest first, from the grouped counts' MIN/MAX columns."""
    waves: dict[str, _Wave] = {}
    for group in groups:
        wave = waves.setdefault(group.announcement, _Wave(group.planned_at))
        wave.planned_at = min(wave.planned_at, group.planned_at)
        first, last = group.first_sent_at, group.last_sent_at
        if first is not None and last is not None:
            wave.first_sent_at = min(wave.first_sent_at or first, first)
            wave.last_sent_at = max(wave.last_sent_at or last, last)
    return dict(sorted(waves.items(), key=lambda item: item[1].planned_at))


def _announcements(
    announced: list[tuple[Any, ...]], waves: dict[str, _Wave]
) -> list[AnnouncementLine]:
    lines = []
    for key, status, update, _title, _severity, _started, first in announced:
        wave = waves.get(key)
        lines.append(
            AnnouncementLine(
                key=str(key),
                status=str(status),
                update=update,
                first_sent_at=first or (wave.first_sent_at if wave else None),
                last_sent_at=wave.last_sent_at if wave else None,
            )
        )
    recorded = {line.key for line in lines}
    for key, wave in waves.items():
        if key not in recorded:  # rows of a ledger older than the announcements table
            parts = key.split("/")
            status = parts[1] if len(parts) > 1 else ""
            update = parts[2] if len(parts) > 2 else None
            lines.append(
                AnnouncementLine(key, status, update, wave.first_sent_at, wave.last_sent_at)
            )
    return lines


def _incident_line(incident_id: str, announced: list[tuple[Any, ...]]) -> IncidentLine:
    if not announced:
        return IncidentLine(incident_id, None, None, None, None)
    _key, _status, _update, title, severity, started_at, _first = announced[-1]
    resolved_at = None
    for _k, status, _u, _t, _s, _st, first in announced:
        if status != "resolved":
            resolved_at = None  # reopened: only a final resolution counts
        elif resolved_at is None and first is not None:
            resolved_at = first
    return IncidentLine(incident_id, title, severity, started_at or None, resolved_at)


def _timed(groups: list[_Group]) -> dict[str, int]:
    """Per channel, how many messages went out with their time recorded."""
    timed: dict[str, int] = {}
    for group in groups:
        timed[group.channel] = timed.get(group.channel, 0) + int(group.timed)
    return timed


def _channel_counts(
    store: ReadableStore,
    scope: tuple[str, str],
    groups: list[_Group],
    kinds: Mapping[str, str],
) -> dict[str, ChannelReport]:
    """Counts per channel over the announcements; skip reasons read from the skipped rows."""
    found = {group.channel for group in groups}
    order = [name for name in kinds if name in found] + sorted(found - set(kinds))
    channels = {name: ChannelReport(kind=kinds.get(name)) for name in order}
    for group in groups:
        channel = channels[group.channel]
        for state in ("delivered", "undelivered", "failed", "unknown"):
            setattr(channel, state, getattr(channel, state) + int(getattr(group, state)))
        channel.sent += int(group.sent) + int(group.delivered) + int(group.undelivered)
        # sending: in flight while the report runs.
        channel.pending += int(group.pending) + int(group.sending)
        # planned: every row but the skipped ones.
        channel.planned += sum(int(getattr(group, state)) for state in _GROUP_STATES)
    skipped = store.fetch(
        "SELECT channel, error, COUNT(*) FROM deliveries"
        " WHERE mode=? AND incident=? AND state='skipped' GROUP BY 1, 2"
        " ORDER BY 3 DESC, 2",
        scope,
    )
    for name, reason, count in skipped:
        label = str(reason or "no reason recorded")
        reasons = channels[str(name)].skipped
        reasons[label] = reasons.get(label, 0) + int(count)
    return channels


def _timings(
    store: ReadableStore,
    scope: tuple[str, str],
    channels: dict[str, ChannelReport],
    waves: dict[str, _Wave],
    timed: Mapping[str, int],
) -> None:
    """First, median and 95th-percentile seconds from each announcement's start to each
    message sent, by nearest rank, ranked inside the database.

    A message's offset is its time of day, plus the seconds from the first day of
    sending to its day, minus its announcement's start: both looked up in short CASE
    lists made here (a few days, a few announcements), so each row costs a few
    ``substr`` and nothing else. ``timed`` counts each channel's messages sent (with a
    time), so only the wanted ranks are asked for.
    """
    sent = [w for w in waves.values() if w.first_sent_at and w.last_sent_at]
    timed_ranks = {name: _ranks(n) for name, n in timed.items() if n}
    if not sent or not timed_ranks:
        return
    wanted = sorted({rank for ranks in timed_ranks.values() for rank in ranks})
    first_day = min(_day(w.first_sent_at) for w in sent)
    last_day = max(_day(w.last_sent_at) for w in sent)
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    day_cases = " ".join("WHEN ? THEN ?" for _ in days)
    start_cases = " ".join("WHEN ? THEN ?" for _ in waves)
    params: list[object] = []
    for day in days:
        params += [day.isoformat(), float((day - first_day).days * 86400)]
    for key, wave in waves.items():
        params += [key, _seconds_since(wave.planned_at, first_day)]
    sql = f"""
        WITH gone AS (
            SELECT channel,
                   CASE substr(sent_at, 1, 10) {day_cases} END
                   + CAST(substr(sent_at, 12, 2) AS INTEGER) * 3600
                   + CAST(substr(sent_at, 15, 2) AS INTEGER) * 60
                   + CAST(substr(sent_at, 18, 9) AS DOUBLE PRECISION)
                   - CASE announcement {start_cases} END AS after_s
            FROM deliveries
            WHERE mode=? AND incident=? AND sent_at IS NOT NULL
              AND state IN ({_marks(SENT_STATES)})
        ), ranked AS (
            SELECT channel, after_s,
                   ROW_NUMBER() OVER (PARTITION BY channel ORDER BY after_s) AS rank_no
            FROM gone
        )
        SELECT channel, rank_no, after_s FROM ranked WHERE rank_no IN ({_marks(wanted)})
    """
    found = store.fetch(sql, (*params, *scope, *SENT_STATES, *wanted))
    for name, rank_no, after_s in found:
        channel, ranks = channels.get(str(name)), timed_ranks.get(str(name))
        if channel is None or ranks is None:
            continue
        seconds = round(max(float(after_s), 0.0), 3)
        for field_name, rank in zip(_TIMING_FIELDS, ranks, strict=True):
            if rank == rank_no:
                setattr(channel, field_name, seconds)


#: The ChannelReport fields _ranks() gives the nearest rank of, in order.
_TIMING_FIELDS = ("first_sent_after_s", "p50_sent_after_s", "p95_sent_after_s")


def _ranks(total: int) -> tuple[int, int, int]:
    """Nearest ranks (1-based) of the first, the median and the 95th percentile."""
    return 1, (total * 50 + 99) // 100, (total * 95 + 99) // 100


def _day(stamp: str | None) -> date:
    return date.fromisoformat(str(stamp)[:10])


def _seconds_since(stamp: str, first_day: date) -> float:
    """Seconds from midnight UTC of ``first_day`` to a stored time (may be negative)."""
    moment = _parse(stamp)
    assert moment is not None
    midnight = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    return (moment - midnight).total_seconds()


def _reach(store: ReadableStore, scope: tuple[str, str]) -> int:
    rows = store.fetch(
        "SELECT COUNT(DISTINCT COALESCE(person, recipient)) FROM deliveries WHERE mode=?"
        f" AND incident=? AND recipient <> '-' AND state IN ({_marks(REACHED_STATES)})",
        (*scope, *REACHED_STATES),
    )
    return int(rows[0][0] or 0)


def _opt_outs(store: ReadableStore, incident: IncidentLine) -> dict[str, int]:
    start = _parse(incident.started_at)
    if start is None:
        return {}
    params: list[object] = [store_time(start)]
    where = "created_at >= ?"
    resolved = _parse(incident.resolved_at)
    if resolved is not None:
        where += " AND created_at <= ?"
        params.append(store_time(resolved + OPT_OUT_WINDOW))
    rows = store.fetch(
        f"SELECT source, COUNT(*) FROM suppressions WHERE {where} GROUP BY source"
        " ORDER BY COUNT(*) DESC, source",
        params,
    )
    return {str(source): int(count) for source, count in rows}


#: Time buckets for the chart: (longest span, length of the time text kept).
_BUCKETS = ((timedelta(minutes=3), 19), (timedelta(hours=6), 16), (timedelta.max, 13))


def _timeline(
    store: ReadableStore, scope: tuple[str, str], announcements: list[AnnouncementLine]
) -> dict[str, list[tuple[str, int]]]:
    """Messages sent per channel per second, minute or hour (whichever keeps the chart
    to a few hundred points), each bucket named by its start time."""
    firsts = [_parse(a.first_sent_at) for a in announcements if a.first_sent_at]
    lasts = [_parse(a.last_sent_at) for a in announcements if a.last_sent_at]
    if not firsts or not lasts:
        return {}
    span = max(t for t in lasts if t) - min(t for t in firsts if t)
    width = next(size for longest, size in _BUCKETS if span <= longest)
    rows = store.fetch(
        f"SELECT channel, substr(sent_at, 1, {width}), COUNT(*) FROM deliveries"
        f" WHERE mode=? AND incident=? AND sent_at IS NOT NULL"
        f" AND state IN ({_marks(SENT_STATES)}) GROUP BY 1, 2 ORDER BY 1, 2",
        (*scope, *SENT_STATES),
    )
    padding = {19: "", 16: ":00", 13: ":00:00"}[width]
    series: dict[str, list[tuple[str, int]]] = {}
    for channel, bucket, count in rows:
        series.setdefault(str(channel), []).append((f"{bucket}{padding}Z", int(count)))
    return series


# --- shared by the table and the html ----------------------------------------------


def duration(seconds: float | None) -> str:
    """Seconds as a person reads them: ``0.4s``, ``42s``, ``3m05s``, ``2h07m``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def clock(stamp: str | None) -> str:
    """A stored time as ``2026-11-22 09:41:03`` (UTC); ``-`` for none."""
    moment = _parse(stamp)
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def wave_name(key: str, incident_id: str) -> str:
    """An announcement key without the incident id everybody already read in the title."""
    prefix = incident_id + "/"
    return key[len(prefix) :] if key.startswith(prefix) else key
