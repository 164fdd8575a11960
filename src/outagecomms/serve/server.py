"""Running the application until asked to stop: bind, serve, shut down gracefully.

Binding errors (a port in use, an address this machine does not have) become
``ConfigError``s with one plain line, so the CLI exits 2 with a clear message.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable

from aiohttp import web

from ..errors import ConfigError

#: Seconds that requests in progress get to finish once a stop is asked for.
SHUTDOWN_SECONDS = 5.0


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    stop: asyncio.Event,
    ready: Callable[[str], None] = lambda url: None,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set; ``ready`` gets the address."""
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_SECONDS, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(_bind_problem(host, port, exc)) from None
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        ready(f"http://{shown}:{bound[1]}")
        await stop.wait()
    finally:
        await runner.cleanup()


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: the port is already in use; stop the other server "
            "or choose another with --listen HOST:PORT"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot listen on {where}: permission denied; use a port above 1023"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: this machine has no such address"
    return f"cannot listen on {where}: {exc.strerror or exc}"
