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


class ApiTransport(AiohttpTransport):
    """httpx_aiohttp's transport, with a direct POST for a channel's hot path.

    Its aiohttp session keeps no cookies (as ``ApiClient``): aiohttp would otherwise
    filter its cookie jar for every request.
    """

    def get_client(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
            limit=self.limits.max_connections or 100,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def post(self, endpoint: Endpoint, body: bytes) -> Answer:
        """POST ``body`` straight through aiohttp: no httpx request or response object, the
        URL and headers prepared once. Errors are mapped to httpx's exceptions as
        ``handle_async_request`` maps them."""
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

    ``post`` goes straight through aiohttp when the client's transport is the
    ``ApiTransport`` of ``make_http_client``; through any other transport (respx's mock,
    an ``httpx.MockTransport``) it sends a plain ``httpx.Request`` with ``client.send``.
    The headers are the client's defaults updated with ``headers``, as
    ``httpx.AsyncClient.request`` merges them.
    """

    def __init__(self, http: httpx.AsyncClient, url: str, headers: Mapping[str, str]) -> None:
        self.http = http
        self.url = httpx.URL(url)
        self.headers = httpx.Headers(http.headers)
        self.headers.update(headers)
        timeout = http.timeout
        self.extensions = {"timeout": timeout.as_dict()}
        self.aiohttp_url = yarl.URL(str(self.url), encoded=True)
        self.aiohttp_headers = CIMultiDict(self.headers.items())
        self.aiohttp_timeout = aiohttp.ClientTimeout(
            sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool
        )

    async def post(self, body: bytes) -> Answer:
        # The transport as httpx picks it for this URL (respx replaces exactly this lookup).
        transport = self.http._transport_for_url(self.url)
        if isinstance(transport, ApiTransport):
            return await transport.post(self, body)
        request = httpx.Request(
            "POST", self.url, headers=self.headers, content=body, extensions=self.extensions
        )
        response = await self.http.send(request)
        return Answer(response.status_code, response.headers, response.content)
