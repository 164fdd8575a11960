"""Announcement records as ``send`` stores them, and an in-memory source of them (a test
double of the store's ``announcements()``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from outagecomms.store import AnnouncementRecord

NOW = datetime.now(UTC).replace(microsecond=0)


def stamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def record(
    incident: str,
    status: str = "investigating",
    *,
    sent: datetime | None = NOW,
    title: str = "Email delivery is delayed",
    severity: str = "major",
    summary: str = "Our mail server crashed.",
    details: str | None = None,
    started: datetime | None = None,
    eta: datetime | None = None,
    update: str | None = None,
    affected: tuple[str, ...] = ("newsletter",),
    sandbox: bool = False,
) -> AnnouncementRecord:
    """One announcement; ``sent`` None means planned, nothing sent yet."""
    key = "/".join([incident, status, *([update] if update else [])])
    started = started or (sent or NOW) - timedelta(minutes=30)
    fields = {"title": title, "status": status, "severity": severity, "summary": summary}
    return AnnouncementRecord(
        key=key,
        incident=incident,
        title=title,
        status=status,
        severity=severity,
        summary=summary,
        details=details,
        started_at=stamp(started),
        eta=stamp(eta) if eta else None,
        update=update,
        affected=list(affected),
        content=json.dumps(fields, sort_keys=True),
        first_sent_at=stamp(sent) if sent else None,
        sandbox=sandbox,
    )


@dataclass
class MemorySource:
    """The announcements of one mode, as a store would list them (oldest first)."""

    records: list[AnnouncementRecord] = field(default_factory=list)
    reads: int = 0

    def announcements(self, incident: str | None = None) -> list[AnnouncementRecord]:
        self.reads += 1
        return [r for r in self.records if incident is None or r.incident == incident]
