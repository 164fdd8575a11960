"""SmtpEmail against a real SMTP server (aiosmtpd on 127.0.0.1) and broken endpoints."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import ValidationError

from outagecomms.channels.smtp_email import SmtpEmail
from outagecomms.config import Config, SmtpSettings
from outagecomms.models import Incident, Message
from outagecomms.redact import register_secret
from tests.fakes import closed_port, silent_server

HOST = "127.0.0.1"
PASSWORD = "smtp-pass-XYZ-789"
INCIDENT = Incident(id="mail-down", title="T", summary="S")


@dataclass
class Server:
    """What the test server saw, and how it answers."""

    port: int = 0
    #: RCPT address -> reply, e.g. "550 5.1.1 No such user".
    replies: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    #: Reply to MAIL FROM instead of 250.
    mail_reply: str | None = None
    #: Seconds the server takes to answer the end of DATA.
    data_delay: float = 0.0
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    ehlos: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler:
    def __init__(self, server: Server) -> None:
        self.server = server

    def authenticate(
        self, smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.server.auth == (
            data.login.decode(),
            data.password.decode(),
        )
        return AuthResult(success=ok, handled=False)

    async def handle_EHLO(
        self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.server.lock:
            self.server.ehlos += 1
        return responses

    async def handle_MAIL(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.server.mail_reply:
            return self.server.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.server.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        reply = self.server.replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.data_delay:
            await asyncio.sleep(self.server.data_delay)
        raw = cast(bytes, envelope.original_content or envelope.content)
        parsed = cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(raw))
        with self.server.lock:
            self.server.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 2.0.0 Ok: queued"


class _Controller(Controller):
    # Bound beforehand so port 0 works and the port is known before the thread starts.
    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        self._sock = sock
        super().__init__(handler, hostname=HOST, port=sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


def _start(server: Server) -> Iterator[Server]:
    sock = socket.create_server((HOST, 0))
    handler = _Handler(server)
    kwargs: dict[str, Any] = {"server_hostname": "test-smtp.localhost", "ready_timeout": 5.0}
    if server.auth is not None:
        kwargs.update(authenticator=handler.authenticate, auth_require_tls=False)
    controller = _Controller(handler, sock, **kwargs)
    controller.start()
    server.port = sock.getsockname()[1]
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def server() -> Iterator[Server]:
    yield from _start(Server())


@pytest.fixture
def auth_server() -> Iterator[Server]:
    yield from _start(Server(auth=("mailer", PASSWORD)))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate({"path": tmp_path / "channels.yaml"})


@pytest.fixture(autouse=True)
def _secret() -> None:
    register_secret(PASSWORD)


def channel(config: Config, port: int, **extra: Any) -> SmtpEmail:
    settings = SmtpSettings.model_validate(
        {
            "driver": "smtp",
            "host": HOST,
            "port": port,
            "starttls": False,
            "from": "outage@shop.example",
            "from_name": "Acme Shop",
            "reply_to": "help@shop.example",
        }
        | extra
    )
    return SmtpEmail("email", "email", settings, config)


def message(address: str, name: str | None = None) -> Message:
    return Message(
        channel="email",
        kind="email",
        recipient=address,
        name=name,
        incident=INCIDENT,
        subject="[Investigating] Email is down",
        text=f"Hi {name or 'there'}, our mail server is down.",
        html=f"<p>Hi {name or 'there'}, our mail server is down.</p>",
    )


async def test_messages_arrive_one_per_recipient(server: Server, config: Config) -> None:
    async with channel(config, server.port) as smtp:
        outcomes = await smtp.send(
            [message("ada@example.com", "Ada Lovelace"), message("grace@example.com")]
        )

    assert [o.state for o in outcomes] == ["sent", "sent"]
    # One session for the whole batch.
    assert server.ehlos == 1
    assert [rcpts for rcpts, _ in server.messages] == [["ada@example.com"], ["grace@example.com"]]
    mail = server.messages[0][1]
    assert mail["To"] == "Ada Lovelace <ada@example.com>"
    assert server.messages[1][1]["To"] == "grace@example.com"
    assert mail["From"] == "Acme Shop <outage@shop.example>"
    assert mail["Reply-To"] == "help@shop.example"
    assert mail["Subject"] == "[Investigating] Email is down"
    assert mail["X-Outagecomms-Announcement"] == "mail-down/investigating"
    assert mail["Date"]
    assert mail["Message-ID"] == outcomes[0].provider_id
    assert (outcomes[0].provider_id or "").endswith("@shop.example>")
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and "Hi Ada Lovelace" in text.get_content()
    assert html is not None and "<p>Hi Ada Lovelace" in html.get_content()


async def test_starttls_on_a_plain_server_fails_transiently(server: Server, config: Config) -> None:
    # The server offers no STARTTLS: "starttls: true" must not quietly send in clear text.
    async with channel(config, server.port, starttls=True) as smtp:
        assert await smtp.probe()
        outcomes = await smtp.send([message("ada@example.com")])
    assert outcomes[0].state == "failed" and outcomes[0].retryable
    assert server.messages == []


async def test_login_with_username_and_password(auth_server: Server, config: Config) -> None:
    async with channel(config, auth_server.port, username="mailer", password=PASSWORD) as smtp:
        assert await smtp.probe() is None
        outcomes = await smtp.send([message("ada@example.com")])
        assert (await smtp.check()).status == "accepted"
    assert outcomes[0].state == "sent"
    assert len(auth_server.messages) == 1


async def test_a_wrong_password_is_fatal_and_never_shown(
    auth_server: Server, config: Config
) -> None:
    wrong = PASSWORD + "-wrong"
    register_secret(wrong)
    async with channel(config, auth_server.port, username="mailer", password=wrong) as smtp:
        reason = await smtp.probe()
        [outcome] = await smtp.send([message("ada@example.com")])
        checked = await smtp.check()
    assert reason and "535" in reason
    assert outcome.state == "failed" and outcome.fatal and outcome.code == "535"
    assert checked.status == "refused"
    for text in (reason, outcome.error_text or "", checked.detail):
        assert wrong not in text and PASSWORD not in text


async def test_a_550_fails_that_recipient_only(server: Server, config: Config) -> None:
    server.replies["nobody@example.com"] = "550 5.1.1 No such user"
    async with channel(config, server.port) as smtp:
        outcomes = await smtp.send(
            [
                message("ada@example.com"),
                message("nobody@example.com"),
                message("grace@example.com"),
            ]
        )
    assert [o.state for o in outcomes] == ["sent", "failed", "sent"]
    failed = outcomes[1]
    assert failed.code == "550" and not failed.retryable and not failed.fatal
    assert "No such user" in (failed.error or "")
    assert [rcpts for rcpts, _ in server.messages] == [["ada@example.com"], ["grace@example.com"]]


async def test_a_451_is_transient(server: Server, config: Config) -> None:
    server.replies["busy@example.com"] = "451 4.3.0 Try again later"
    async with channel(config, server.port) as smtp:
        outcomes = await smtp.send([message("busy@example.com"), message("ada@example.com")])
    assert outcomes[0].state == "failed" and outcomes[0].retryable
    assert outcomes[0].code == "451"
    assert outcomes[1].state == "sent"


async def test_a_421_closes_the_session_and_the_rest_is_transient(
    server: Server, config: Config
) -> None:
    server.replies["b@example.com"] = "421 4.3.2 Shutting down"
    async with channel(config, server.port) as smtp:
        outcomes = await smtp.send(
            [message("a@example.com"), message("b@example.com"), message("c@example.com")]
        )
    assert [o.state for o in outcomes] == ["sent", "failed", "failed"]
    assert outcomes[1].code == "421"
    assert all(o.retryable for o in outcomes[1:])
    assert len(server.messages) == 1


async def test_a_refused_sender_stops_the_channel(server: Server, config: Config) -> None:
    server.mail_reply = "553 5.7.1 Sender address rejected: not owned by you"
    async with channel(config, server.port) as smtp:
        [outcome] = await smtp.send([message("ada@example.com")])
    assert (outcome.state, outcome.code, outcome.fatal) == ("failed", "553", True)


async def test_no_answer_after_data_is_unknown_not_retried(server: Server, config: Config) -> None:
    # The server may have queued the message: sending it again could deliver it twice.
    server.data_delay = 1.5
    async with channel(config, server.port, timeout=0.5) as smtp:
        outcomes = await smtp.send([message("ada@example.com"), message("grace@example.com")])
    assert outcomes[0].state == "unknown"
    assert outcomes[1].state == "failed" and outcomes[1].retryable


async def test_a_malformed_address_fails_alone(server: Server, config: Config) -> None:
    async with channel(config, server.port) as smtp:
        outcomes = await smtp.send([message("not an address"), message("ada@example.com")])
    assert outcomes[0].state == "failed" and not outcomes[0].retryable
    assert outcomes[1].state == "sent"


async def test_probe_on_a_closed_port_answers_at_once(config: Config) -> None:
    smtp = channel(config, closed_port())
    await smtp.open()
    started = time.monotonic()
    reason = await smtp.probe()
    assert reason
    assert time.monotonic() - started < 2


async def test_probe_on_a_silent_server_answers_within_the_timeout(config: Config) -> None:
    with silent_server() as silent:
        smtp = channel(config, silent.port, timeout=0.5)
        await smtp.open()
        started = time.monotonic()
        reason = await smtp.probe()
        elapsed = time.monotonic() - started
    assert reason and "timed out" in reason.lower()
    assert elapsed < 2


async def test_send_to_an_unreachable_server_is_transient_for_every_message(
    config: Config,
) -> None:
    async with channel(config, closed_port()) as smtp:
        outcomes = await smtp.send([message("a@example.com"), message("b@example.com")])
    assert all(o.state == "failed" and o.retryable and o.code == "connect" for o in outcomes)


async def test_check(server: Server, config: Config) -> None:
    async with channel(config, server.port) as smtp:
        accepted = await smtp.check()
    async with channel(config, closed_port()) as smtp:
        unreachable = await smtp.check()
    assert accepted.status == "accepted" and str(server.port) in accepted.detail
    assert unreachable.status == "error" and unreachable.detail


def test_a_missing_sender_is_refused_with_the_settings() -> None:
    with pytest.raises(ValidationError, match="set 'from'"):
        SmtpSettings.model_validate({"driver": "smtp", "host": HOST})
