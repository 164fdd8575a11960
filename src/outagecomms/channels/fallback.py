"""A primary driver with a fallback of the same kind (own SMTP server first, then SendGrid).

The primary is probed when the channel opens; when it is down, or when it
fails transiently during the run, it is given up for the rest of the run
and every remaining message goes through the fallback. Each outcome names
the driver that carried it, so the ledger shows who delivered what.

Never twice: a message moves to the fallback only when the primary certainly
does not have it: the connection was refused, the name did not resolve, or
the primary gave a definite error answer (4xx/5xx, an SMTP error reply). A
failure after the request went out (a read timeout, a connection dropped
while waiting for the answer) leaves the message ``unknown``, as everywhere
else, because the primary may have delivered it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..models import Message, Outcome
from ..redact import redact
from .base import Channel, CheckResult, CheckStatus, network_failure

log = logging.getLogger(__name__)


class FallbackChannel(Channel):
    def __init__(self, primary: Channel, secondary: Channel) -> None:
        super().__init__(primary.name, primary.kind, primary.settings, primary.config)
        self.primary = primary
        self.secondary = secondary
        self.primary_down = False
        #: Why the primary was given up, for the summary.
        self.reason: str | None = None

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return (self.secondary if self.primary_down else self.primary).batch_size

    def split(self, messages: Sequence[Message]) -> list[list[int]]:
        return (self.secondary if self.primary_down else self.primary).split(messages)

    @property
    def used_fallback(self) -> bool:
        return self.primary_down

    async def open(self) -> None:
        await self.secondary.open()
        try:
            await self.primary.open()
            problem = await self.primary.probe()
        except Exception as exc:  # any failure to reach the primary means: use the fallback
            problem = redact(str(exc)) or type(exc).__name__
        if problem:
            self._give_up(problem)

    async def close(self) -> None:
        try:
            await self.primary.close()
        finally:
            await self.secondary.close()

    def _give_up(self, reason: str) -> None:
        if not self.primary_down:
            log.warning(
                "%s: %s is unavailable (%s); using %s",
                self.name,
                self.primary.driver,
                reason,
                self.secondary.driver,
            )
        self.primary_down = True
        self.reason = reason

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        if self.primary_down:
            return await self._via_secondary(messages)
        try:
            outcomes = await self.primary.send(messages)
        except Exception as exc:
            outcomes = [network_failure(exc) for _ in messages]
        for outcome in outcomes:
            outcome.provider = outcome.provider or self.primary.driver
        # A transient failure is a definite "not taken" (see the module doc); ``unknown``
        # outcomes and permanent refusals stay with the primary.
        retry = [
            i for i, o in enumerate(outcomes) if o.state == "failed" and o.retryable and not o.fatal
        ]
        if retry:
            self._give_up(outcomes[retry[0]].error_text or "transient failure")
            rerouted = await self._via_secondary([messages[i] for i in retry])
            for index, outcome in zip(retry, rerouted, strict=True):
                outcomes[index] = outcome
        return outcomes

    async def _via_secondary(self, messages: Sequence[Message]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        # The secondary may take smaller batches than the primary was handed.
        size = self.secondary.batch_size
        for start in range(0, len(messages), size):
            outcomes += await self.secondary.send(messages[start : start + size])
        for outcome in outcomes:
            outcome.provider = outcome.provider or self.secondary.driver
        return outcomes

    async def check(self) -> CheckResult:
        first = await self.primary.check()
        second = await self.secondary.check()
        statuses = {first.status, second.status}
        status: CheckStatus = next(
            (s for s in ("refused", "error", "accepted") if s in statuses), "not checkable"
        )
        detail = f"{self.primary.driver}: {first.status}"
        detail += f" ({first.detail})" if first.detail else ""
        detail += f"; fallback {self.secondary.driver}: {second.status}"
        detail += f" ({second.detail})" if second.detail else ""
        return CheckResult(status, detail)
