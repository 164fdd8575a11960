"""One announcement run: preflight every message, plan from the ledger, deliver, report.

The order is what makes the promises hold:

1. **Preflight** renders every channel for every recipient and checks every
   limit. Any problem raises an ``InputError`` before anything is sent.
2. **Plan**: rows are added to the ledger as ``pending``; rows already
   delivered are never claimed again.
3. **Deliver**: channels run concurrently; within a channel, units (one
   message, or a SendGrid batch) are claimed (``sending``, committed) just
   before the provider call, then marked ``sent``/``failed``. Transient
   failures are retried here, with backoff and ``Retry-After``; a channel
   whose provider keeps failing pauses and leaves its rows ``pending``.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .audience import OPTED_OUT_ELSEWHERE, CsvAudience, NumberMemo, SkippedRow, Targets
from .channels import build_channel
from .channels.base import Channel, CheckResult, never_reached_provider
from .config import Config, DriverSettings, OutboxSettings, load_config, require_credentials
from .errors import ConfigError, IncidentError, OutageCommsError
from .ledger import Ledger
from .limits import SmsLength, sms_length
from .locales import display_locale
from .models import BROADCAST, PER_RECIPIENT_KINDS, Incident, Kind, Message, Outcome, Recipient
from .redact import redact
from .render import Renderer
from .result import ChannelResult, Failure, Result

log = logging.getLogger(__name__)

#: ``progress(channel, done, total)`` after every finished unit.
ProgressCallback = Callable[[str, int, int], None]
AudienceInput = str | Path | Iterable[Recipient]

# Rows planned per ledger transaction while walking the audience (at least one batch).
# Small, because planning a chunk (normalising its addresses, one INSERT) holds up the
# event loop, and with it every answer waiting to be read.
_PLAN_CHUNK = 200
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 30.0
# Groups a worker delivers before it lets the rest of the event loop run (see ``_work``).
_YIELD_EVERY = 32
# How long in-flight deliveries may finish after an interrupt before they are marked unknown.
_GRACE_SECONDS = 10.0


@dataclass(slots=True)
class ChannelPlan:
    """What preflight learnt about one channel: who it reaches and what it will say."""

    name: str
    kind: Kind
    settings: DriverSettings
    recipients: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    sample: Message | None = None
    #: For SMS: the longest message's length and the segments of all messages together.
    longest_sms: SmsLength | None = None
    total_segments: int = 0
    #: Addresses that a later row of the audience opted out: never sent to.
    excluded: frozenset[str] = frozenset()
    #: SMS: each row's number as preflight parsed it, for the sending pass.
    numbers: NumberMemo | None = None
    #: Messages per locale (``fr-CA``), and the first message in each, for the preview.
    locales: Counter[str] = field(default_factory=Counter)
    samples: dict[str, Message] = field(default_factory=dict)
    #: Recipients whose ``locale`` is not a language tag (they get organization.locale).
    invalid_locales: int = 0

    def observe(self, message: Message) -> None:
        self.recipients += 1
        if self.sample is None:
            self.sample = message
        locale = message.locale or ""
        self.locales[locale] += 1
        if locale not in self.samples:
            self.samples[locale] = message
        if self.kind == "sms":
            length = sms_length(message.text)
            self.total_segments += length.segments
            if self.longest_sms is None or length.units > self.longest_sms.units:
                self.longest_sms = length


@dataclass(slots=True)
class Plan:
    """The result of preflight: every selected channel, rendered and checked."""

    incident: Incident
    channels: dict[str, ChannelPlan]
    #: organization.locale: broadcasts, and recipients without a valid locale, get it.
    locale: str = "en"


class _Audience:
    """The audience as something that can be walked more than once."""

    def __init__(self, source: AudienceInput) -> None:
        if isinstance(source, str | Path):
            self._items: Iterable[Recipient | SkippedRow] = CsvAudience(Path(source))
        elif iter(source) is source:
            # A one-shot iterator (e.g. a generator) is kept so later passes see it too.
            self._items = list(source)
        else:
            self._items = source

    def __iter__(self) -> Iterator[Recipient | SkippedRow]:
        return iter(self._items)


class RunControl:
    """Lets a caller (the CLI's signal handler) stop a run.

    ``stop`` is graceful: nothing new is sent, messages in flight get a grace
    period to finish, the rest stays ``pending``. ``abort`` (a second Ctrl-C)
    stops waiting for messages in flight: they are marked ``unknown``.
    """

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.aborting = asyncio.Event()

    def stop(self) -> None:
        self.stopping.set()

    def abort(self) -> None:
        self.stopping.set()
        self.aborting.set()


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

    # --- channel selection ---------------------------------------------------------

    def select(self, incident: Incident, channels: Sequence[str] | None = None) -> list[str]:
        """The channels a run uses: those asked for, else the incident's, else all configured."""
        configured = self.config.channels
        if channels:
            names, source = list(dict.fromkeys(channels)), "--channel"
        elif incident.channels is not None:
            names, source = list(dict.fromkeys(incident.channels)), "the incident's channels"
        else:
            return list(configured)
        for name in names:
            if name not in configured:
                hint = difflib.get_close_matches(name, configured, n=1)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
                error = ConfigError if source == "--channel" else IncidentError
                raise error(
                    f"{source} names '{name}', which is not a channel in {self.config.path} "
                    f"(configured: {', '.join(configured) or 'none'}){suggestion}"
                )
        return names

    def kind_of(self, name: str) -> Kind:
        settings = self.config.channels[name]
        if settings.kind is None:
            raise ConfigError(f"channel '{name}': driver '{settings.driver}' cannot be used alone")
        return settings.kind

    def _audience(self, audience: AudienceInput | None) -> _Audience:
        source = audience if audience is not None else self.config.audience
        if source is None:
            raise ConfigError(
                f"no audience: set 'audience:' in {self.config.path} or pass --audience FILE.csv"
            )
        if isinstance(source, str | Path):
            source = self.config.resolve(Path(source)) if audience is None else Path(source)
        return _Audience(source)

    # --- preflight -----------------------------------------------------------------

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
        return self._preflight(incident, channels, audience, credentials)[0]

    def _preflight(
        self,
        incident: Incident,
        channels: Sequence[str] | None,
        audience: AudienceInput | None,
        credentials: bool,
    ) -> tuple[Plan, Renderer, _Audience | None]:
        names = self.select(incident, channels)
        plans = {
            name: ChannelPlan(name, self.kind_of(name), self.config.channels[name])
            for name in names
        }
        if credentials:
            for name in names:
                require_credentials(name, self.config.channels[name])
        renderer = Renderer(self.config, incident)
        people = [p for p in plans.values() if p.kind in PER_RECIPIENT_KINDS]
        source = self._audience(audience) if people else None
        if source is not None:
            for p in people:
                p.numbers = NumberMemo() if p.kind == "sms" else None
            targets = {
                p.name: Targets(p.kind, self.config.default_region, numbers=p.numbers)  # type: ignore[arg-type]
                for p in people
            }
            for item in source:
                for p in people:
                    address = targets[p.name].address(item)
                    if address is not None and isinstance(item, Recipient):
                        p.observe(
                            renderer.message(
                                p.name, p.kind, p.settings, address=address, recipient=item
                            )
                        )
                        if item.locale is not None and renderer.invalid_locale(item.locale):
                            p.invalid_locales += 1
            for p in people:
                late = targets[p.name].late_opt_outs()
                if late:
                    # Observed before their "no" turned up: take them back out.
                    p.recipients -= len(late)
                    targets[p.name].skipped[OPTED_OUT_ELSEWHERE] += len(late)
                    p.excluded = frozenset(late)
                p.skipped = dict(targets[p.name].skipped)
        for p in plans.values():
            if p.kind not in PER_RECIPIENT_KINDS:
                p.observe(renderer.message(p.name, p.kind, p.settings, address=BROADCAST))
        return Plan(incident, plans, display_locale(renderer.default_locale)), renderer, source

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
    ) -> Result:
        """Preflight, then deliver every message not yet delivered for this announcement.

        Raises an ``InputError`` before anything is sent when input or config is wrong;
        delivery problems never raise: they are in the result (``ok``, ``failures``).
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
    ) -> Result:
        """``send`` for async code. ``control`` lets the caller stop the run gracefully."""
        plan, renderer, source = (
            (plan, Renderer(self.config, incident), None)
            if plan is not None
            else self._preflight(incident, channels, audience, credentials=not (dry_run or sandbox))
        )
        if source is None and any(p.kind in PER_RECIPIENT_KINDS for p in plan.channels.values()):
            source = self._audience(audience)
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
        with Ledger(self.config.ledger_path, mode="sandbox" if sandbox else "live") as ledger:
            result.recovered_unknown = ledger.recover_crashed()
            runs = [
                _ChannelRun(
                    self,
                    plan.channels[name],
                    results[name],
                    renderer=renderer,
                    ledger=ledger,
                    audience=source,
                    sandbox=sandbox,
                    retry_unknown=retry_unknown,
                    progress=progress,
                    control=control,
                )
                for name in plan.channels
            ]
            await asyncio.gather(*(run.run() for run in runs))
            for name, channel_result in results.items():
                channel_result.counts = ledger.counts(incident.key, name)
                channel_result.counts["skipped"] += sum(channel_result.skipped_reasons.values())
                result.failures += [
                    Failure(name, row.recipient, row.state, row.error)
                    for row in ledger.failures(incident.key, name)
                ]
        result.interrupted = control.stopping.is_set()
        return result

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


#: One provider request's worth of a batch: its (address, recipient) pairs, and their
#: messages when they were rendered already to find the groups.
_Group = tuple[list[tuple[str, Recipient | None]], list[Message] | None]


class _Breaker:
    """Counts consecutive transiently failed provider calls; opens (pauses the channel)
    at a threshold.

    A call counts once however many messages it carried: one refused SendGrid batch
    is one failure of the provider, not a thousand.
    """

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.failures = 0

    def record(self, outcomes: Sequence[Outcome]) -> None:
        if outcomes and all(o.state == "failed" and o.retryable for o in outcomes):
            self.failures += 1
        elif outcomes:
            self.failures = 0

    @property
    def open(self) -> bool:
        return self.failures >= self.threshold


class _RateLimiter:
    """Spaces requests at most ``rate`` per second (no burst: providers punish bursts)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter, so many clients do not retry in lock-step."""
    return min(_BACKOFF_BASE * 2 ** (attempt - 1), _BACKOFF_CAP) * random.uniform(0.5, 1.0)


def _network_failure(exc: BaseException) -> Outcome:
    """A transport error as an outcome. A request that may have reached the provider is
    ``unknown`` rather than retried, because retrying it could send the message twice."""
    text = redact(str(exc)) or type(exc).__name__
    if never_reached_provider(exc):
        return Outcome.failed(f"could not connect: {text}", code="connect", retryable=True)
    if isinstance(exc, httpx.UnsupportedProtocol):
        # A base_url that is not http(s): nothing left, and no message can.
        return Outcome.failed(f"cannot send: {text}", code="config", fatal=True)
    if isinstance(exc, httpx.TransportError):
        return Outcome(
            state="unknown",
            code="no-answer",
            error=f"no complete answer from the provider ({type(exc).__name__}: {text}); "
            "it may or may not have the message",
        )
    if isinstance(exc, OSError | asyncio.TimeoutError):
        return Outcome.failed(f"network error: {text}", code="network", retryable=True)
    log.exception("unexpected error in a channel adapter")
    return Outcome.failed(f"internal error: {type(exc).__name__}: {text}", code="internal")


class _ChannelRun:
    """Delivers one channel's messages for one announcement."""

    def __init__(
        self,
        announcer: Announcer,
        plan: ChannelPlan,
        result: ChannelResult,
        *,
        renderer: Renderer,
        ledger: Ledger,
        audience: _Audience | None,
        sandbox: bool,
        retry_unknown: bool,
        progress: ProgressCallback | None,
        control: RunControl,
    ) -> None:
        self.config = announcer.config
        self.plan = plan
        self.result = result
        self.renderer = renderer
        self.ledger = ledger
        self.audience = audience
        self.sandbox = sandbox
        self.retry_unknown = retry_unknown
        self.progress = progress
        self.control = control
        self.incident = renderer.incident
        self.key = self.incident.key
        settings = plan.settings
        self.max_attempts = settings.max_attempts
        self.max_retry_seconds = settings.max_retry_seconds
        self.breaker = _Breaker(settings.breaker_threshold)
        self.limiter = _RateLimiter(settings.effective_rate)
        self.workers = settings.effective_concurrency
        #: What stopped a worker unexpectedly (raised again once the others are done).
        self._failure: Exception | None = None
        self.done = 0
        # Final outcomes not yet written to the ledger: see ``_finish``.
        self._unrecorded: list[tuple[str, Outcome]] = []
        self._flush_scheduled = False

    def _channel(self) -> Channel:
        name, kind = self.plan.name, self.plan.kind
        if self.sandbox:
            outbox = OutboxSettings(path=self.config.outbox)
            return build_channel(name, kind, outbox, self.config)
        return build_channel(name, kind, self.plan.settings, self.config)

    def _stop_reason(self) -> str | None:
        if self.control.stopping.is_set():
            return "interrupted"
        if self.breaker.open:
            return (
                f"paused after {self.breaker.failures} failures in a row from the provider; "
                "the rest stays pending for the next send"
            )
        return self.result.stopped

    async def run(self) -> None:
        started = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        try:
            async with self._channel() as channel:
                self._start_workers(channel, tasks)
                await self._drain(tasks)
                self._flush()
                if self._failure is not None:
                    raise self._failure
                self.result.fallback_reason = getattr(channel, "reason", None)
        except Exception as exc:  # the channel could not even open: others go on
            if isinstance(exc, OutageCommsError):  # a known problem: the summary says it
                log.debug("channel %s stopped", self.plan.name, exc_info=True)
            else:
                log.exception("channel %s failed", self.plan.name)
            self.result.stopped = redact(str(exc)) or type(exc).__name__
            # Its messages are recorded as pending, so the summary and the exit code
            # show them as not delivered and the next send picks them up.
            try:
                for _ in self._units(_PLAN_CHUNK):
                    pass
            except Exception:
                log.debug(
                    "channel %s: could not record its messages", self.plan.name, exc_info=True
                )
        finally:
            await self._drain(tasks)
            self._flush()
        self.result.stopped = self.result.stopped or self._stop_reason()
        self.result.seconds = time.monotonic() - started

    def _start_workers(self, channel: Channel, tasks: set[asyncio.Task[None]]) -> None:
        """Start the channel's ``concurrency`` workers, sharing one stream of groups.

        Each worker claims the next group and sends it as soon as its previous request
        is answered, in the same turn of the event loop. A central feeder handing out
        slots would start the next request only a few turns later, after every other
        answer that arrived meanwhile was handled: with 50 requests in flight that
        cost about a tenth of the throughput (bench/RESULTS.md).
        """
        groups = self._groups(channel)
        for _ in range(self.workers):
            task = asyncio.create_task(self._work(channel, groups))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    def _groups(self, channel: Channel) -> Iterator[_Group]:
        """Every planned unit, as the groups its provider takes in one request each."""
        for unit in self._units(channel.batch_size):
            yield from self._split(channel, unit)

    async def _work(self, channel: Channel, groups: Iterator[_Group]) -> None:
        """One worker: claim and deliver group after group until done or stopped.

        The workers share ``groups``; a generator never runs in two of them at once
        because it does not await.
        """
        try:
            for done, (unit, rendered) in enumerate(groups, start=1):
                if self._failure is not None or self._stop_reason():
                    return
                messages = self._claim(unit, rendered)
                if messages:
                    await self._attempts(channel, messages)
                if done % _YIELD_EVERY == 0:
                    # A channel that never waits (the sandbox outbox, a file banner) would
                    # otherwise hold the event loop until it is done: the other channels,
                    # Ctrl-C and the ledger's end-of-turn writes would all wait for it.
                    await asyncio.sleep(0)
        except Exception as exc:  # reading the audience or the ledger failed: stop them all
            self._failure = self._failure or exc

    async def _drain(self, tasks: set[asyncio.Task[None]]) -> None:
        """Wait for deliveries in flight. Once the run is stopped they get a grace period
        (none after ``abort``); those still running then are cancelled, which marks
        their messages ``unknown``."""
        pending = set(tasks)
        if not pending:
            return
        loop = asyncio.get_running_loop()
        stop = asyncio.ensure_future(self.control.stopping.wait())
        abort = asyncio.ensure_future(self.control.aborting.wait())
        deadline: float | None = None
        try:
            while pending and not self.control.aborting.is_set():
                timeout = None
                if self.control.stopping.is_set():
                    deadline = deadline or loop.time() + _GRACE_SECONDS
                    timeout = deadline - loop.time()
                    if timeout <= 0:
                        break
                waiters = pending | {abort} | (set() if stop.done() else {stop})
                done, _ = await asyncio.wait(
                    waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                pending -= done
        finally:
            stop.cancel()
            abort.cancel()
            late = {task for task in pending if not task.done()}
            for task in late:
                task.cancel()
            await asyncio.gather(stop, abort, *late, return_exceptions=True)

    # --- planning --------------------------------------------------------------

    def _units(self, batch_size: int) -> Iterator[list[tuple[str, Recipient | None]]]:
        """Planned units of delivery, after recording them as ``pending`` in the ledger."""
        if self.plan.kind not in PER_RECIPIENT_KINDS:
            self.ledger.add_pending(self.key, self.incident.id, self.plan.name, [BROADCAST])
            yield [(BROADCAST, None)]
            return
        assert self.audience is not None
        targets = Targets(
            self.plan.kind,  # type: ignore[arg-type]
            self.config.default_region,
            excluded=self.plan.excluded,
            numbers=self.plan.numbers,
        )
        chunk: list[tuple[str, Recipient | None]] = []
        for item in self.audience:
            address = targets.address(item)
            if address is None or not isinstance(item, Recipient):
                continue
            chunk.append((address, item))
            if len(chunk) >= max(_PLAN_CHUNK, batch_size):
                yield from self._plan_chunk(chunk, batch_size)
                chunk = []
        if chunk:
            yield from self._plan_chunk(chunk, batch_size)

    def _plan_chunk(
        self, chunk: list[tuple[str, Recipient | None]], batch_size: int
    ) -> Iterator[list[tuple[str, Recipient | None]]]:
        self.ledger.add_pending(self.key, self.incident.id, self.plan.name, [a for a, _ in chunk])
        for start in range(0, len(chunk), batch_size):
            yield chunk[start : start + batch_size]

    def _split(self, channel: Channel, unit: list[tuple[str, Recipient | None]]) -> list[_Group]:
        """A batch as the groups its provider takes in one request each (with their
        messages, already rendered to find the groups)."""
        if len(unit) < 2:
            return [(unit, None)]
        messages = [self._render(address, recipient) for address, recipient in unit]
        return [
            ([unit[i] for i in indexes], [messages[i] for i in indexes])
            for indexes in channel.split(messages)
        ]

    def _render(
        self, address: str, recipient: Recipient | None, reply_to: str | None = None
    ) -> Message:
        return self.renderer.message(
            self.plan.name,
            self.plan.kind,
            self.plan.settings,
            address=address,
            recipient=recipient,
            reply_to=reply_to,
        )

    def _claim(
        self, unit: list[tuple[str, Recipient | None]], rendered: list[Message] | None = None
    ) -> list[Message]:
        """Mark the unit's claimable rows ``sending``; their messages.

        The outcomes answered since the last write are recorded in the same commit.
        """
        addresses = [address for address, _ in unit]
        with self.ledger.transaction():
            self._record()
            claimed = set(
                self.ledger.claim(
                    self.key, self.plan.name, addresses, retry_unknown=self.retry_unknown
                )
            )
        if len(claimed) < len(unit):
            self._count_unclaimed([a for a in addresses if a not in claimed])
        if rendered is not None:
            return [m for (address, _), m in zip(unit, rendered, strict=True) if address in claimed]
        reply_to = None
        if self.plan.kind == "social" and claimed:
            reply_to = self.ledger.latest_post(self.incident.id, self.plan.name)
        return [
            self._render(address, recipient, reply_to)
            for address, recipient in unit
            if address in claimed
        ]

    def _count_unclaimed(self, addresses: list[str]) -> None:
        states = self.ledger.states(self.key, self.plan.name, addresses)
        for address in addresses:
            state = states.get(address)
            if state == "sending":
                self.result.busy_elsewhere += 1
            elif state == "unknown":
                self.result.unknown_kept += 1
            else:
                self.result.already_done += 1
        self._advance(len(addresses))

    def _advance(self, count: int) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(self.plan.name, self.done, self.plan.recipients)

    # --- delivering ------------------------------------------------------------

    async def _attempts(self, channel: Channel, messages: list[Message]) -> None:
        attempt, waited = 1, 0.0
        in_call = False
        try:
            while True:
                await self.limiter.wait()
                if self._stop_reason():
                    # Stopped while waiting for the rate limit: nothing went out.
                    self._release(messages)
                    return
                in_call = True
                try:
                    outcomes = await channel.send(messages)
                except Exception as exc:
                    outcomes = [_network_failure(exc)] * len(messages)
                in_call = False
                self.breaker.record(outcomes)
                retry = [
                    (m, o)
                    for m, o in zip(messages, outcomes, strict=True)
                    if o.state == "failed" and o.retryable and not o.fatal
                ]
                final = [
                    (m, o)
                    for m, o in zip(messages, outcomes, strict=True)
                    if not (o.state == "failed" and o.retryable and not o.fatal)
                ]
                self._finish(channel, final)
                if any(o.fatal for o in outcomes):
                    first = next(o for o in outcomes if o.fatal)
                    self.result.stopped = f"stopped: {first.error_text}"
                messages = [m for m, _ in retry]
                if not retry:
                    return
                delay = max((o.retry_after or 0.0) for _, o in retry) or _backoff(attempt)
                if attempt >= self.max_attempts or waited + delay > self.max_retry_seconds:
                    if not self._stop_reason():
                        if attempt < self.max_attempts:
                            # Say why it was given up early (each outcome once: a network
                            # error is one object shared by the whole batch).
                            for outcome in {id(o): o for _, o in retry}.values():
                                outcome.error = (
                                    f"{outcome.error}; not retried: the provider asks to wait "
                                    f"{delay:.0f}s, beyond max_retry_seconds "
                                    f"({self.max_retry_seconds:g}s)"
                                )
                        self._finish(channel, retry)
                        return
                elif not self._stop_reason():
                    log.debug(
                        "%s: %d message(s) failed transiently (%s); attempt %d of %d, "
                        "next in %.2fs",
                        self.plan.name,
                        len(retry),
                        retry[0][1].error_text,
                        attempt,
                        self.max_attempts,
                        delay,
                    )
                    await self._pause(delay)
                    waited += delay
                if self._stop_reason():
                    # Paused or interrupted: not delivered, so left pending for the next send.
                    self._release(messages)
                    return
                attempt += 1
                self.ledger.add_attempt(self.key, self.plan.name, [m.recipient for m in messages])
        except asyncio.CancelledError:
            if in_call:
                # Interrupted mid-call: the provider may have the messages; never guess.
                self.ledger.mark_unknown(
                    self.key,
                    self.plan.name,
                    [m.recipient for m in messages],
                    "interrupted while sending: the provider may or may not have it",
                )
                self.result.unknown_now += len(messages)
                self._advance(len(messages))
            else:
                # Between attempts: the last answer was a definite "not sent".
                self._release(messages)
            raise

    async def _pause(self, seconds: float) -> None:
        """Wait before a retry; cut short when the run is stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.control.stopping.wait(), timeout=seconds)

    def _release(self, messages: list[Message]) -> None:
        if messages:
            self.ledger.release(self.key, self.plan.name, [m.recipient for m in messages])
            self._advance(len(messages))

    def _finish(self, channel: Channel, done: list[tuple[Message, Outcome]]) -> None:
        """Count final outcomes; they are written with the next claim, in its commit.

        A worker claims its next message right after an answer, so this saves a
        transaction per message while a crash still leaves at most one message per
        worker ``unknown``: never ``pending``, so nothing is sent twice. Outcomes no
        claim follows are written at the end of this turn of the event loop.
        """
        if not done:
            return
        for message, outcome in done:
            outcome.provider = outcome.provider or channel.driver
            if outcome.state == "sent":
                self.result.sent_now += 1
                self.result.providers[outcome.provider] += 1
            elif outcome.state == "unknown":
                self.result.unknown_now += 1
            else:
                self.result.failed_now += 1
            self._unrecorded.append((message.recipient, outcome))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _record(self) -> None:
        """Write the outcomes ``_finish`` collected."""
        done, self._unrecorded = self._unrecorded, []
        if done:
            self.ledger.finish(self.key, self.plan.name, done)
            self._advance(len(done))

    def _flush(self) -> None:
        """``_record`` outside a claim. A ledger that cannot be written stops the channel:
        sending on without a record could send twice."""
        self._flush_scheduled = False
        try:
            self._record()
        except Exception as exc:
            log.exception("channel %s: could not record outcomes", self.plan.name)
            self._failure = self._failure or exc
