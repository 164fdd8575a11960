"""Planning: record each channel's messages as ``pending`` rows, chunk by chunk, and hand
them out as units of delivery; record the announcement itself."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from ..audience import Targets
from ..config import Config
from ..consent.suppression import OPTED_OUT, RECORDED_REASONS
from ..models import BROADCAST, PER_RECIPIENT_KINDS, Incident, Recipient
from ..store import AnnouncementRecord, Store, canonical_json
from .consent import QuietCheck, Suppressions, deferral_reason
from .preflight import Audience, ChannelPlan

#: One unit of delivery: (address, recipient) pairs claimed together (one, or a batch).
Unit = list[tuple[str, Recipient | None]]

# Rows planned per ledger transaction while walking the audience (at least one batch).
# Small, because planning a chunk (normalising its addresses, one INSERT) holds up the
# event loop, and with it every answer waiting to be read.
PLAN_CHUNK = 200


def _iso(value: object) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")  # type: ignore[attr-defined]


def announcement_record(incident: Incident, *, sandbox: bool) -> AnnouncementRecord:
    """The announcement as the store keeps it; ``content`` holds every field a message may
    show, so a later run can tell whether the incident file changed under the same key."""
    content = incident.model_dump(mode="json", exclude={"id", "status", "update", "channels"})
    return AnnouncementRecord(
        key=incident.key,
        incident=incident.id,
        title=incident.title,
        status=incident.status,
        severity=incident.severity,
        summary=incident.summary,
        details=incident.details,
        started_at=_iso(incident.started_at) or "",
        eta=_iso(incident.eta),
        update=incident.update,
        affected=list(incident.affected),
        content=canonical_json(content),
        first_sent_at=None,
        sandbox=sandbox,
    )


def person_key(address: str, recipient: Recipient | None) -> str | None:
    """Who an address belongs to, the same on every channel: the audience row's email
    (lower-cased) when it has one, else the address itself; None for a broadcast. The
    report counts people reached by it, so someone texted and emailed counts once."""
    if recipient is None:
        return None
    email = (recipient.email or "").strip().lower()
    return email or address


@dataclass
class _Aside:
    """Rows of a chunk that are not sent now: (address, reason) each. ``skipped`` rows are
    skipped even if planned before; ``unplanned`` ones only get a row when they have none."""

    skipped: list[tuple[str, str]] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)
    deferred_persons: list[str | None] = field(default_factory=list)
    unplanned: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.skipped) + len(self.deferred) + len(self.unplanned)


class Planner:
    """Walks the audience for one channel, recording its rows ``pending`` before handing
    them out, so every unit delivered was planned first (a crash leaves a trace)."""

    def __init__(
        self,
        config: Config,
        plan: ChannelPlan,
        store: Store,
        incident: Incident,
        audience: Audience | None,
        *,
        suppressions: Suppressions | None = None,
        quiet: QuietCheck | None = None,
    ) -> None:
        self.config = config
        self.plan = plan
        self.store = store
        self.incident = incident
        self.audience = audience
        self.suppressions = suppressions or Suppressions({})
        self.quiet = quiet
        #: Messages held back by quiet hours in the last walk, and when the last may go.
        self.deferred = 0
        self.deferred_until: datetime | None = None

    def units(self, batch_size: int) -> Iterator[Unit]:
        """Planned units of delivery, after recording them as ``pending`` in the store."""
        if self.plan.kind not in PER_RECIPIENT_KINDS:
            self._add([BROADCAST])
            yield [(BROADCAST, None)]
            return
        assert self.audience is not None
        targets = Targets(
            self.plan.kind,  # type: ignore[arg-type]
            self.config.default_region,
            excluded=self.plan.excluded,
            numbers=self.plan.numbers,
        )
        self.deferred, self.deferred_until = 0, None
        chunk: Unit = []
        aside = _Aside()
        for item in self.audience:
            address = targets.address(item)
            if not isinstance(item, Recipient):
                continue
            if address is None:
                skip = targets.last_skip
                if skip is not None and skip[0] == OPTED_OUT:
                    # An explicit "no" holds for every row of the address (Targets saw to it).
                    aside.skipped.append((skip[1], skip[0]))
                elif skip is not None and skip[0] in RECORDED_REASONS:
                    # Another row of the address may still be planned: only a row of its own.
                    aside.unplanned.append((skip[1], skip[0]))
            elif (reason := self.suppressions.reason(address)) is not None:
                aside.skipped.append((address, reason))
            elif self.quiet is not None and (until := self.quiet.until(address, item)):
                aside.deferred.append((address, deferral_reason(until)))
                aside.deferred_persons.append(person_key(address, item))
                self.deferred += 1
                self.deferred_until = max(self.deferred_until or until, until)
            else:
                chunk.append((address, item))
            if len(chunk) >= max(PLAN_CHUNK, batch_size) or len(aside) >= PLAN_CHUNK:
                self._record_aside(aside)
                aside = _Aside()
                yield from self._chunk(chunk, batch_size)
                chunk = []
        self._record_aside(aside)
        if chunk:
            yield from self._chunk(chunk, batch_size)

    def _record_aside(self, aside: _Aside) -> None:
        """Rows that will not be sent now: ``skipped`` with their reason (also a row planned
        by an earlier run and suppressed since), or left ``pending`` with the time they wait
        for. One transaction."""
        if not aside:
            return
        key, channel = self.incident.key, self.plan.name
        with self.store.transaction():
            if aside.skipped:
                self._add([a for a, _ in aside.skipped])
                self.store.skip(key, channel, aside.skipped)
            if aside.deferred:
                self._add([a for a, _ in aside.deferred], aside.deferred_persons)
                self.store.defer(key, channel, aside.deferred)
            if aside.unplanned:
                self.store.add_skipped(key, self.incident.id, channel, aside.unplanned)

    def record_all(self) -> None:
        """Record every planned row (a channel that could not open: they stay ``pending``)."""
        for _ in self.units(PLAN_CHUNK):
            pass

    def _chunk(self, chunk: Unit, batch_size: int) -> Iterator[Unit]:
        self._add_planned([a for a, _ in chunk], [person_key(a, r) for a, r in chunk])
        for start in range(0, len(chunk), batch_size):
            yield chunk[start : start + batch_size]

    def _add(self, addresses: list[str], persons: list[str | None] | None = None) -> None:
        self.store.add_pending(
            self.incident.key, self.incident.id, self.plan.name, addresses, persons
        )

    def _add_planned(self, addresses: list[str], persons: list[str | None]) -> None:
        """Rows to send: new ones ``pending``, and skipped ones of an address that may be
        sent now (a row without opt-in seen first, a suppression lifted since) too."""
        with self.store.transaction():
            self._add(addresses, persons)
            self.store.replan(self.incident.key, self.plan.name, addresses)
