"""Leases: how a sender tells the others it is alive, on any machine.

Every store that claims rows owns a random id and keeps a row in ``leases`` whose
``heartbeat_at`` a background thread refreshes every few seconds. A ``sending``
row whose owner's heartbeat is older than the lease age was left by a sender that
crashed (or lost the database): the next ``send`` or ``ledger`` turns it ``unknown``.
No process id or hostname is trusted: pids are reused (pid 1 in every container)
and hostnames change.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ..errors import ConfigError

log = logging.getLogger(__name__)

#: Environment variable for the lease age in seconds (tests shorten it).
LEASE_ENV = "OUTAGECOMMS_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 30.0


def lease_seconds() -> float:
    """The lease age: ``$OUTAGECOMMS_LEASE_SECONDS`` or 30 seconds."""
    text = os.environ.get(LEASE_ENV)
    if not text:
        return DEFAULT_LEASE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigError(f"{LEASE_ENV} must be a number of seconds above 0, not '{text}'")
    return value


def new_owner() -> str:
    """A sender's id: random, so it never repeats across processes, restarts or machines."""
    return uuid.uuid4().hex


def expired_before(seconds: float) -> str:
    """The heartbeat time before which a lease is expired, in the store's time format."""
    cutoff = datetime.now(UTC) - timedelta(seconds=seconds)
    return cutoff.isoformat(timespec="microseconds").replace("+00:00", "Z")


class Heartbeat:
    """A daemon thread calling ``beat`` every ``interval`` seconds until stopped.

    A thread rather than an asyncio task: a sender whose event loop is busy for a
    moment is still alive, and must not lose its rows to another sender.
    """

    def __init__(self, beat: Callable[[], None], interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outagecomms-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._beat()
            except Exception:  # the database may be back at the next beat
                log.debug("lease heartbeat failed", exc_info=True)
