"""The plain records the store hands out: ledger rows, announcements, suppressions, campaigns.

They carry no behaviour of the database they came from, so the same record comes back
from SQLite and from PostgreSQL (``ledger --format json`` is identical on both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

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


def now() -> str:
    """The current time as the store writes it: ISO 8601, UTC, microseconds, ending in Z.

    Fixed width, so text comparison orders them as time does (on both engines).
    """
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical_json(value: object) -> str:
    """One spelling of a value as JSON (sorted keys, no spaces): equal content, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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


@dataclass(frozen=True, slots=True)
class AnnouncementRecord:
    """What an announcement said when it was first planned (for change detection and pages)."""

    key: str
    incident: str
    title: str
    status: str
    severity: str
    summary: str
    details: str | None
    started_at: str
    eta: str | None
    update: str | None
    affected: list[str]
    #: Canonical JSON of the incident's content fields: equal text, equal content.
    content: str
    #: When its first message went out; None while it is only planned.
    first_sent_at: str | None
    sandbox: bool


@dataclass(frozen=True, slots=True)
class Suppression:
    """An address nobody may message again (one list for sandbox and live alike)."""

    address: str
    kind: str  # "sms" | "email"
    source: str
    reason: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class PausedCampaign:
    """A scheduled campaign an incident unscheduled (DESIGN §15)."""

    id: str
    name: str
    send_at: str | None
    paused_at: str
    resumed_at: str | None
