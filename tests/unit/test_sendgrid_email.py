"""SendGridEmail: the /v3/mail/send payload, batching, and how answers become outcomes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from outagecomms.channels.sendgrid_email import SendGridEmail
from outagecomms.config import Config, SendGridSettings
from outagecomms.errors import ConfigError
from outagecomms.models import Incident, Message
from outagecomms.redact import register_secret

BASE = "http://sendgrid.test"
API_KEY = "SG.secret-key-123"
INCIDENT = Incident(id="mail-down", title="T", summary="S")


def settings(**extra: Any) -> SendGridSettings:
    return SendGridSettings.model_validate(
        {"driver": "sendgrid", "from": "outage@shop.example", "base_url": BASE, "api_key": API_KEY}
        | extra
    )


def message(address: str, name: str | None = None, **extra: Any) -> Message:
    fields: dict[str, Any] = {
        "subject": "[Investigating] Email is down",
        "text": "Our mail server is down.",
        "html": "<p>Our mail server is down.</p>",
    } | extra
    return Message(
        channel="email", kind="email", recipient=address, incident=INCIDENT, name=name, **fields
    )


@pytest.fixture(autouse=True)
def _secret() -> None:
    register_secret(API_KEY)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    # using="httpx": only that mode sees requests made through the aiohttp transport.
    with respx.mock(using="httpx", base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate({"path": tmp_path / "channels.yaml"})


@pytest.fixture
async def channel(config: Config) -> AsyncIterator[SendGridEmail]:
    async with SendGridEmail("email", "email", settings(), config) as opened:
        yield opened


def accept(ids: list[str]) -> Any:
    """A side effect answering 202 with a fresh X-Message-Id per request (ids collects them)."""

    def answer(request: httpx.Request) -> httpx.Response:
        ids.append(f"msg-{len(ids) + 1}")
        return httpx.Response(202, headers={"X-Message-Id": ids[-1]})

    return answer


def body_of(call: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(call.request.content)
    return result


async def test_payload_is_one_personalization_per_recipient(
    router: respx.MockRouter, config: Config
) -> None:
    route = router.post("/v3/mail/send").respond(202, headers={"X-Message-Id": "abc123"})
    custom = settings(from_name="Acme Shop", reply_to="help@shop.example", asm_group_id=42)
    async with SendGridEmail("email", "email", custom, config) as channel:
        outcomes = await channel.send(
            [message("ada@example.com", "Ada Lovelace"), message("grace@example.com")]
        )

    assert [o.state for o in outcomes] == ["sent", "sent"]
    assert all("abc123" in (o.provider_id or "") for o in outcomes)
    request = route.calls.last.request
    assert str(request.url) == f"{BASE}/v3/mail/send"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    body = body_of(route.calls.last)
    # The helpers reorder lists: compare them as sets.
    body["personalizations"].sort(key=lambda p: p["to"][0]["email"])
    body["categories"].sort()
    assert body == {
        "from": {"email": "outage@shop.example", "name": "Acme Shop"},
        "reply_to": {"email": "help@shop.example"},
        "subject": "[Investigating] Email is down",
        "personalizations": [
            {"to": [{"email": "ada@example.com", "name": "Ada Lovelace"}]},
            {"to": [{"email": "grace@example.com"}]},
        ],
        "content": [
            {"type": "text/plain", "value": "Our mail server is down."},
            {"type": "text/html", "value": "<p>Our mail server is down.</p>"},
        ],
        "categories": ["mail-down", "outagecomms"],
        "custom_args": {
            "announcement": "mail-down/investigating",
            "incident": "mail-down",
            "channel": "email",
        },
        "asm": {"group_id": 42},
    }


async def test_sandbox_mode_is_sent_and_200_counts_as_sent(
    router: respx.MockRouter, config: Config
) -> None:
    route = router.post("/v3/mail/send").respond(200)
    async with SendGridEmail("email", "email", settings(sandbox_mode=True), config) as channel:
        outcomes = await channel.send([message("ada@example.com")])
    assert outcomes[0].state == "sent"
    assert body_of(route.calls.last)["mail_settings"] == {"sandbox_mode": {"enable": True}}


async def test_2500_messages_go_in_three_requests_of_at_most_1000(
    router: respx.MockRouter, channel: SendGridEmail
) -> None:
    ids: list[str] = []
    route = router.post("/v3/mail/send").mock(side_effect=accept(ids))
    messages = [message(f"user{n}@example.com", f"User {n}") for n in range(2500)]
    outcomes = []
    size = channel.batch_size
    for start in range(0, len(messages), size):
        outcomes += await channel.send(messages[start : start + size])

    assert route.call_count == 3
    bodies = [body_of(call) for call in route.calls]
    assert [len(b["personalizations"]) for b in bodies] == [1000, 1000, 500]
    sent_to = [p["to"][0]["email"] for b in bodies for p in b["personalizations"]]
    assert sorted(sent_to) == sorted(m.recipient for m in messages)
    assert all(o.state == "sent" for o in outcomes)
    assert {o.provider_id for o in outcomes[:1000]} == {"msg-1"}
    assert {o.provider_id for o in outcomes[2000:]} == {"msg-3"}


async def test_different_content_goes_in_separate_requests(
    router: respx.MockRouter, channel: SendGridEmail
) -> None:
    ids: list[str] = []
    route = router.post("/v3/mail/send").mock(side_effect=accept(ids))
    outcomes = await channel.send(
        [
            message("ada@example.com", "Ada", text="Hi Ada"),
            message("grace@example.com", "Grace", text="Hi Grace"),
            message("alan@example.com", "Alan", text="Hi Ada"),
        ]
    )
    assert route.call_count == 2
    by_text = {
        body_of(call)["content"][0]["value"]: sorted(
            p["to"][0]["email"] for p in body_of(call)["personalizations"]
        )
        for call in route.calls
    }
    assert by_text == {
        "Hi Ada": ["ada@example.com", "alan@example.com"],
        "Hi Grace": ["grace@example.com"],
    }
    # Each outcome carries the id of the request that carried its message.
    assert [o.provider_id for o in outcomes] == ["msg-1", "msg-2", "msg-1"]


async def test_a_repeated_address_goes_in_another_request(
    router: respx.MockRouter, channel: SendGridEmail
) -> None:
    route = router.post("/v3/mail/send").respond(202, headers={"X-Message-Id": "x"})
    await channel.send([message("ada@example.com"), message("ADA@example.com")])
    assert route.call_count == 2


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "fatal"),
    [
        (400, {}, False, False),
        (401, {}, False, True),
        (403, {}, False, True),
        (429, {"X-RateLimit-Reset": "__reset__"}, True, False),
        (500, {}, True, False),
    ],
)
async def test_error_answers_map_to_failures_for_every_message(
    router: respx.MockRouter,
    channel: SendGridEmail,
    status: int,
    headers: dict[str, str],
    retryable: bool,
    fatal: bool,
) -> None:
    reset = int(time.time()) + 30
    headers = {k: v.replace("__reset__", str(reset)) for k, v in headers.items()}
    # The provider echoes the key: it must not reach the outcome.
    errors = [{"message": f"bad thing with key {API_KEY}", "field": "from", "help": None}]
    router.post("/v3/mail/send").respond(status, json={"errors": errors}, headers=headers)

    outcomes = await channel.send([message("ada@example.com"), message("grace@example.com")])

    for outcome in outcomes:
        assert outcome.state == "failed"
        assert outcome.code == str(status)
        assert (outcome.retryable, outcome.fatal) == (retryable, fatal)
        assert "bad thing with key" in (outcome.error or "")
        assert "field from" in (outcome.error or "")
        assert API_KEY not in (outcome.error_text or "")
    if status == 429:
        assert outcomes[0].retry_after is not None and 25 <= outcomes[0].retry_after <= 30


async def test_retry_after_header_is_honoured(
    router: respx.MockRouter, channel: SendGridEmail
) -> None:
    router.post("/v3/mail/send").respond(503, text="busy", headers={"Retry-After": "7"})
    [outcome] = await channel.send([message("ada@example.com")])
    assert (outcome.retryable, outcome.retry_after) == (True, 7.0)


async def test_one_refused_address_fails_alone_and_the_others_are_sent(
    router: respx.MockRouter, channel: SendGridEmail
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        for index, personalization in enumerate(body["personalizations"]):
            if personalization["to"][0]["email"] == "not-an-address@":
                field = f"personalizations.{index}.to.0.email"
                error = {"message": "Does not contain a valid address.", "field": field}
                return httpx.Response(400, json={"errors": [error]})
        return httpx.Response(202, headers={"X-Message-Id": "second"})

    route = router.post("/v3/mail/send").mock(side_effect=answer)
    outcomes = await channel.send(
        [message("ada@example.com"), message("not-an-address@"), message("grace@example.com")]
    )
    assert route.call_count == 2
    assert [o.state for o in outcomes] == ["sent", "failed", "sent"]
    assert outcomes[0].provider_id == "second"
    assert outcomes[1].code == "400" and not outcomes[1].retryable
    assert "valid address" in (outcomes[1].error or "")


async def test_an_unreachable_sendgrid_is_a_transient_failure(
    router: respx.MockRouter, channel: SendGridEmail
) -> None:
    router.post("/v3/mail/send").mock(side_effect=httpx.ConnectError("connection refused"))
    outcomes = await channel.send([message("ada@example.com")])
    assert outcomes[0].state == "failed" and outcomes[0].retryable


async def test_a_missing_sender_is_refused_at_open(config: Config) -> None:
    no_sender = SendGridSettings.model_validate(
        {"driver": "sendgrid", "base_url": BASE, "api_key": API_KEY}
    )
    with pytest.raises(ConfigError, match="set 'from'"):
        await SendGridEmail("email", "email", no_sender, config).open()


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (200, {"scopes": ["mail.send", "user.profile.read"]}, "accepted"),
        (200, {"scopes": ["user.profile.read"]}, "refused"),
        (401, {"errors": [{"message": "authorization required"}]}, "refused"),
        (403, {"errors": [{"message": "access forbidden"}]}, "refused"),
        (500, {"errors": [{"message": "oops"}]}, "error"),
    ],
)
async def test_check_reads_the_key_scopes(
    router: respx.MockRouter,
    channel: SendGridEmail,
    status: int,
    payload: dict[str, Any],
    expected: str,
) -> None:
    route = router.get("/v3/scopes").respond(status, json=payload)
    result = await channel.check()
    assert result.status == expected
    assert result.detail
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {API_KEY}"
    if payload.get("scopes") == ["user.profile.read"]:
        assert "mail.send" in result.detail
