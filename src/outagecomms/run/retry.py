"""When to try a message again: backoff, the circuit breaker, the rate limiter, and what a
transport error means (never retry what may have reached the provider)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence

# One classification for the announcer and FallbackChannel alike.
from ..channels.base import network_failure as network_failure
from ..models import Outcome

log = logging.getLogger(__name__)

_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 30.0


class Breaker:
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


class RateLimiter:
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


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter, so many clients do not retry in lock-step."""
    return min(_BACKOFF_BASE * 2 ** (attempt - 1), _BACKOFF_CAP) * random.uniform(0.5, 1.0)


def is_transient(outcome: Outcome) -> bool:
    """A failure a later attempt may fix."""
    return outcome.state == "failed" and outcome.retryable and not outcome.fatal
