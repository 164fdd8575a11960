"""Reading the announcements for the server: off the event loop, briefly cached.

The store is a blocking (SQLite/PostgreSQL) client, so every read runs in one
worker thread of its own, never on the event loop. A board is reused for
``ttl`` seconds: a burst of page views costs one query, and a ``send`` running
next to the server shows within that time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..redact import redact
from .board import Board, build_board

if TYPE_CHECKING:
    from ..config import Config
    from ..store import AnnouncementRecord, Mode, Store

log = logging.getLogger(__name__)

#: How long one reading of the store serves requests, in seconds.
DEFAULT_TTL = 1.0


class StatusUnavailable(Exception):
    """The store could not be read (the server answers 503 and tries again next time)."""


class AnnouncementSource(Protocol):
    """Anything that lists the recorded announcements of one mode (a ``Store`` does)."""

    def announcements(self, incident: str | None = None) -> list[AnnouncementRecord]: ...


class StoreSource:
    """The ledger store of the config, opened read-only once it exists.

    A SQLite ledger that does not exist yet means nothing was sent: no
    announcements, and nothing is created. The store is opened on the first
    read after it appears and kept open (WAL: reading never blocks ``send``).
    """

    def __init__(self, config: Config, *, sandbox: bool) -> None:
        self._url = config.ledger
        self._base_dir: Path = config.root
        self._mode: Mode = "sandbox" if sandbox else "live"
        self._store: Store | None = None

    def announcements(self, incident: str | None = None) -> list[AnnouncementRecord]:
        if self._store is None:
            from ..store import open_store, sqlite_path

            path = sqlite_path(self._url, self._base_dir)
            if path is not None and not path.exists():
                return []
            self._store = open_store(
                self._url, mode=self._mode, base_dir=self._base_dir, read_only=True
            )
        return self._store.announcements(incident)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class BoardReader:
    """Turns the source's announcements into a ``Board``, at most once per ``ttl``."""

    def __init__(
        self,
        source: AnnouncementSource,
        *,
        history_days: int,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._source = source
        self._history_days = history_days
        self._ttl = ttl
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outagecomms-store")
        self._lock = asyncio.Lock()
        self._board: Board | None = None
        self._read_at = 0.0

    async def board(self) -> Board:
        """The current board (one store query per ``ttl``, however many requests wait)."""
        async with self._lock:
            if self._board is None or time.monotonic() - self._read_at >= self._ttl:
                loop = asyncio.get_running_loop()
                try:
                    records = await loop.run_in_executor(self._executor, self._source.announcements)
                except Exception as exc:  # whatever the store's client raises: no data now
                    log.error("cannot read the ledger: %s", redact(str(exc)))
                    raise StatusUnavailable from exc
                self._board = build_board(
                    records, now=self._clock(), history_days=self._history_days
                )
                self._read_at = time.monotonic()
            return self._board

    async def close(self) -> None:
        """Close the source in its own thread, then stop the thread."""
        close = getattr(self._source, "close", None)
        if close is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)
