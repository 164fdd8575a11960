"""TwilioSms: the request the SDK sends through httpx, and how Twilio's answers become outcomes."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from pydantic import ValidationError

from outagecomms.channels import twilio_sms
from outagecomms.channels.twilio_sms import HttpxTwilioClient, TwilioSms
from outagecomms.config import Config, TwilioSettings
from outagecomms.models import Incident, Message
from tests.fakes.twilio import FakeTwilio

BASE = "http://twilio.test"
SID = "AC" + "a1" * 16
TOKEN = "twilio-auth-token-0123456789"
API_KEY = "SK" + "b2" * 16
API_SECRET = "twilio-api-secret-9876543210"
FROM = "+15005550006"
TO = "+15005550010"
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"
ACCOUNT = f"/2010-04-01/Accounts/{SID}.json"
MESSAGE_SID = "SM" + "c3" * 16
INCIDENT = Incident(id="mail-down", title="T", summary="S")


def settings(**extra: Any) -> TwilioSettings:
    return TwilioSettings.model_validate(
        {
            "driver": "twilio",
            "from": FROM,
            "base_url": BASE,
            "account_sid": SID,
            "auth_token": TOKEN,
        }
        | extra
    )


def message(to: str = TO, text: str = "Email is down. Reply STOP to opt out") -> Message:
    return Message(channel="sms", kind="sms", recipient=to, text=text, incident=INCIDENT)


def created(sid: str = MESSAGE_SID, **fields: Any) -> httpx.Response:
    """Twilio's 201 for a new message (the fields the SDK reads, in Twilio's formats)."""
    body = {
        "sid": sid,
        "account_sid": SID,
        "status": "queued",
        "num_segments": "1",
        "to": TO,
        "from": FROM,
        "body": "Email is down",
        "error_code": None,
        "price": None,
        "date_created": "Mon, 23 Nov 2026 09:41:00 +0000",
        "date_updated": "Mon, 23 Nov 2026 09:41:00 +0000",
        "date_sent": None,
    } | fields
    return httpx.Response(201, json=body)


def twilio_error(status: int, code: int, text: str, **headers: str) -> httpx.Response:
    """Twilio's legacy error body, as TwilioRestException reads it."""
    body = {
        "code": code,
        "message": text,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return httpx.Response(status, json=body, headers=headers)


def problem(status: int, code: int, title: str, detail: str, **headers: str) -> httpx.Response:
    """An RFC 9457 problem body, which twilio >= 9.10 raises as TwilioServiceException."""
    body = {
        "type": f"https://www.twilio.com/docs/errors/{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    return httpx.Response(
        status, json=body, headers={"Content-Type": "application/problem+json", **headers}
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def form_of(request: httpx.Request) -> dict[str, str]:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    # using="httpx": only that mode sees requests made through the aiohttp transport.
    with respx.mock(using="httpx", base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate({"path": tmp_path / "channels.yaml"})


@pytest.fixture
async def channel(config: Config) -> AsyncIterator[TwilioSms]:
    async with TwilioSms("sms", "sms", settings(), config) as opened:
        yield opened


# --- the request ---------------------------------------------------------------


async def test_sends_form_with_account_auth_to_base_url(
    router: respx.MockRouter, config: Config
) -> None:
    route = router.post(MESSAGES).mock(return_value=created())
    custom = settings(status_callback="https://shop.example/twilio/status")
    async with TwilioSms("sms", "sms", custom, config) as channel:
        [outcome] = await channel.send([message()])

    assert outcome.state == "sent" and outcome.provider_id == MESSAGE_SID
    assert not outcome.error and not outcome.fatal
    request = route.calls.last.request
    assert str(request.url) == f"{BASE}{MESSAGES}"
    assert request.headers["Authorization"] == basic(SID, TOKEN)
    assert form_of(request) == {
        "To": TO,
        "From": FROM,
        "Body": "Email is down. Reply STOP to opt out",
        "StatusCallback": "https://shop.example/twilio/status",
    }


async def test_api_key_auth_and_messaging_service(router: respx.MockRouter, config: Config) -> None:
    route = router.post(MESSAGES).mock(return_value=created(status="accepted"))
    service = "MG" + "d4" * 16
    custom = settings(
        **{"from": None}, messaging_service_sid=service, api_key=API_KEY, api_secret=API_SECRET
    )
    async with TwilioSms("sms", "sms", custom, config) as channel:
        [outcome] = await channel.send([message()])

    assert outcome.state == "sent" and outcome.provider_id == MESSAGE_SID
    request = route.calls.last.request
    # The key authenticates; the account stays in the URL.
    assert str(request.url) == f"{BASE}{MESSAGES}"
    assert request.headers["Authorization"] == basic(API_KEY, API_SECRET)
    assert form_of(request) == {
        "To": TO,
        "MessagingServiceSid": service,
        "Body": "Email is down. Reply STOP to opt out",
    }


async def test_default_base_url_is_twilio(config: Config) -> None:
    with respx.mock(using="httpx") as mock:
        route = mock.post(f"https://api.twilio.com{MESSAGES}").mock(return_value=created())
        async with TwilioSms("sms", "sms", settings(base_url=None), config) as channel:
            [outcome] = await channel.send([message()])
    assert outcome.state == "sent" and route.called


async def test_sdk_client_is_built_once(
    router: respx.MockRouter, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []

    class CountingClient(twilio_sms.Client):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(twilio_sms, "Client", CountingClient)
    router.post(MESSAGES).mock(return_value=created())
    async with TwilioSms("sms", "sms", settings(), config) as channel:
        outcomes = await asyncio.gather(*(channel.send([message()]) for _ in range(10)))
    assert [o.state for [o] in outcomes] == ["sent"] * 10
    assert len(built) == 1


async def test_json_body_only_when_the_content_type_says_so(router: respx.MockRouter) -> None:
    route = router.post("/v1/Things").respond(201, json={"sid": "XX1"})
    async with httpx.AsyncClient() as http:
        client = HttpxTwilioClient(http, BASE)
        response = await client.request(
            "POST",
            "https://api.twilio.com/v1/Things",
            data={"Name": "a", "Count": 2},
            headers={"Content-Type": "application/json"},
            auth=(SID, TOKEN),
        )
    assert response.status_code == 201 and response.text == '{"sid":"XX1"}'
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert request.read() == b'{"Name":"a","Count":2}'


# --- errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (21211, "Invalid 'To' Phone Number: +1555"),
        (21610, "Attempt to send to unsubscribed recipient"),
        (21614, "'To' number is not a valid mobile number"),
    ],
)
async def test_recipient_errors_are_permanent(
    router: respx.MockRouter, channel: TwilioSms, code: int, text: str
) -> None:
    router.post(MESSAGES).mock(return_value=twilio_error(400, code, text))
    [outcome] = await channel.send([message()])
    assert outcome.state == "failed" and outcome.code == str(code)
    assert (outcome.retryable, outcome.fatal, outcome.retry_after) == (False, False, None)
    assert str(code) in (outcome.error or "") and text in (outcome.error or "")
    assert "Unable to create record" not in (outcome.error or "")


@pytest.mark.parametrize(
    ("answer", "code", "wait"),
    [
        (twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": "7"}), "20429", 7.0),
        (httpx.Response(429, text="slow down", headers={"Retry-After": "2"}), "429", 2.0),
        (twilio_error(500, 20500, "Internal Server Error"), "20500", None),
        (twilio_error(503, 20503, "Service Unavailable", **{"Retry-After": "30"}), "20503", 30.0),
        (httpx.Response(503, text="<html>upstream down</html>"), "503", None),
    ],
)
async def test_rate_limits_and_server_errors_are_transient(
    router: respx.MockRouter,
    channel: TwilioSms,
    answer: httpx.Response,
    code: str,
    wait: float | None,
) -> None:
    router.post(MESSAGES).mock(return_value=answer)
    [outcome] = await channel.send([message()])
    assert outcome.state == "failed" and outcome.code == code
    assert (outcome.retryable, outcome.fatal, outcome.retry_after) == (True, False, wait)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (twilio_error(401, 20003, "Authenticate"), "20003"),
        (
            twilio_error(400, 21606, "The 'From' phone number is not a valid SMS-capable number"),
            "21606",
        ),
        (twilio_error(400, 21608, "The number is unverified. Trial accounts cannot send"), "21608"),
        (twilio_error(400, 21408, "Permission to send an SMS has not been enabled"), "21408"),
        (httpx.Response(401, text="Unauthorized"), "401"),
    ],
)
async def test_configuration_errors_stop_the_channel(
    router: respx.MockRouter, channel: TwilioSms, answer: httpx.Response, code: str
) -> None:
    router.post(MESSAGES).mock(return_value=answer)
    [outcome] = await channel.send([message()])
    assert outcome.state == "failed" and outcome.code == code
    assert outcome.fatal and not outcome.retryable


async def test_rfc9457_problem_bodies(router: respx.MockRouter, channel: TwilioSms) -> None:
    router.post(MESSAGES).mock(
        side_effect=[
            problem(400, 21610, "Unsubscribed recipient", "The recipient replied STOP"),
            problem(429, 20429, "Too Many Requests", "Slow down", **{"Retry-After": "4"}),
            problem(401, 20003, "Authentication failed", "Bad credentials"),
        ]
    )
    stop, busy, auth = [(await channel.send([message()]))[0] for _ in range(3)]
    assert (stop.state, stop.code, stop.retryable, stop.fatal) == ("failed", "21610", False, False)
    assert "Unsubscribed recipient" in (stop.error or "")
    assert "The recipient replied STOP" in (stop.error or "")
    assert (busy.code, busy.retryable, busy.retry_after) == ("20429", True, 4.0)
    assert (auth.code, auth.fatal) == ("20003", True)


async def test_concurrent_sends_keep_their_own_retry_after(
    router: respx.MockRouter, channel: TwilioSms
) -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        to = form_of(request)["To"]
        # The first answer arrives last, so a shared "last answer" would mix them up.
        await asyncio.sleep(0.05 if to.endswith("1") else 0.0)
        return twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": to[-1]})

    router.post(MESSAGES).mock(side_effect=answer)
    results = await asyncio.gather(*(channel.send([message(f"+1500555000{n}")]) for n in (1, 2)))
    assert [o.retry_after for [o] in results] == [1.0, 2.0]


async def test_no_secret_in_outcomes_even_when_twilio_echoes_it(
    router: respx.MockRouter, config: Config
) -> None:
    # Fresh values, registered by nobody but open().
    token, secret = "echoed-auth-token-5f2a9c", "echoed-api-secret-7b1d3e"
    router.post(MESSAGES).mock(
        side_effect=[
            twilio_error(400, 21211, f"Invalid 'To' Phone Number (auth {token})"),
            twilio_error(401, 20003, f"Authenticate {API_KEY}:{secret}"),
            problem(503, 20503, "Unavailable", f"token={token}"),
        ]
    )
    async with TwilioSms("sms", "sms", settings(auth_token=token), config) as channel:
        first = await channel.send([message()])
    custom = settings(auth_token=token, api_key=API_KEY, api_secret=secret)
    async with TwilioSms("sms", "sms", custom, config) as channel:
        later = [(await channel.send([message()]))[0] for _ in range(2)]

    for outcome in [*first, *later]:
        text = repr(outcome) + (outcome.error_text or "")
        assert token not in text and secret not in text
        assert "[redacted]" in text


async def test_network_errors_reach_the_announcer(
    router: respx.MockRouter, channel: TwilioSms
) -> None:
    router.post(MESSAGES).mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(httpx.ConnectError):
        await channel.send([message()])


async def test_unreadable_success_is_unknown_not_resent(
    router: respx.MockRouter, channel: TwilioSms
) -> None:
    router.post(MESSAGES).respond(201, text="<html>accepted</html>")
    [outcome] = await channel.send([message()])
    assert outcome.state == "unknown" and not outcome.retryable


def test_missing_sender_is_refused_with_the_settings() -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**{"from": None})
    text = str(caught.value)
    assert "'from'" in text and "messaging_service_sid" in text


# --- check -----------------------------------------------------------------------


async def test_check_reads_the_account_and_sends_nothing(
    router: respx.MockRouter, channel: TwilioSms
) -> None:
    sent = router.post(MESSAGES).mock(return_value=created())
    read = router.get(ACCOUNT).respond(
        200, json={"sid": SID, "friendly_name": "Acme Shop", "status": "active", "type": "Full"}
    )
    result = await channel.check()
    assert result.status == "accepted" and "Acme Shop" in result.detail
    assert read.calls.last.request.headers["Authorization"] == basic(SID, TOKEN)
    assert not sent.called


@pytest.mark.parametrize(
    ("answer", "status", "words"),
    [
        (twilio_error(401, 20003, "Authenticate"), "refused", "auth_token"),
        (problem(401, 20003, "Authentication failed", "Bad credentials"), "refused", "20003"),
        (twilio_error(404, 20404, "The requested resource was not found"), "error", "account_sid"),
        (twilio_error(500, 20500, "Internal Server Error"), "error", "20500"),
    ],
)
async def test_check_refused_or_error(
    router: respx.MockRouter, channel: TwilioSms, answer: httpx.Response, status: str, words: str
) -> None:
    router.get(ACCOUNT).mock(return_value=answer)
    result = await channel.check()
    assert result.status == status and words in result.detail
    assert TOKEN not in result.detail


async def test_check_refuses_a_suspended_account(
    router: respx.MockRouter, channel: TwilioSms
) -> None:
    router.get(ACCOUNT).respond(200, json={"sid": SID, "friendly_name": "A", "status": "suspended"})
    result = await channel.check()
    assert result.status == "refused" and "suspended" in result.detail


async def test_check_network_error(router: respx.MockRouter, channel: TwilioSms) -> None:
    router.get(ACCOUNT).mock(side_effect=httpx.ConnectError("connection refused"))
    result = await channel.check()
    assert result.status == "error" and "cannot reach Twilio" in result.detail


# --- against the fake Twilio server --------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTwilio]:
    unsubscribed = (400, 21610, "Attempt to send to unsubscribed recipient")
    with FakeTwilio(
        account_sid=SID,
        auth_token=TOKEN,
        api_key_sid=API_KEY,
        api_key_secret=API_SECRET,
        errors_for={"+15005550009": unsubscribed},
    ) as server:
        yield server


async def test_against_the_fake_twilio_server(fake: FakeTwilio, config: Config) -> None:
    fake.reset()
    async with TwilioSms("sms", "sms", settings(base_url=fake.base_url), config) as channel:
        outcomes = [
            o
            for to in ("+15005550010", "+15005550011", "+15005550009", "not-a-number")
            for o in await channel.send([message(to)])
        ]
        check = await channel.check()

    assert [(o.state, o.code) for o in outcomes] == [
        ("sent", None),
        ("sent", None),
        ("failed", "21610"),
        ("failed", "21211"),
    ]
    assert [m["sid"] for m in fake.messages] == [o.provider_id for o in outcomes[:2]]
    assert all(m["sid"].startswith("SM") and m["from"] == FROM for m in fake.messages)
    assert check.status == "accepted"


async def test_fake_twilio_api_key_and_wrong_token(fake: FakeTwilio, config: Config) -> None:
    fake.reset()
    keyed = settings(base_url=fake.base_url, api_key=API_KEY, api_secret=API_SECRET)
    async with TwilioSms("sms", "sms", keyed, config) as channel:
        [sent] = await channel.send([message()])
    wrong = settings(base_url=fake.base_url, auth_token="not-the-token-123")
    async with TwilioSms("sms", "sms", wrong, config) as channel:
        [refused] = await channel.send([message()])
        check = await channel.check()

    assert sent.state == "sent" and fake.messages[0]["sid"] == sent.provider_id
    assert (refused.code, refused.fatal) == ("20003", True)
    assert check.status == "refused"
    assert len(fake.messages) == 1
