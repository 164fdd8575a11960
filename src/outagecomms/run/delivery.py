"""Delivery: one channel's pool of workers claiming, sending and recording its messages.

Within a channel, units (one message, or a SendGrid batch) are claimed (``sending``,
committed) just before the provider call, then recorded ``sent``/``failed``/``unknown``.
Transient failures are retried here (``retry.py``); a channel whose provider keeps
failing pauses and leaves its rows ``pending``.

Every store call (and the planning that feeds the claims) runs in the run's store
thread (``StoreThread``), never on the event loop: a ledger that waits for another
process's lock must not hold up the answers in flight, nor Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..channels import build_channel
from ..channels.base import Channel
from ..channels.twilio_sms import OPTED_OUT_CODE
from ..config import Config, OutboxSettings
from ..errors import OutageCommsError, StoreError
from ..models import Message, Outcome, Recipient
from ..redact import redact
from ..render import Renderer
from ..result import ChannelResult
from ..store import Store, now
from .control import RunControl
from .planning import Planner, Unit
from .preflight import ChannelPlan
from .retry import Breaker, RateLimiter, backoff, is_transient, network_failure

log = logging.getLogger(__name__)

#: ``progress(channel, done, total)`` after every finished unit.
ProgressCallback = Callable[[str, int, int], None]

#: One provider request's worth of a batch: its (address, recipient) pairs, and their
#: messages when they were rendered already to find the groups.
Group = tuple[Unit, list[Message] | None]

T = TypeVar("T")

# How long in-flight deliveries may finish after an interrupt before they are marked unknown.
_GRACE_SECONDS = 10.0


class StoreThread:
    """One thread that runs a run's store calls in order, off the event loop.

    One thread, so calls keep the order they were made in (an outcome recorded before
    the next claim), and a SQLite connection is never used by two threads at once.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="outagecomms-store")

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._executor.submit(fn, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the store thread; its result."""
        return await asyncio.wrap_future(self._executor.submit(fn, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class ChannelRun:
    """Delivers one channel's messages for one announcement."""

    def __init__(
        self,
        config: Config,
        plan: ChannelPlan,
        result: ChannelResult,
        *,
        renderer: Renderer,
        store: Store,
        store_thread: StoreThread,
        planner: Planner,
        sandbox: bool,
        retry_unknown: bool,
        progress: ProgressCallback | None,
        control: RunControl,
    ) -> None:
        self.config = config
        self.plan = plan
        self.result = result
        self.renderer = renderer
        self.store = store
        self.io = store_thread
        self.planner = planner
        self.sandbox = sandbox
        self.retry_unknown = retry_unknown
        self.progress = progress
        self.control = control
        self.incident = renderer.incident
        self.key = self.incident.key
        settings = plan.settings
        self.max_attempts = settings.max_attempts
        self.max_retry_seconds = settings.max_retry_seconds
        self.breaker = Breaker(settings.breaker_threshold)
        self.limiter = RateLimiter(settings.effective_rate)
        self.workers = settings.effective_concurrency
        #: What stopped a worker unexpectedly (raised again once the others are done).
        self._failure: Exception | None = None
        self.done = 0
        # Final outcomes not yet written to the store: see ``_finish``.
        self._unrecorded: list[tuple[str, Outcome]] = []
        self._flush_scheduled = False
        self._announced = False
        # ``done`` and ``_unrecorded`` are shared by the event loop and the store thread.
        self._shared = threading.Lock()
        # Workers waiting for their next group, served together: see ``_take``.
        self._wanted: list[asyncio.Future[list[Message] | None]] = []

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
                await self._written()
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
                await self.io.call(self.planner.record_all)
            except Exception:
                log.debug(
                    "channel %s: could not record its messages", self.plan.name, exc_info=True
                )
        finally:
            await self._drain(tasks)
            await self._written()
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

    def _groups(self, channel: Channel) -> Iterator[Group]:
        """Every planned unit, as the groups its provider takes in one request each."""
        for unit in self.planner.units(channel.batch_size):
            yield from self._split(channel, unit)

    async def _work(self, channel: Channel, groups: Iterator[Group]) -> None:
        """One worker: claim and deliver group after group until done or stopped.

        The workers share ``groups``; the store thread advances it, one call at a time
        for all the workers asking together.
        """
        try:
            while self._failure is None and not self._stop_reason():
                messages = await self._take(groups)
                if messages is None:
                    return
                if messages:
                    await self._attempts(channel, messages)
        except Exception as exc:  # reading the audience or the store failed: stop them all
            self._failure = self._failure or exc

    async def _take(self, groups: Iterator[Group]) -> list[Message] | None:
        """The next group's claimed messages (None when there is none left).

        The workers asking in one turn of the event loop (those whose answers arrived
        together) are served by one store call, which claims all their groups in one
        statement and one commit (``_take_together``): the ledger's largest cost per SMS
        was a commit per message (bench/RESULTS.md). Each worker still holds one group at
        a time, so a crash leaves at most that group ``unknown``. A worker cancelled
        while its claim runs gives the claimed rows back: they were never sent.
        """
        loop = asyncio.get_running_loop()
        wanted: asyncio.Future[list[Message] | None] = loop.create_future()
        if not self._wanted:
            loop.call_soon(self._take_together, groups)
        self._wanted.append(wanted)
        try:
            return await wanted
        except asyncio.CancelledError:
            if wanted.done() and not wanted.cancelled() and wanted.exception() is None:
                self.io.submit(self._release_now, wanted.result() or [])
            raise

    def _take_together(self, groups: Iterator[Group]) -> None:
        """One store call for the workers that asked in this turn (see ``_take``); its
        answer is handed out in the event loop's next turn."""
        wanted, self._wanted = self._wanted, []
        loop = asyncio.get_running_loop()

        def answered(taken: Future[list[list[Message] | None]]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
                loop.call_soon_threadsafe(self._hand_out, wanted, taken)

        self.io.submit(self._take_now, groups, len(wanted)).add_done_callback(answered)

    def _hand_out(
        self,
        wanted: list[asyncio.Future[list[Message] | None]],
        taken: Future[list[list[Message] | None]],
    ) -> None:
        failure = taken.exception()
        results = taken.result() if failure is None else [None] * len(wanted)
        for future, messages in zip(wanted, results, strict=True):
            if future.cancelled():
                if messages:  # claimed for a worker that is gone: never sent
                    self.io.submit(self._release_now, messages)
            elif failure is not None:
                future.set_exception(failure)
            else:
                future.set_result(messages)

    def _take_now(self, groups: Iterator[Group], count: int) -> list[list[Message] | None]:
        """Up to ``count`` groups claimed together; None for each one beyond the last."""
        taken = list(itertools.islice(groups, count))
        claimed: list[list[Message] | None] = list(self._claim(taken)) if taken else []
        return claimed + [None] * (count - len(taken))

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

    # --- claiming --------------------------------------------------------------

    def _split(self, channel: Channel, unit: Unit) -> list[Group]:
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

    def _claim(self, groups: list[Group]) -> list[list[Message]]:
        """Mark the groups' claimable rows ``sending``; each group's messages.

        The messages are rendered before the claim, so that claimed rows wait for
        nothing but their hand-out. The outcomes answered since the last write are
        recorded in the same commit.
        """
        addresses = [address for unit, _ in groups for address, _ in unit]
        ready = [self._messages(unit, rendered) for unit, rendered in groups]
        # Outcomes to record share the claim's commit; a claim alone needs no transaction.
        together = self.store.transaction() if self._unrecorded else contextlib.nullcontext()
        with together:
            self._record()
            claimed = set(
                self.store.claim(
                    self.key, self.plan.name, addresses, retry_unknown=self.retry_unknown
                )
            )
        if len(claimed) < len(addresses):
            self._count_unclaimed([a for a in addresses if a not in claimed])
        return [[m for m in messages if m.recipient in claimed] for messages in ready]

    def _messages(self, unit: Unit, rendered: list[Message] | None) -> list[Message]:
        if rendered is not None:
            return rendered
        reply_to = None
        if self.plan.kind == "social":
            reply_to = self.store.latest_post(self.incident.id, self.plan.name)
        return [self._render(address, recipient, reply_to) for address, recipient in unit]

    def _count_unclaimed(self, addresses: list[str]) -> None:
        states = self.store.states(self.key, self.plan.name, addresses)
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
        with self._shared:
            self.done += count
            done = self.done
        if self.progress is not None:
            self.progress(self.plan.name, done, self.plan.recipients)

    # --- delivering ------------------------------------------------------------

    async def _attempts(self, channel: Channel, messages: list[Message]) -> None:
        attempt, waited = 1, 0.0
        in_call = False
        try:
            while True:
                await self.limiter.wait()
                if self._stop_reason():
                    # Stopped while waiting for the rate limit: nothing went out.
                    await self.io.call(self._release_now, messages)
                    return
                in_call = True
                try:
                    outcomes = await channel.send(messages)
                except Exception as exc:
                    outcomes = [network_failure(exc)] * len(messages)
                in_call = False
                self.breaker.record(outcomes)
                pairs = list(zip(messages, outcomes, strict=True))
                retry = [(m, o) for m, o in pairs if is_transient(o)]
                self._finish(channel, [(m, o) for m, o in pairs if not is_transient(o)])
                if any(o.fatal for o in outcomes):
                    first = next(o for o in outcomes if o.fatal)
                    self.result.stopped = f"stopped: {first.error_text}"
                messages = [m for m, _ in retry]
                if not retry:
                    return
                delay = max((o.retry_after or 0.0) for _, o in retry) or backoff(attempt)
                if attempt >= self.max_attempts or waited + delay > self.max_retry_seconds:
                    if not self._stop_reason():
                        if attempt < self.max_attempts:
                            self._explain_give_up(retry, delay)
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
                    await self.io.call(self._release_now, messages)
                    return
                attempt += 1
                await self.io.call(
                    self.store.add_attempt,
                    self.key,
                    self.plan.name,
                    [m.recipient for m in messages],
                )
        except asyncio.CancelledError:
            if in_call:
                # Interrupted mid-call: the provider may have the messages; never guess.
                self.io.submit(
                    self.store.mark_unknown,
                    self.key,
                    self.plan.name,
                    [m.recipient for m in messages],
                    "interrupted while sending: the provider may or may not have it",
                )
                self.result.unknown_now += len(messages)
                self._advance(len(messages))
            else:
                # Between attempts: the last answer was a definite "not sent".
                self.io.submit(self._release_now, messages)
            raise

    def _explain_give_up(self, retry: list[tuple[Message, Outcome]], delay: float) -> None:
        """Say why a message was given up before its last attempt (each outcome once: a
        network error is one object shared by the whole batch)."""
        for outcome in {id(o): o for _, o in retry}.values():
            outcome.error = (
                f"{outcome.error}; not retried: the provider asks to wait "
                f"{delay:.0f}s, beyond max_retry_seconds ({self.max_retry_seconds:g}s)"
            )

    async def _pause(self, seconds: float) -> None:
        """Wait before a retry; cut short when the run is stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.control.stopping.wait(), timeout=seconds)

    def _release_now(self, messages: list[Message]) -> None:
        if messages:
            self.store.release(self.key, self.plan.name, [m.recipient for m in messages])
            self._advance(len(messages))

    # --- recording ---------------------------------------------------------------

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
            with self._shared:
                self._unrecorded.append((message.recipient, outcome))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _record(self) -> None:
        """Write the outcomes ``_finish`` collected (and, at the first one sent, that the
        announcement went out)."""
        with self._shared:
            done, self._unrecorded = self._unrecorded, []
        if done:
            self.store.finish(self.key, self.plan.name, done)
            stopped = [r for r, o in done if o.code == OPTED_OUT_CODE and self.plan.kind == "sms"]
            if stopped:
                # Twilio refuses numbers that replied STOP: no later announcement tries them.
                reason = "Twilio error 21610: the number replied STOP"
                self.store.add_suppressions([(r, "sms", "twilio-21610", reason) for r in stopped])
            if not self._announced and any(o.state == "sent" for _, o in done):
                self.store.mark_announcement_sent(self.key, now())
                self._announced = True
            self._advance(len(done))

    def _flush(self) -> None:
        """``_record`` outside a claim, queued in the store thread."""
        self._flush_scheduled = False
        self.io.submit(self._record_or_stop)

    def _record_or_stop(self) -> None:
        """A store that cannot be written stops the channel: sending on without a record
        could send twice."""
        try:
            self._record()
        except StoreError as exc:  # the run's error says it, once
            log.debug("channel %s: could not record outcomes: %s", self.plan.name, exc)
            self._failure = self._failure or exc
        except Exception as exc:
            log.exception("channel %s: could not record outcomes", self.plan.name)
            self._failure = self._failure or exc

    async def _written(self) -> None:
        """Queue the outcomes not yet recorded and wait until the store thread wrote them
        (and everything queued before)."""
        await self.io.call(self._record_or_stop)
