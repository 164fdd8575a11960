"""How a caller (the CLI's signal handler) stops a run in progress."""

from __future__ import annotations

import asyncio


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
