"""What is retried, what is unknown, and when a channel pauses."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Awaitable, Callable

import httpx
import pytest
from aiohttp import web

from outagecomms.channels.base import make_http_client, retry_after
from outagecomms.models import Outcome
from outagecomms.run.retry import Breaker, network_failure
from tests.fakes import closed_port


async def _serve(
    handler: Callable[[web.Request], Awaitable[web.Response]],
) -> tuple[web.AppRunner, int]:
    """A one-route server on 127.0.0.1 answering ``POST /`` with ``handler``; its port."""
    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


async def _dropping_server() -> tuple[web.AppRunner, int]:
    """Reads the request, then closes the connection without answering."""

    async def drop(request: web.Request) -> web.Response:
        await request.read()
        assert request.transport is not None
        request.transport.close()
        return web.Response(text="never seen")

    return await _serve(drop)


async def _failure(url: str, timeout: float = 2.0) -> BaseException:
    async with make_http_client(timeout=timeout, connections=2) as http:
        with pytest.raises(httpx.TransportError) as caught:
            await http.post(url, json={})
    return caught.value


async def test_a_refused_connection_is_retried() -> None:
    outcome = network_failure(await _failure(f"http://127.0.0.1:{closed_port()}/"))
    assert (outcome.state, outcome.retryable, outcome.code) == ("failed", True, "connect")


async def test_a_connection_dropped_after_the_request_is_unknown_not_retried() -> None:
    # The aiohttp transport reports this as httpx.ConnectTimeout: the cause decides.
    runner, port = await _dropping_server()
    try:
        exc = await _failure(f"http://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()
    assert isinstance(exc, httpx.ConnectTimeout)
    outcome = network_failure(exc)
    assert outcome.state == "unknown" and not outcome.retryable


async def test_a_read_timeout_is_unknown() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response()

    runner, port = await _serve(slow)
    try:
        exc = await _failure(f"http://127.0.0.1:{port}/", timeout=0.2)
    finally:
        await runner.cleanup()
    assert network_failure(exc).state == "unknown"


def test_a_base_url_that_is_not_http_stops_the_channel() -> None:
    outcome = network_failure(httpx.UnsupportedProtocol("ftp://x"))
    assert outcome.state == "failed" and outcome.fatal and not outcome.retryable


def test_retry_after_in_seconds_as_a_date_and_as_an_x_reset() -> None:
    now = 1_800_000_000.0
    assert retry_after({"retry-after": "7"}, now=now) == 7.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after({"retry-after": date}, now=now) == 30.0
    assert retry_after({"x-rate-limit-reset": str(int(now) + 90)}, now=now) == 90.0
    assert retry_after({}, now=now) is None


def _transient() -> Outcome:
    return Outcome.failed("HTTP 503", code=503, retryable=True)


def test_the_breaker_counts_provider_calls_not_messages() -> None:
    breaker = Breaker(threshold=3)
    breaker.record([_transient()] * 1000)  # one refused SendGrid batch
    assert not breaker.open
    breaker.record([_transient()])
    breaker.record([_transient(), Outcome.sent("id")])  # partly through: the provider works
    assert breaker.failures == 0
    for _ in range(3):
        breaker.record([_transient()])
    assert breaker.open
