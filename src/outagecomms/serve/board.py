"""What the status page knows, computed from the recorded announcements (no I/O here).

An announcement appears once its first message went out. An incident's timeline
is its announcements in the order they went out; the incident is *open* while
its latest announcement is not ``resolved`` (a resolved incident that gets a new
``investigating`` wave is open again). The overall state is the worst severity
among the open incidents. Resolved incidents stay listed for ``history_days``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import AnnouncementRecord

SEVERITY_RANK = {"minor": 1, "major": 2, "critical": 3}
#: The overall state's words, by indicator (the worst open severity, or none).
DESCRIPTIONS = {
    "none": "All systems operational",
    "minor": "Minor service disruption",
    "major": "Partial service outage",
    "critical": "Major service outage",
}


def parse_time(value: str) -> datetime:
    """An ISO-8601 timestamp of the store (``...Z``) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Update:
    """One announcement of an incident as the page shows it: one entry of the timeline."""

    key: str
    status: str
    update: str | None
    title: str
    severity: str
    summary: str
    details: str | None
    affected: tuple[str, ...]
    started_at: datetime
    eta: datetime | None
    at: datetime

    @classmethod
    def of(cls, record: AnnouncementRecord) -> Update:
        assert record.first_sent_at is not None
        return cls(
            key=record.key,
            status=record.status,
            update=record.update,
            title=record.title,
            severity=record.severity,
            summary=record.summary,
            details=record.details,
            affected=tuple(record.affected),
            started_at=parse_time(record.started_at),
            eta=parse_time(record.eta) if record.eta else None,
            at=parse_time(record.first_sent_at),
        )


@dataclass(frozen=True, slots=True)
class IncidentView:
    """One incident: its updates oldest first; what it says now is its latest update."""

    id: str
    updates: tuple[Update, ...]

    @property
    def latest(self) -> Update:
        return self.updates[-1]

    @property
    def timeline(self) -> tuple[Update, ...]:
        """The updates newest first, as the page lists them."""
        return tuple(reversed(self.updates))

    @property
    def resolved(self) -> bool:
        return self.latest.status == "resolved"

    @property
    def resolved_at(self) -> datetime | None:
        """When the incident was (last) resolved: the first of its trailing resolved updates."""
        if not self.resolved:
            return None
        at = self.latest.at
        for update in reversed(self.updates):
            if update.status != "resolved":
                break
            at = update.at
        return at

    @property
    def started_at(self) -> datetime:
        return min(update.started_at for update in self.updates)

    @property
    def updated_at(self) -> datetime:
        return self.latest.at


@dataclass(frozen=True, slots=True)
class Board:
    """Every incident the page may show, and the overall state."""

    incidents: dict[str, IncidentView]
    #: Open incidents, most recently updated first.
    open: tuple[IncidentView, ...]
    #: Incidents resolved within ``history_days``, most recently resolved first.
    recent: tuple[IncidentView, ...]
    generated_at: datetime

    @property
    def indicator(self) -> str:
        """``none`` or the worst severity of the open incidents."""
        if not self.open:
            return "none"
        return max((i.latest.severity for i in self.open), key=lambda s: SEVERITY_RANK.get(s, 2))

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.indicator]

    @property
    def updated_at(self) -> datetime:
        """The time of the latest update shown, or when the board was computed if none."""
        shown = [*self.open, *self.recent]
        return max((i.updated_at for i in shown), default=self.generated_at)

    def listed_updates(self) -> list[tuple[IncidentView, Update]]:
        """Every update of the listed incidents (open and recent), newest first (the feed)."""
        pairs = [(i, u) for i in (*self.open, *self.recent) for u in i.updates]
        return sorted(pairs, key=lambda pair: pair[1].at, reverse=True)


def build_board(
    records: Iterable[AnnouncementRecord], *, now: datetime, history_days: int
) -> Board:
    """The board of the announcements that went out (planned-only ones are not shown)."""
    by_incident: dict[str, list[Update]] = {}
    for record in records:
        if record.first_sent_at is not None:
            by_incident.setdefault(record.incident, []).append(Update.of(record))
    incidents = {
        incident: IncidentView(incident, tuple(sorted(updates, key=lambda u: u.at)))
        for incident, updates in by_incident.items()
    }
    horizon = now - timedelta(days=history_days)
    open_ = [i for i in incidents.values() if not i.resolved]
    recent = [i for i in incidents.values() if i.resolved_at and i.resolved_at >= horizon]
    return Board(
        incidents=incidents,
        open=tuple(sorted(open_, key=lambda i: i.updated_at, reverse=True)),
        recent=tuple(sorted(recent, key=lambda i: i.resolved_at or now, reverse=True)),
        generated_at=now,
    )
