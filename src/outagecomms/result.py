"""What a run produced: per-channel counts, failures, and the exit code they imply."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .models import Incident, Kind
from .store.records import STATES


@dataclass(slots=True)
class Failure:
    """One message that was not delivered (``failed`` or ``unknown``)."""

    channel: str
    recipient: str
    state: str
    error: str | None


@dataclass(slots=True)
class ChannelResult:
    """One channel's part of a run.

    ``counts`` holds the announcement's rows on this channel by ledger state
    after the run (every state present; ``skipped`` counts audience rows not
    addressed, whose reasons are in ``skipped_reasons``). The ``*_now``
    numbers are what this run did.
    """

    name: str
    kind: Kind
    driver: str
    planned: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    skipped_reasons: Counter[str] = field(default_factory=Counter)
    sent_now: int = 0
    failed_now: int = 0
    unknown_now: int = 0
    #: Already delivered before this run, so not sent again.
    already_done: int = 0
    #: Held by another ``send`` process running at the same time.
    busy_elsewhere: int = 0
    #: ``unknown`` rows left alone because ``--retry-unknown`` was not given.
    unknown_kept: int = 0
    #: Messages carried per driver in this run (shows when a fallback carried mail).
    providers: Counter[str] = field(default_factory=Counter)
    fallback_reason: str | None = None
    #: Why the channel stopped early (bad credentials, provider failing, interrupted).
    stopped: str | None = None
    #: A banner delivered earlier was written again with the current state.
    republished: bool = False
    seconds: float = 0.0
    #: SMS held back by quiet hours (still ``pending``), and when the last one may go.
    deferred: int = 0
    deferred_until: str | None = None

    @property
    def open_rows(self) -> int:
        """Rows of the announcement that are not (yet) delivered, quiet hours aside: a
        deferred message is waiting on purpose, not undelivered."""
        waiting = sum(self.counts[s] for s in ("pending", "sending", "failed", "unknown"))
        return waiting - self.deferred

    @property
    def ok(self) -> bool:
        return self.open_rows == 0 and self.counts["undelivered"] == 0


@dataclass(slots=True)
class Result:
    """The outcome of one ``Announcer.send``; ``exit_code`` is what the CLI exits with."""

    announcement: str
    incident: Incident
    channels: dict[str, ChannelResult]
    failures: list[Failure] = field(default_factory=list)
    dry_run: bool = False
    sandbox: bool = False
    interrupted: bool = False
    #: ``sending`` rows of crashed earlier runs that this run turned into ``unknown``.
    recovered_unknown: int = 0

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return {name: channel.counts for name, channel in self.channels.items()}

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(c.ok for c in self.channels.values())

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if self.ok else 1

    @property
    def nothing_new(self) -> bool:
        """True when every message had already been delivered before this run."""
        return not self.dry_run and all(
            c.sent_now == 0 and c.failed_now == 0 and c.unknown_now == 0
            for c in self.channels.values()
        )
