"""The email channel as configured in practice: own SMTP server first, SendGrid as fallback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest
import respx

from outagecomms.channels import build_channel
from outagecomms.channels.fallback import FallbackChannel
from outagecomms.channels.sendgrid_email import SendGridEmail
from outagecomms.channels.smtp_email import SmtpEmail
from outagecomms.config import Config, SendGridSettings, SmtpSettings
from outagecomms.models import Incident, Message
from outagecomms.redact import register_secret
from tests.fakes import FakeSMTP, closed_port, silent_server

BASE = "http://sendgrid.test"
API_KEY = "SG.secret-key-123"
PASSWORD = "smtp-secret-pass-456"
INCIDENT = Incident(id="mail-down", title="T", summary="S")


@pytest.fixture(autouse=True)
def _secrets() -> None:
    register_secret(API_KEY)
    register_secret(PASSWORD)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate({"path": tmp_path / "channels.yaml"})


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(using="httpx", base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def sendgrid(router: respx.MockRouter) -> respx.Route:
    return router.post("/v3/mail/send").respond(202, headers={"X-Message-Id": "sg-1"})


@pytest.fixture
def smtp_server() -> Iterator[FakeSMTP]:
    with FakeSMTP() as fake:
        yield fake


def email_channel(config: Config, port: int, **smtp: Any) -> FallbackChannel:
    fallback = SendGridSettings.model_validate(
        {"driver": "sendgrid", "from": "outage@shop.example", "base_url": BASE, "api_key": API_KEY}
    )
    settings = SmtpSettings.model_validate(
        {
            "driver": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "starttls": False,
            "from": "outage@shop.example",
            "fallback": fallback,
        }
        | smtp
    )
    channel = build_channel("email", "email", settings, config)
    assert isinstance(channel, FallbackChannel)
    assert isinstance(channel.primary, SmtpEmail)
    assert isinstance(channel.secondary, SendGridEmail)
    return channel


def messages(count: int) -> list[Message]:
    return [
        Message(
            channel="email",
            kind="email",
            recipient=f"user{n}@example.com",
            name=f"User {n}",
            incident=INCIDENT,
            subject="Email is down",
            text="Our mail server is down.",
            html="<p>Our mail server is down.</p>",
        )
        for n in range(count)
    ]


def recipients(route: respx.Route) -> list[str]:
    return sorted(
        p["to"][0]["email"]
        for call in route.calls
        for p in json.loads(call.request.content)["personalizations"]
    )


async def test_primary_down_at_open_sends_everything_through_sendgrid(
    config: Config, sendgrid: respx.Route
) -> None:
    async with email_channel(config, closed_port()) as channel:
        assert channel.used_fallback and channel.reason
        assert channel.batch_size == SendGridEmail.batch_size
        outcomes = await channel.send(messages(3))
    assert [(o.state, o.provider, o.provider_id) for o in outcomes] == [
        ("sent", "sendgrid", "sg-1")
    ] * 3
    assert sendgrid.call_count == 1
    assert recipients(sendgrid) == [m.recipient for m in messages(3)]


async def test_a_silent_primary_is_given_up_within_the_probe_timeout(
    config: Config, sendgrid: respx.Route
) -> None:
    with silent_server() as silent:
        started = time.monotonic()
        async with email_channel(config, silent.port, timeout=0.5) as channel:
            elapsed = time.monotonic() - started
            outcomes = await channel.send(messages(2))
    assert elapsed < 2
    assert channel.used_fallback
    assert {o.provider for o in outcomes} == {"sendgrid"}


async def test_primary_up_means_sendgrid_receives_nothing(
    config: Config, sendgrid: respx.Route, smtp_server: FakeSMTP
) -> None:
    async with email_channel(config, smtp_server.port) as channel:
        assert not channel.used_fallback
        outcomes = await channel.send(messages(3))
    assert not sendgrid.called
    assert {(o.state, o.provider) for o in outcomes} == {("sent", "smtp")}
    assert [m.to for m in smtp_server.messages] == [
        f"User {n} <user{n}@example.com>" for n in range(3)
    ]


async def test_a_4xx_mid_batch_sends_the_rest_through_sendgrid(
    config: Config, sendgrid: respx.Route, smtp_server: FakeSMTP
) -> None:
    smtp_server.fail_rcpt_after = 2
    async with email_channel(config, smtp_server.port) as channel:
        outcomes = await channel.send(messages(5))
        # Given up for the rest of the run: the next batch goes straight to SendGrid.
        later = await channel.send(messages(1))
    assert [o.provider for o in outcomes] == ["smtp", "smtp", "sendgrid", "sendgrid", "sendgrid"]
    assert all(o.state == "sent" for o in outcomes + later)
    assert later[0].provider == "sendgrid"
    assert len(smtp_server.messages) == 2
    assert recipients(sendgrid) == sorted(
        ["user0@example.com", "user2@example.com", "user3@example.com", "user4@example.com"]
    )
    assert channel.reason and "451" in channel.reason


async def test_a_permanent_smtp_refusal_is_not_rerouted(
    config: Config, sendgrid: respx.Route, smtp_server: FakeSMTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FakeSMTP only answers 451; a 550 for the recipient is simulated at the client.
    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise aiosmtplib.SMTPRecipientsRefused(
            [aiosmtplib.SMTPRecipientRefused(550, "5.1.1 No such user", "user0@example.com")]
        )

    monkeypatch.setattr(aiosmtplib.SMTP, "send_message", refuse)
    async with email_channel(config, smtp_server.port) as channel:
        [outcome] = await channel.send(messages(1))
    assert (outcome.state, outcome.code, outcome.provider) == ("failed", "550", "smtp")
    assert not channel.used_fallback
    assert not sendgrid.called


async def test_no_secret_in_outcomes_when_both_providers_fail(
    config: Config, router: respx.MockRouter
) -> None:
    router.post("/v3/mail/send").respond(
        500, json={"errors": [{"message": f"internal error for key {API_KEY}"}]}
    )
    channel = email_channel(config, closed_port(), username="mailer", password=PASSWORD)
    async with channel:
        outcomes = await channel.send(messages(2))
    for outcome in outcomes:
        assert outcome.state == "failed" and outcome.retryable
        assert outcome.provider == "sendgrid"
        text = outcome.error_text or ""
        assert API_KEY not in text and PASSWORD not in text
    assert PASSWORD not in (channel.reason or "")


async def test_transport_errors_from_sendgrid_reach_the_caller_as_outcomes(
    config: Config, router: respx.MockRouter
) -> None:
    router.post("/v3/mail/send").mock(side_effect=httpx.ConnectError("refused"))
    async with email_channel(config, closed_port()) as channel:
        outcomes = await channel.send(messages(2))
    assert all(o.state == "failed" and o.retryable for o in outcomes)


# --- never twice ---------------------------------------------------------------------


async def test_an_smtp_answer_lost_after_data_is_unknown_and_never_sent_through_sendgrid(
    config: Config, sendgrid: respx.Route
) -> None:
    with FakeSMTP(data_delay=2.0) as server:
        async with email_channel(config, server.port, timeout=0.5) as channel:
            started = time.monotonic()
            outcomes = await channel.send(messages(2))
            elapsed = time.monotonic() - started
        taken = len(server.messages)
    first, second = outcomes
    assert (first.state, first.provider) == ("unknown", "smtp")
    # The session is unusable after the lost answer: the second was never handed over,
    # so SendGrid may carry it.
    assert (second.state, second.provider) == ("sent", "sendgrid")
    assert taken == 1
    assert recipients(sendgrid) == ["user1@example.com"]
    assert elapsed < 1.5


async def test_a_4xx_answer_to_data_is_definite_and_moves_the_message_to_sendgrid(
    config: Config, sendgrid: respx.Route
) -> None:
    with FakeSMTP(data_reply="451 4.3.0 Queue full, try later") as server:
        async with email_channel(config, server.port) as channel:
            [outcome] = await channel.send(messages(1))
        assert server.messages == []
    assert (outcome.state, outcome.provider) == ("sent", "sendgrid")
    assert recipients(sendgrid) == ["user0@example.com"]
