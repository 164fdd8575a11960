"""One announcement run: preflight every message, plan from the ledger, deliver, report.

The order is what makes the promises hold; each step has its module in ``run/``:

1. **Preflight** (``run/preflight.py``) renders every channel for every recipient and
   checks every limit. Any problem raises an ``InputError`` before anything is sent.
2. **Plan** (``run/planning.py``): the announcement and its rows are recorded in the
   store, rows as ``pending``; rows already delivered are never claimed again.
3. **Deliver** (``run/delivery.py``, ``run/retry.py``): channels run concurrently;
   within a channel, workers claim, send and record each message.
4. **Result** (``result.py``): counts read back from the store, and the exit code.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .channels import build_channel
from .channels.base import CheckResult
from .config import Config, load_config, require_credentials
from .consent.suppression import is_recorded
from .errors import ConfigError, StoreError
from .models import PER_RECIPIENT_KINDS, Incident, Kind
from .redact import redact
from .render import Renderer
from .result import ChannelResult, Failure, Result
from .run.changes import refuse_changed_content
from .run.consent import QuietCheck, make_renderer
from .run.control import RunControl
from .run.delivery import ChannelRun, ProgressCallback, StoreThread
from .run.planning import Planner, announcement_record
from .run.preflight import (
    Audience,
    AudienceInput,
    ChannelPlan,
    Plan,
    kind_of,
    open_audience,
    preflight,
    select_channels,
)
from .run.republish import republish_banners
from .store import Store, open_store, view_store

if TYPE_CHECKING:
    from datetime import datetime

    from .campaigns import CampaignsResult

__all__ = ["Announcer", "ChannelPlan", "Plan", "ProgressCallback", "RunControl"]


class Announcer:
    """Sends announcements for one configuration. The CLI is a thin layer over this.

    >>> announcer = Announcer.from_config("channels.yaml")
    >>> result = announcer.send(Incident.load("incident.yaml"), sandbox=True)
    >>> result.counts["sms"]["sent"]
    """

    def __init__(self, config: Config) -> None:
        self.config = config

    @classmethod
    def from_config(cls, path: str | Path | None = None) -> Announcer:
        """Load channels.yaml (default: $OUTAGECOMMS_CONFIG or ./channels.yaml) and the env."""
        return cls(load_config(path))

    def select(self, incident: Incident, channels: Sequence[str] | None = None) -> list[str]:
        """The channels a run uses: those asked for, else the incident's, else all configured."""
        return select_channels(self.config, incident, channels)

    def kind_of(self, name: str) -> Kind:
        return kind_of(self.config, name)

    def open_store(
        self, *, sandbox: bool = False, read_only: bool = False, recover: bool = True
    ) -> Store:
        """The store (ledger) this configuration names: ``ledger:`` or $OUTAGECOMMS_LEDGER.

        A ledger that cannot be opened raises ``ConfigError`` naming it."""
        return open_store(
            self.config.ledger,
            mode="sandbox" if sandbox else "live",
            base_dir=self.config.root,
            read_only=read_only,
            recover=recover,
        )

    def view_store(self) -> Store | None:
        """The store opened for reading (``ledger``, ``report``); None when nothing was
        recorded yet. Expired leases are recovered when the store can be written."""
        return view_store(self.config.ledger, base_dir=self.config.root)

    def refuse_changed_content(
        self, incident: Incident, *, sandbox: bool = False, source: Path | None = None
    ) -> None:
        """Raise ``IncidentError`` when the incident's content differs from what was
        recorded under its announcement key (DESIGN §18); ``send`` checks this too."""
        with self.open_store(sandbox=sandbox, recover=False) as store:
            refuse_changed_content(store, incident, source)

    def preflight(
        self,
        incident: Incident,
        channels: Sequence[str] | None = None,
        *,
        audience: AudienceInput | None = None,
        credentials: bool = False,
    ) -> Plan:
        """Render and check every message of every selected channel; send nothing.

        Raises an ``InputError`` (config, template, limit, audience) on the first problem.
        With ``credentials`` it also requires every channel's secrets to be set.
        """
        return preflight(self.config, incident, channels, audience, credentials)[0]

    # --- sending -------------------------------------------------------------------

    def send(
        self,
        incident: Incident,
        channels: Sequence[str] | None = None,
        *,
        audience: AudienceInput | None = None,
        dry_run: bool = False,
        sandbox: bool = False,
        retry_unknown: bool = False,
        progress: ProgressCallback | None = None,
        ignore_quiet_hours: bool = False,
    ) -> Result:
        """Preflight, then deliver every message not yet delivered for this announcement.

        Raises an ``InputError`` before anything is sent when input or config is wrong;
        delivery problems never raise: they are in the result (``ok``, ``failures``).
        SMS inside a channel's ``quiet_hours`` wait (``deferred`` in the result) unless
        ``ignore_quiet_hours``.
        """
        return asyncio.run(
            self.send_async(
                incident,
                channels,
                audience=audience,
                dry_run=dry_run,
                sandbox=sandbox,
                retry_unknown=retry_unknown,
                progress=progress,
                ignore_quiet_hours=ignore_quiet_hours,
            )
        )

    async def send_async(
        self,
        incident: Incident,
        channels: Sequence[str] | None = None,
        *,
        audience: AudienceInput | None = None,
        dry_run: bool = False,
        sandbox: bool = False,
        retry_unknown: bool = False,
        progress: ProgressCallback | None = None,
        control: RunControl | None = None,
        plan: Plan | None = None,
        ignore_quiet_hours: bool = False,
    ) -> Result:
        """``send`` for async code. ``control`` lets the caller stop the run gracefully."""
        plan, renderer, source = (
            (plan, make_renderer(self.config, incident, list(plan.channels)), None)
            if plan is not None
            else preflight(
                self.config, incident, channels, audience, credentials=not (dry_run or sandbox)
            )
        )
        if source is None and any(p.kind in PER_RECIPIENT_KINDS for p in plan.channels.values()):
            source = open_audience(self.config, audience)
        results = {
            name: ChannelResult(
                name=name,
                kind=p.kind,
                driver="outbox" if sandbox else p.settings.driver,
                planned=p.recipients,
                skipped_reasons=Counter(p.skipped),
            )
            for name, p in plan.channels.items()
        }
        result = Result(incident.key, incident, results, dry_run=dry_run, sandbox=sandbox)
        if dry_run:
            for name, channel_result in results.items():
                channel_result.counts["pending"] = plan.channels[name].recipients
                channel_result.counts["skipped"] = sum(plan.channels[name].skipped.values())
            return result
        control = control or RunControl()
        io = StoreThread()
        try:
            store = await io.call(lambda: self.open_store(sandbox=sandbox))
            try:
                await self._deliver(
                    store,
                    io,
                    plan,
                    renderer,
                    source,
                    result,
                    control=control,
                    retry_unknown=retry_unknown,
                    ignore_quiet_hours=ignore_quiet_hours,
                    progress=progress,
                )
            finally:
                await io.call(store.close)
        finally:
            io.close()
        return result

    async def _deliver(
        self,
        store: Store,
        io: StoreThread,
        plan: Plan,
        renderer: Renderer,
        source: Audience | None,
        result: Result,
        *,
        control: RunControl,
        retry_unknown: bool,
        ignore_quiet_hours: bool,
        progress: ProgressCallback | None,
    ) -> None:
        """Plan and deliver every channel of ``plan``, then read the counts back."""
        incident = plan.incident
        sandbox = result.sandbox
        watcher = asyncio.create_task(_shorten_waits_when_stopped(control, store))
        try:
            await io.call(refuse_changed_content, store, incident)
            result.recovered_unknown = store.recovered
            await io.call(store.record_announcement, announcement_record(incident, sandbox=sandbox))
            runs = [
                ChannelRun(
                    self.config,
                    channel_plan,
                    result.channels[name],
                    renderer=renderer,
                    store=store,
                    store_thread=io,
                    planner=Planner(
                        self.config,
                        channel_plan,
                        store,
                        incident,
                        source,
                        suppressions=plan.suppressions,
                        quiet=None
                        if ignore_quiet_hours
                        else QuietCheck.for_channel(self.config, channel_plan.settings),
                    ),
                    sandbox=sandbox,
                    retry_unknown=retry_unknown,
                    progress=progress,
                    control=control,
                )
                for name, channel_plan in plan.channels.items()
            ]
            await asyncio.gather(*(run.run() for run in runs))
            for run in runs:
                run.result.deferred = run.planner.deferred
                until = run.planner.deferred_until
                run.result.deferred_until = until.isoformat(timespec="seconds") if until else None
            if not control.stopping.is_set():
                await republish_banners(
                    self.config,
                    plan.channels,
                    result.channels,
                    renderer,
                    store,
                    io,
                    sandbox=sandbox,
                )
            await io.call(_read_counts, store, result)
        except StoreError:
            if not control.stopping.is_set():
                raise  # the ledger was lost: exit 1, a re-run resumes
        finally:
            watcher.cancel()
            result.interrupted = control.stopping.is_set()

    # --- credentials ---------------------------------------------------------------

    def check(self, channels: Sequence[str] | None = None) -> dict[str, CheckResult]:
        """Ask each channel's provider whether its credentials are accepted; sends nothing."""
        return asyncio.run(self.check_async(channels))

    async def check_async(self, channels: Sequence[str] | None = None) -> dict[str, CheckResult]:
        names = list(channels or self.config.channels)

        async def one(name: str) -> CheckResult:
            settings = self.config.channels[name]
            try:
                require_credentials(name, settings)
            except ConfigError as exc:
                return CheckResult("refused", str(exc))
            channel = build_channel(name, self.kind_of(name), settings, self.config)
            try:
                async with channel:
                    return await channel.check()
            except Exception as exc:  # an unreachable provider is a finding, not a crash
                return CheckResult("error", redact(str(exc)) or type(exc).__name__)

        return dict(zip(names, await asyncio.gather(*(one(n) for n in names)), strict=True))

    # --- scheduled marketing campaigns (DESIGN §15; the work is in campaigns.py) ----

    def pause_campaigns(self, incident_id: str, *, dry_run: bool = False) -> CampaignsResult:
        """Unschedule every scheduled SendGrid Single Send, recorded under the incident."""
        from .campaigns import pause_campaigns

        return pause_campaigns(self, incident_id, dry_run=dry_run)

    def resume_campaigns(
        self, incident_id: str, at: datetime | str | None = None, *, dry_run: bool = False
    ) -> CampaignsResult:
        """Reschedule what the incident paused: at its own time when still ahead, else ``at``."""
        from .campaigns import resume_campaigns

        return resume_campaigns(self, incident_id, at, dry_run=dry_run)


# How long each ledger statement of a stopped run may still wait for another process's lock.
_STOPPED_LOCK_WAIT_SECONDS = 2.0


async def _shorten_waits_when_stopped(control: RunControl, store: Store) -> None:
    """Once the run is stopped, ledger statements wait for locks only briefly (not at all
    after ``abort``), so that Ctrl-C and SIGTERM keep their promise."""
    await control.stopping.wait()
    store.wait_at_most(_STOPPED_LOCK_WAIT_SECONDS)
    await control.aborting.wait()
    store.wait_at_most(0)


def _read_counts(store: Store, result: Result) -> None:
    """Each channel's rows by state after the run, and what was not delivered."""
    for name, channel_result in result.channels.items():
        channel_result.counts = store.counts(result.announcement, name)
        # Skips with a ledger row are in the counts already; add the others.
        channel_result.counts["skipped"] += sum(
            count
            for reason, count in channel_result.skipped_reasons.items()
            if not is_recorded(reason)
        )
        result.failures += [
            Failure(name, row.recipient, row.state, row.error)
            for row in store.failures(result.announcement, name)
        ]
