"""Fake SMTP server (aiosmtpd) and two broken endpoints: a port where nothing
listens and a server that accepts connections but never says a word."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any, Self, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from ._base import HOST

_PARSER = BytesParser(policy=policy.default)


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One message accepted by FakeSMTP."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes

    @property
    def to(self) -> str | None:
        return self.message["To"]

    @property
    def subject(self) -> str | None:
        return self.message["Subject"]


class _Controller(Controller):
    """aiosmtpd Controller on a socket bound beforehand, so port 0 works and
    the port is known before the server thread starts."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        self._sock = sock
        super().__init__(handler, hostname=HOST, port=sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class _Handler:
    """aiosmtpd handler. Kept apart from FakeSMTP because aiosmtpd inspects
    every attribute of its handler, properties included."""

    def __init__(self, fake: FakeSMTP) -> None:
        self.fake = fake

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        expected = self.fake.auth
        if (
            isinstance(data, LoginPassword)
            and expected is not None
            and (data.login.decode(), data.password.decode()) == expected
        ):
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        # Enforced here rather than with aiosmtpd's auth_required, which warns
        # on every connection when TLS is not required.
        if self.fake.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        fake = self.fake
        limit = fake.fail_rcpt_after
        with fake._lock:
            if limit is not None and len(fake._messages) >= limit:
                fake._refused.append(address)
                return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fake.data_reply is not None:
            return self.fake.data_reply
        raw = cast(bytes, envelope.original_content or envelope.content)
        message = cast(EmailMessage, _PARSER.parsebytes(raw))
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            message=message,
            raw=raw,
        )
        with self.fake._lock:
            self.fake._messages.append(mail)
        if self.fake.data_delay:
            # Queued, but the answer comes late: the client cannot know it was taken.
            await asyncio.sleep(self.fake.data_delay)
        return f"250 2.0.0 Ok: queued as {uuid.uuid4().hex[:12].upper()}"


class FakeSMTP:
    """Plain SMTP (no TLS) on 127.0.0.1.

    ``fail_rcpt_after=N`` answers ``451 4.3.0 Try again later`` to every RCPT
    once N messages were accepted (a transient failure mid-batch; set it back
    to None to recover). ``auth=(user, password)`` requires AUTH PLAIN/LOGIN,
    allowed without TLS because the test client talks to 127.0.0.1 only.
    ``data_delay`` queues each message, then waits that long before saying so;
    ``data_reply`` answers the end of DATA with that reply instead (e.g. a 451).
    """

    def __init__(
        self,
        *,
        fail_rcpt_after: int | None = None,
        auth: tuple[str, str] | None = None,
        data_delay: float = 0.0,
        data_reply: str | None = None,
    ) -> None:
        self.fail_rcpt_after = fail_rcpt_after
        self.auth = auth
        self.data_delay = data_delay
        self.data_reply = data_reply
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._refused: list[str] = []
        self._controller: _Controller | None = None
        self.host = HOST
        self._port = 0

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FakeSMTP is not running")
        return self._port

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    @property
    def refused_rcpts(self) -> list[str]:
        """Recipients answered with 451."""
        with self._lock:
            return list(self._refused)

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._refused.clear()

    def start(self) -> Self:
        sock = socket.create_server((HOST, 0))
        kwargs: dict[str, Any] = {
            # A fixed name: the default looks up this host's FQDN, which can
            # stall on a machine without DNS.
            "server_hostname": "fake-smtp.localhost",
            "ready_timeout": 5.0,
        }
        handler = _Handler(self)
        if self.auth is not None:
            kwargs.update(authenticator=handler.authenticate, auth_require_tls=False)
        controller = _Controller(handler, sock, **kwargs)
        controller.start()
        self._controller = controller
        self._port = sock.getsockname()[1]
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
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


# Sockets bound but never listening: connecting is refused at once, and
# keeping them open stops anything else from taking the port meanwhile.
_RESERVED: list[socket.socket] = []


def closed_port() -> int:
    """A 127.0.0.1 port where nothing listens (connections are refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    _RESERVED.append(sock)
    return int(sock.getsockname()[1])


class SilentServer:
    """Accepts TCP connections and never sends or reads a byte."""

    def __init__(self) -> None:
        self._sock = socket.create_server((HOST, 0))
        # Accept with a timeout so close() needs no cross-thread wake-up trick.
        self._sock.settimeout(0.05)
        self.host = HOST
        self.port: int = self._sock.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="SilentServer", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def connections(self) -> int:
        return len(self._connections)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connections.append(conn)

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(1)
        self._sock.close()
        for conn in self._connections:
            conn.close()


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    """A server that never answers (``.host``, ``.port``, ``.base_url``)."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()
