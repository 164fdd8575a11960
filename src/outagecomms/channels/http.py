"""The HTTP path of a channel's hot loop: one POST straight through aiohttp.

Imported only by the channels that send (and ``make_http_client``), so that commands
which send nothing never import aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import httpx
import yarl
from httpx_aiohttp.transport import AiohttpTransport, map_aiohttp_exceptions
from multidict import CIMultiDict

from .base import ApiClient, current_trace, total_deadline


async def _on_request_start(*_: object) -> None:
    trace = current_trace()
    if trace is not None:
        trace.started = True


async def _on_request_headers_sent(*_: object) -> None:
    trace = current_trace()
    if trace is not None:
        trace.sent = True


class ApiTransport(AiohttpTransport):
    """httpx_aiohttp's transport, with a direct POST for a channel's hot path.

    Its aiohttp session keeps no cookies (as ``ApiClient``): aiohttp would otherwise
    filter its cookie jar for every request. It reports when each request starts and
    when its headers are sent to the ``total_deadline`` running it, so a request that
    outlives its deadline before being written counts as never sent.
    """

    def get_client(self) -> aiohttp.ClientSession:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(_on_request_start)
        trace.on_request_headers_sent.append(_on_request_headers_sent)
        connector = aiohttp.TCPConnector(
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
            limit=self.limits.max_connections or 0,
        )
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trace_configs=[trace]
        )

    async def post(self, endpoint: Endpoint, body: bytes, deadline: float) -> Answer:
        """POST ``body`` straight through aiohttp: no httpx request or response object, the
        URL and headers prepared once. The whole exchange runs within ``deadline`` (as in
        ``ApiClient.send``, traced the same way)."""
        async with total_deadline(deadline):
            return await self.exchange(endpoint, body)

    async def exchange(self, endpoint: Endpoint, body: bytes) -> Answer:
        """The POST itself. Errors are mapped to httpx's exceptions as
        ``handle_async_request`` maps them, so ``network_failure`` classifies them alike:
        a refused connection was never sent, a read timeout may have been."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        with map_aiohttp_exceptions():
            async with self.client.post(
                endpoint.aiohttp_url,
                headers=endpoint.aiohttp_headers,
                data=body,
                allow_redirects=False,
                timeout=endpoint.aiohttp_timeout,
            ) as response:
                return Answer(response.status, response.headers, await response.read())


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's answer, whichever way it came."""

    status: int
    #: Case-insensitive (aiohttp's or httpx's headers).
    headers: Mapping[str, str]
    content: bytes


class Endpoint:
    """One provider URL and the headers every request to it carries, prepared once.

    ``post`` goes straight through aiohttp when the client is the ``ApiClient`` on the
    ``ApiTransport`` of ``make_http_client`` (within the client's total deadline, as
    ``ApiClient.send``); through any other client or transport (respx's mock,
    an ``httpx.MockTransport``) it sends a plain ``httpx.Request`` with ``client.send``.
    The headers are the client's defaults updated with ``headers``, as
    ``httpx.AsyncClient.request`` merges them.
    """

    def __init__(self, http: httpx.AsyncClient, url: str, headers: Mapping[str, str]) -> None:
        self.http = http
        timeout = http.timeout
        self.url = httpx.URL(url)
        self.headers = httpx.Headers(http.headers)
        self.headers.update(headers)
        self.extensions = {"timeout": timeout.as_dict()}
        self.aiohttp_url = yarl.URL(str(self.url), encoded=True)
        self.aiohttp_headers = CIMultiDict(self.headers.items())
        self.aiohttp_timeout = aiohttp.ClientTimeout(
            sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool
        )

    async def post(self, body: bytes) -> Answer:
        # The transport as httpx picks it for this URL (respx replaces exactly this lookup).
        transport = self.http._transport_for_url(self.url)
        if isinstance(transport, ApiTransport) and isinstance(self.http, ApiClient):
            return await transport.post(self, body, self.http.deadline)
        request = httpx.Request(
            "POST", self.url, headers=self.headers, content=body, extensions=self.extensions
        )
        response = await self.http.send(request)
        return Answer(response.status_code, response.headers, response.content)
