"""The contract every channel adapter follows, and the HTTP plumbing they share.

An adapter is mostly data mapping: build the provider's request from a
rendered ``Message`` and turn the provider's answer into an ``Outcome``.
Retries, concurrency, rate limits, fallbacks and the ledger live in the
announcer, never in an adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import httpx

from ..config import Config, DriverSettings, HttpDriverSettings
from ..models import Kind, Message, Outcome
from ..redact import redact

log = logging.getLogger(__name__)

CheckStatus = Literal["accepted", "refused", "not checkable", "error"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What ``outagecomms check`` learnt about one channel's credentials."""

    status: CheckStatus
    detail: str = ""


class Channel(ABC):
    """One driver serving one configured channel.

    Subclasses set ``batch_size`` when the provider takes many recipients in
    one request, and implement ``send`` (one ``Outcome`` per message, in
    order) and, where the provider has an authenticated read, ``check``.
    """

    #: Messages handed to one ``send`` call (SendGrid takes up to 1000 recipients a request).
    batch_size: ClassVar[int] = 1

    def __init__(self, name: str, kind: Kind, settings: DriverSettings, config: Config) -> None:
        self.name = name
        self.kind = kind
        self.settings = settings
        self.config = config

    @property
    def driver(self) -> str:
        return self.settings.driver

    async def open(self) -> None:  # noqa: B027 - most drivers hold nothing open
        """Acquire connections; called once before the first ``send``."""

    async def close(self) -> None:  # noqa: B027
        """Release what ``open`` acquired."""

    async def __aenter__(self) -> Channel:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @abstractmethod
    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        """Deliver ``messages`` (at most ``batch_size``); one outcome per message, in order.

        Network errors may be raised as they are: the announcer turns them
        into transient failures.
        """

    def split(self, messages: Sequence[Message]) -> list[list[int]]:
        """Indexes of ``messages`` (one batch) grouped as the provider takes them, one
        request per group. The announcer claims each group just before its request, so
        a crash leaves only requests in flight ``unknown``, never a whole batch."""
        return [list(range(len(messages)))]

    async def probe(self) -> str | None:
        """Why the provider cannot be used right now, or ``None`` when it looks up.

        Only drivers that serve as a primary with a fallback need a real probe.
        """
        return None

    async def check(self) -> CheckResult:
        """Verify the credentials with a read that sends nothing."""
        return CheckResult("not checkable", "no way to check without sending a message")


class HttpChannel(Channel):
    """A channel that talks HTTP through one shared ``httpx.AsyncClient``.

    The client uses the aiohttp transport: httpx's default transport is
    several times slower when hundreds of requests are in flight (measured
    in PROVIDERS.md), and respx still mocks it with ``using="httpx"``.
    """

    settings: HttpDriverSettings
    http: httpx.AsyncClient

    def __init__(self, name: str, kind: Kind, settings: DriverSettings, config: Config) -> None:
        super().__init__(name, kind, settings, config)
        self._client: httpx.AsyncClient | None = None

    @property
    def base_url(self) -> str:
        return self.settings.effective_base_url

    def client_options(self) -> dict[str, Any]:
        """Extra ``httpx.AsyncClient`` arguments (auth, headers) for this provider."""
        return {}

    async def open(self) -> None:
        self.http = make_http_client(
            timeout=self.settings.timeout,
            connections=self.settings.effective_concurrency,
            **self.client_options(),
        )

    async def close(self) -> None:
        if hasattr(self, "http"):
            await self.http.aclose()


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        return None


@dataclass(slots=True)
class RequestTrace:
    """How far one provider request got, so a deadline can tell "never sent" from "maybe sent".

    ``started`` is set when the transport reports that it began the request, ``sent``
    once the request's first bytes were handed to the connection. A transport that
    reports nothing leaves both false: the request may then have gone out.
    """

    started: bool = False
    sent: bool = False

    def timeout_error(self, seconds: float) -> httpx.TimeoutException:
        """The error of a request that outlived its deadline: a connect timeout (nothing
        reached the provider) only when the request was certainly not written yet."""
        text = f"no complete answer within the {seconds:g}s timeout"
        if self.started and not self.sent:
            return httpx.ConnectTimeout(text + " (the request was never sent)")
        return httpx.ReadTimeout(text)


_trace: ContextVar[RequestTrace | None] = ContextVar("outagecomms_request_trace", default=None)


def current_trace() -> RequestTrace | None:
    """The trace of the provider request running in this task (or thread), if any."""
    return _trace.get()


@contextlib.asynccontextmanager
async def total_deadline(seconds: float) -> AsyncIterator[RequestTrace]:
    """Bound one whole provider exchange, from the request to the last byte of the answer.

    A per-read timeout alone lets a server that trickles a byte at a time hold a
    send forever; this deadline cannot be stretched. On expiry it raises the
    ``httpx.TimeoutException`` of ``RequestTrace.timeout_error``, so the usual
    classification (``network_failure``) decides between retry and ``unknown``.
    """
    trace = RequestTrace()
    token = _trace.set(trace)
    try:
        async with asyncio.timeout(seconds) as scope:
            yield trace
    except TimeoutError:
        if not scope.expired():
            raise
        raise trace.timeout_error(seconds) from None
    finally:
        _trace.reset(token)


class ApiClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that keeps no cookies and gives every request a total deadline.

    Provider APIs authenticate every request and need no session cookie, while
    httpx runs every answer through a ``http.cookiejar`` pass: about 50 µs a
    request, as much as the rest of httpx's own work (bench/RESULTS.md).
    ``deadline`` (the channel's ``timeout``) bounds each whole exchange: request,
    answer headers and body (``total_deadline``).
    """

    def __init__(self, *, deadline: float, **options: Any) -> None:
        super().__init__(**options)
        self._no_cookies = _NoCookies()
        self.deadline = deadline

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("an ApiClient keeps no cookies")

    async def send(self, request: httpx.Request, **options: Any) -> httpx.Response:
        if options.get("stream"):
            return await super().send(request, **options)
        async with total_deadline(self.deadline):
            return await super().send(request, **options)


def make_http_client(*, timeout: float, connections: int, **options: Any) -> httpx.AsyncClient:
    """An ``ApiClient`` on the aiohttp transport, its pool sized to the concurrency."""
    from .http import ApiTransport

    limits = httpx.Limits(max_connections=max(connections, 1), max_keepalive_connections=None)
    headers = {"User-Agent": "outagecomms", **options.pop("headers", {})}
    return ApiClient(
        deadline=timeout,
        transport=ApiTransport(limits=limits, trust_env=False),
        timeout=httpx.Timeout(timeout),
        headers=headers,
        **options,
    )


def never_reached_provider(exc: BaseException) -> bool:
    """True when a failed request certainly never reached the provider, so sending it
    again cannot deliver twice (a refused connection, a connect or pool timeout).

    Any other transport error (a read timeout, a connection dropped after the request
    was written) leaves the message's fate unknown. The aiohttp transport reports every
    dropped connection as ``httpx.ConnectTimeout``, even one dropped while waiting for
    the answer, so the aiohttp error it was raised from decides.
    """
    if not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return False
    import aiohttp

    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return True


def network_failure(exc: BaseException) -> Outcome:
    """A transport error as an outcome. Only a request that certainly never reached the
    provider is a transient failure (retried, or moved to a fallback); one that may have
    reached it is ``unknown``, because sending it again could deliver it twice."""
    text = redact(str(exc)) or type(exc).__name__
    if never_reached_provider(exc):
        return Outcome.failed(f"could not connect: {text}", code="connect", retryable=True)
    if isinstance(exc, httpx.UnsupportedProtocol):
        # A base_url that is not http(s): nothing left, and no message can.
        return Outcome.failed(f"cannot send: {text}", code="config", fatal=True)
    if isinstance(exc, httpx.TransportError):
        return Outcome(
            state="unknown",
            code="no-answer",
            error=f"no complete answer from the provider ({type(exc).__name__}: {text}); "
            "it may or may not have the message",
        )
    if isinstance(exc, OSError | asyncio.TimeoutError):
        return Outcome.failed(f"network error: {text}", code="network", retryable=True)
    log.exception("unexpected error in a channel adapter")
    return Outcome.failed(f"internal error: {type(exc).__name__}: {text}", code="internal")


def unreadable_answer(provider: str, status: int, body: str) -> Outcome:
    """The outcome of a 2xx answer the product cannot read: the provider accepted the
    request, so the message may exist; ``unknown``, never ``failed`` (which is resent)."""
    return Outcome(
        state="unknown",
        code="bad-answer",
        error=f"{provider} answered HTTP {status} but the answer could not be read "
        f"({short(body, 200) or 'empty'}); it may or may not have the message",
    )


def json_object(body: str | bytes) -> dict[str, Any] | None:
    """``body`` parsed as a JSON object, or None when it is not one (``[]``, ``null``, text)."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def declares_json(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def unreadable_success(provider: str, response: httpx.Response) -> Outcome | None:
    """``unreadable_answer`` for a 2xx that says it is JSON but is not a JSON object."""
    if response.content and declares_json(response) and json_object(response.content) is None:
        return unreadable_answer(provider, response.status_code, response.text)
    return None


def is_transient_status(status: int) -> bool:
    """429 and 5xx may succeed later; other 4xx will not."""
    return status == 429 or status >= 500


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from ``Retry-After`` (seconds or a date) or a rate-limit reset (an
    epoch, or an ISO time)."""
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value)
            if parsed is not None:
                return max(parsed.timestamp() - now, 0.0)
    for name in ("x-rate-limit-reset", "x-ratelimit-reset"):
        reset = headers.get(name)
        if reset and reset.isdigit():
            return max(float(reset) - now, 0.0)
        if reset:
            # Mastodon sends the reset as an ISO 8601 time.
            try:
                at = datetime.fromisoformat(reset)
            except ValueError:
                continue
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            return max(at.timestamp() - now, 0.0)
    return None


def http_failure(response: httpx.Response, code: str | int | None, message: str) -> Outcome:
    """A failed ``Outcome`` for an HTTP error answer: transient for 429/5xx, fatal for 401."""
    status = response.status_code
    return Outcome.failed(
        redact(f"HTTP {status}: {message}".strip()),
        code=code if code is not None else status,
        retryable=is_transient_status(status),
        retry_after=retry_after(response.headers),
        fatal=status == 401,
    )


def short(text: str, limit: int = 300) -> str:
    """A provider's error body cut to a readable length, secrets removed first (a cut
    through a secret would leave a part of it that no longer matches)."""
    text = redact(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
