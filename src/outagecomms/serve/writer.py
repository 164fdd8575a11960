"""The server's one way to write: suppressions and receipts, into the ledger store.

The webhooks and the unsubscribe button are the only routes that write (the pages
only read). They share one store, opened on first need (a SQLite ledger that does
not exist yet is created then) and used from one worker thread, so a ledger busy
with a running ``send`` makes a webhook wait, never the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from aiohttp import web

from ..config import Config
from ..store import Store, open_store

T = TypeVar("T")


class StoreWriter:
    """Runs store writes one at a time on a thread of their own."""

    def __init__(self, config: Config) -> None:
        self._url = config.ledger
        self._base_dir = config.root
        self._store: Store | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outagecomms-writer")

    async def run(self, work: Callable[[Store], T]) -> T:
        """``work(store)`` on the writer thread; its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, work)

    def _call(self, work: Callable[[Store], T]) -> T:
        if self._store is None:
            # Receipts concern live deliveries; suppressions are one list for both modes.
            self._store = open_store(self._url, mode="live", base_dir=self._base_dir)
        return work(self._store)

    def close(self) -> None:
        def shut() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        self._executor.submit(shut).result()
        self._executor.shutdown()


WRITER = web.AppKey("outagecomms-writer", StoreWriter)


def install_writer(app: web.Application, config: Config) -> None:
    """Give ``app`` its writer, closed with the app."""
    app[WRITER] = StoreWriter(config)

    async def close(app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, app[WRITER].close)

    app.on_cleanup.append(close)
