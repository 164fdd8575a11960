"""Shared plumbing of the fake HTTP providers: one aiohttp app per fake, served
from its own thread and event loop on 127.0.0.1, with request recording,
latency and fault injection applied in one middleware."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

HOST = "127.0.0.1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    body: bytes
    form: dict[str, str] | None
    json: Any
    # The body claimed to be JSON but did not parse (``json`` is then None).
    json_error: bool
    received_at: float


def _parse(request: web.Request, body: bytes) -> RecordedRequest:
    ctype = request.content_type
    form: dict[str, str] | None = None
    parsed: Any = None
    json_error = False
    if ctype == "application/x-www-form-urlencoded":
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif ctype == "application/json" or (ctype.endswith("+json") and body):
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            json_error = True
    return RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers=CIMultiDictProxy(CIMultiDict(request.headers)),
        body=body,
        form=form,
        json=parsed,
        json_error=json_error,
        received_at=time.time(),
    )


# Where the middleware leaves the parsed request for the handlers, so the
# body is read and decoded exactly once. RequestKey only exists in aiohttp
# >= 3.13 (older versions take a plain string without warning).
RECORD_KEY: Any = (
    web.RequestKey("fake_record", RecordedRequest) if hasattr(web, "RequestKey") else "fake_record"
)


def format_retry_after(seconds: float) -> str:
    """Whole seconds as HTTP says; fractions kept so tests need not wait a second."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def reset_epoch(seconds: float) -> str:
    """Epoch second at which a rate-limit window reopens (X and SendGrid style)."""
    return str(math.ceil(time.time() + seconds))


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    # Compact separators: providers answer compact JSON and it is cheaper.
    return web.Response(
        status=status,
        text=json.dumps(data, separators=(",", ":")),
        content_type="application/json",
        headers=headers,
    )


class FakeServer:
    """Base of every fake HTTP provider.

    Options (plain attributes, read on every request, so a test may flip
    them while the fake runs):

    * ``latency``: seconds every answer waits (asyncio.sleep, so thousands of
      requests can wait at once).
    * ``fail_every=N``: the Nth, 2Nth, ... request received (any route, any
      outcome) is answered ``fail_status`` with the provider's error body.
    * ``retry_after``: sent as ``Retry-After`` on faulted answers (fractions
      kept, e.g. ``0.5``); X and SendGrid 429s also get an epoch reset header.
    * ``down``: every request is answered 503.

    Faulted requests go to ``.faulted_requests`` / ``.faulted`` only; they
    never reach ``.requests`` nor the provider views. Subclasses add routes
    in ``_add_routes`` and shape faults in ``_fault_body``/``_fault_headers``.
    """

    name: ClassVar[str] = "fake"

    def __init__(
        self,
        *,
        latency: float = 0.0,
        fail_every: int | None = None,
        fail_status: int = 500,
        retry_after: float | None = None,
        down: bool = False,
    ) -> None:
        self.latency = latency
        self.fail_every = fail_every
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.down = down
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faulted: list[RecordedRequest] = []
        self._seen = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._port = 0

    # -- subclass hooks ---------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _fault_body(self, status: int) -> web.Response:
        phrase = HTTPStatus(status).phrase
        return json_response(status, {"status": status, "message": phrase})

    def _fault_headers(self, status: int) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": format_retry_after(self.retry_after)}

    def _reset_views(self) -> None:
        """Clear provider-level views; called under the lock."""

    def _consume(self, countdown: str) -> bool:
        """True, counting one down, while the named countdown attribute is above zero
        (``lose_answers=2``: the next two requests lose their answer)."""
        with self._lock:
            left: int = getattr(self, countdown)
            if left > 0:
                setattr(self, countdown, left - 1)
            return left > 0

    def _fault(self, status: int) -> web.Response:
        """The provider's error answer for ``status``, with its headers."""
        response = self._fault_body(status)
        response.headers.update(self._fault_headers(status))
        return response

    # -- lifecycle --------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._ready.clear()
        self._start_error = None
        # Bind here, in the caller's thread, so a bind error surfaces directly
        # and the port is known before the loop runs.
        sock = socket.create_server((HOST, 0), backlog=4096)
        self._port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._serve,
            args=(sock,),
            name=f"{type(self).__name__}:{self._port}",
            daemon=True,
        )
        self._thread.start()
        self._ready.wait(10)
        if self._start_error is not None or not self._ready.is_set():
            self._thread.join(1)
            self._thread = None
            self._port = 0
            raise RuntimeError(f"{type(self).__name__} failed to start") from self._start_error
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None
        self._port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._setup(sock))
        except BaseException as exc:
            self._start_error = exc
            sock.close()
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            assert self._runner is not None
            # A short grace period: stop() must be quick even with requests
            # still sleeping in injected latency; those are cancelled.
            loop.run_until_complete(self._runner.cleanup())
            # Handlers the grace period did not reach would otherwise be
            # reported as "Task was destroyed but it is pending" at exit.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _setup(self, sock: socket.socket) -> None:
        # SendGrid accepts up to 30 MB; aiohttp's default limit is 1 MiB.
        app = web.Application(middlewares=[self._middleware], client_max_size=32 * 1024**2)
        self._add_routes(app)
        # No access log: formatting a line per request costs more than the fake.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, backlog=4096).start()

    # -- recording and faults ---------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        record = _parse(request, await request.read())
        request[RECORD_KEY] = record
        # Only this loop thread increments the counter (reset() just zeroes
        # it), so it needs no lock.
        self._seen += 1
        seen = self._seen
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        status: int | None = None
        if self.down:
            status = 503
        elif self.fail_every and seen % self.fail_every == 0:
            status = self.fail_status
        if status is not None:
            with self._lock:
                self._faulted.append(record)
            return self._fault(status)
        with self._lock:
            self._requests.append(record)
        return await handler(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests that reached the provider logic (faulted ones excluded)."""
        with self._lock:
            return list(self._requests)

    @property
    def faulted_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._faulted)

    @property
    def faulted(self) -> int:
        with self._lock:
            return len(self._faulted)

    def reset(self) -> None:
        """Forget everything received; the fault counter starts again too."""
        with self._lock:
            self._requests.clear()
            self._faulted.clear()
            self._reset_views()
            self._seen = 0
