"""Planning: record each channel's messages as ``pending`` rows, chunk by chunk, and hand
them out as units of delivery; record the announcement itself."""

from __future__ import annotations

from collections.abc import Iterator

from ..audience import Targets
from ..config import Config
from ..models import BROADCAST, PER_RECIPIENT_KINDS, Incident, Recipient
from ..store import AnnouncementRecord, Store, canonical_json
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
    ) -> None:
        self.config = config
        self.plan = plan
        self.store = store
        self.incident = incident
        self.audience = audience

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
        chunk: Unit = []
        for item in self.audience:
            address = targets.address(item)
            if address is None or not isinstance(item, Recipient):
                continue
            chunk.append((address, item))
            if len(chunk) >= max(PLAN_CHUNK, batch_size):
                yield from self._chunk(chunk, batch_size)
                chunk = []
        if chunk:
            yield from self._chunk(chunk, batch_size)

    def record_all(self) -> None:
        """Record every planned row (a channel that could not open: they stay ``pending``)."""
        for _ in self.units(PLAN_CHUNK):
            pass

    def _chunk(self, chunk: Unit, batch_size: int) -> Iterator[Unit]:
        self._add([a for a, _ in chunk], [person_key(a, r) for a, r in chunk])
        for start in range(0, len(chunk), batch_size):
            yield chunk[start : start + batch_size]

    def _add(self, addresses: list[str], persons: list[str | None] | None = None) -> None:
        self.store.add_pending(
            self.incident.key, self.incident.id, self.plan.name, addresses, persons
        )
