"""Consent in a run: who must not get a message (suppressed) and who must wait (quiet hours).

Built once per run, before planning:

* ``Suppressions`` is the suppression list read once into memory (addresses only, a
  few tens of bytes each): planning asks it about every address it meets, and a
  query per address would cost more than the message. A suppression added while a
  run is going is honoured by the next run.
* ``QuietHours`` answers, for an SMS about to be planned, until when it must wait,
  using the clock reading taken when the run started (so a run does not defer half
  of one batch and send the other half).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ..config import Config, TwilioSettings
from ..consent.quiet import QuietHours, candidate_zones, quiet_until
from ..consent.suppression import quiet_reason, suppressed_reason
from ..consent.tokens import make_token
from ..models import Incident, Recipient
from ..render import Renderer
from ..store import Store, open_store, sqlite_path


class Suppressions:
    """The suppression list of the store: address (lower-cased) -> source."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self._sources = dict(sources)

    @classmethod
    def load(cls, store: Store | None) -> Suppressions:
        if store is None:
            return cls({})
        return cls({s.address.lower(): s.source for s in store.suppressions()})

    @classmethod
    def of(cls, config: Config) -> Suppressions:
        """The list in the config's ledger, read without writing anything (a preview
        records nothing); empty when nothing was recorded yet."""
        path = sqlite_path(config.ledger, config.root)
        if path is not None and not path.exists():
            return cls({})
        try:
            with open_store(config.ledger, base_dir=config.root, read_only=True) as store:
                return cls.load(store)
        except Exception:  # a ledger of an older version, without the list's table yet
            with open_store(config.ledger, base_dir=config.root) as store:
                return cls.load(store)

    def reason(self, address: str) -> str | None:
        """``suppressed (<source>)`` for a suppressed address, else None."""
        source = self._sources.get(address.lower())
        return None if source is None else suppressed_reason(source)

    def __len__(self) -> int:
        return len(self._sources)


@dataclass(frozen=True)
class QuietCheck:
    """Quiet hours of one SMS channel at one instant."""

    window: QuietHours
    default_zone: str
    now: datetime

    @classmethod
    def for_channel(
        cls, config: Config, settings: object, *, now: datetime | None = None
    ) -> QuietCheck | None:
        """The check of a channel with ``quiet_hours``; None for any other channel."""
        window = getattr(settings, "quiet_hours", None)
        if not isinstance(settings, TwilioSettings) or not window:
            return None
        return cls(
            QuietHours.parse(window),
            config.organization.timezone,
            now or datetime.now(UTC),
        )

    def until(self, address: str, recipient: Recipient | None) -> datetime | None:
        """When the message to ``address`` may go, or None when it may go now."""
        zone = recipient.timezone if recipient is not None else None
        zones = candidate_zones(address, zone, self.default_zone)
        return quiet_until(self.window, zones, self.now)


def deferral_reason(until: datetime) -> str:
    """``quiet hours until 2026-11-30T08:00:00-05:00`` (the recipient's local time)."""
    return quiet_reason(until.isoformat(timespec="seconds"))


def make_renderer(config: Config, incident: Incident, channels: list[str]) -> Renderer:
    """The run's renderer: with ``serve.public_url`` set, every email gets its recipient's
    one-click unsubscribe link (the serve secret is read, or created, on first need)."""
    public_url = config.serve.public_url
    if not public_url:
        return Renderer(config, incident, channels)

    @functools.cache
    def secret() -> bytes:
        from ..secret import serve_secret

        return serve_secret(config)

    def link(address: str) -> str:
        return f"{public_url}/unsubscribe/{make_token(secret(), address)}"

    return Renderer(config, incident, channels, unsubscribe_url=link)
