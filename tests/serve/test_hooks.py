"""The provider webhooks over HTTP: real signatures in, ledger rows and suppressions out;
anything unsigned, forged or wrongly keyed gets 403 and changes nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from outagecomms.serve.app import create_app
from outagecomms.store import open_store

from .consent_shop import (
    ADA_EMAIL,
    ADA_PHONE,
    AUTH_TOKEN,
    BOB_EMAIL,
    BOB_PHONE,
    KEY,
    SendGridKey,
    make_shop,
    seed_sent,
    states,
    suppressions,
    twilio_signature,
)

STATUS, INBOUND, SENDGRID = "/hooks/twilio/status", "/hooks/twilio/inbound", "/hooks/sendgrid"


@pytest.fixture
def sendgrid_key() -> SendGridKey:
    return SendGridKey.generate()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sendgrid_key: SendGridKey) -> Any:
    config = make_shop(tmp_path, monkeypatch, sendgrid_key=sendgrid_key.public)
    seed_sent(config)
    return config


async def client_for(config: Any) -> TestClient:
    client = TestClient(TestServer(create_app(config)))
    await client.start_server()
    return client


@pytest.fixture
async def client(config: Any) -> AsyncIterator[TestClient]:
    client = await client_for(config)
    yield client
    await client.close()


async def post_twilio(
    client: TestClient, path: str, params: dict[str, str], *, signature: str | None = "sign"
) -> Any:
    headers = {}
    if signature == "sign":
        headers["X-Twilio-Signature"] = twilio_signature(path, params)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    return await client.post(path, data=params, headers=headers)


def status(sid: str, value: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": value, "To": ADA_PHONE, **extra}


# --- Twilio status callbacks ------------------------------------------------------


async def test_delivered_receipt_marks_the_row(client: TestClient, config: Any) -> None:
    response = await post_twilio(client, STATUS, status("SM-ada", "delivered"))
    assert response.status == 200
    rows = states(config, "sms")
    assert rows[ADA_PHONE][0] == "delivered" and rows[BOB_PHONE][0] == "sent"


async def test_out_of_order_and_repeated_receipts(client: TestClient, config: Any) -> None:
    await post_twilio(client, STATUS, status("SM-bob", "undelivered", ErrorCode="30006"))
    state, error = states(config, "sms")[BOB_PHONE]
    assert state == "undelivered" and error is not None and "30006" in error
    # A late delivered wins; then an old undelivered or a "sent" never takes it back.
    await post_twilio(client, STATUS, status("SM-bob", "delivered"))
    await post_twilio(client, STATUS, status("SM-bob", "failed", ErrorCode="30008"))
    await post_twilio(client, STATUS, status("SM-bob", "sent"))
    await post_twilio(client, STATUS, status("SM-bob", "delivered"))
    assert states(config, "sms")[BOB_PHONE][0] == "delivered"


async def test_failed_becomes_undelivered_and_other_statuses_change_nothing(
    client: TestClient, config: Any
) -> None:
    for value in ("queued", "sending", "sent", "read", "canceled", "whatever"):
        assert (await post_twilio(client, STATUS, status("SM-ada", value))).status == 200
    assert states(config, "sms")[ADA_PHONE][0] == "sent"
    await post_twilio(client, STATUS, status("SM-ada", "failed", ErrorCode="30007"))
    state, error = states(config, "sms")[ADA_PHONE]
    assert state == "undelivered" and error == "30007: filtered by the carrier (failed)"


async def test_unknown_sid_is_200_and_ignored(client: TestClient, config: Any) -> None:
    before = states(config, "sms")
    response = await post_twilio(client, STATUS, status("SM-nobody", "delivered"))
    assert response.status == 200
    assert states(config, "sms") == before


@pytest.mark.parametrize(
    "signature",
    [None, "", "bm90IGEgc2lnbmF0dXJl", "d3Jvbmc9PT0x", "forged-by-another-token"],
)
async def test_unsigned_or_forged_status_is_403_and_changes_nothing(
    client: TestClient, config: Any, signature: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    params = status("SM-ada", "delivered")
    if signature == "forged-by-another-token":
        signature = twilio_signature(STATUS, params, token="some-other-account-token")
    caplog.set_level(logging.INFO)
    response = await post_twilio(client, STATUS, params, signature=signature)
    assert response.status == 403
    assert states(config, "sms")[ADA_PHONE][0] == "sent"
    assert "refused a Twilio status callback" in caplog.text
    assert AUTH_TOKEN not in caplog.text
    if signature:
        assert signature not in caplog.text


async def test_a_signed_body_altered_is_403(client: TestClient, config: Any) -> None:
    signed = twilio_signature(STATUS, status("SM-ada", "undelivered", ErrorCode="30003"))
    altered = status("SM-ada", "delivered")
    response = await post_twilio(client, STATUS, altered, signature=signed)
    assert response.status == 403
    assert states(config, "sms")[ADA_PHONE][0] == "sent"


async def test_signature_for_the_server_address_instead_of_public_url_is_403(
    client: TestClient, config: Any
) -> None:
    from twilio.request_validator import RequestValidator

    params = status("SM-ada", "delivered")
    seen = str(client.make_url(STATUS))
    signature = RequestValidator(AUTH_TOKEN).compute_signature(seen, params)
    assert (await post_twilio(client, STATUS, params, signature=signature)).status == 403


async def test_without_public_url_twilio_hooks_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_shop(tmp_path, monkeypatch, public_url=None)
    seed_sent(config)
    client = await client_for(config)
    try:
        response = await post_twilio(client, STATUS, status("SM-ada", "delivered"))
        assert response.status == 403
        assert "serve.public_url is not set" in caplog.text
    finally:
        await client.close()
    assert states(config, "sms")[ADA_PHONE][0] == "sent"


# --- Twilio replies ---------------------------------------------------------------


def reply(body: str, sender: str = ADA_PHONE, **extra: str) -> dict[str, str]:
    return {"From": sender, "To": "+15005550006", "Body": body, "MessageSid": "SMin", **extra}


async def test_stop_suppresses_and_start_lifts(client: TestClient, config: Any) -> None:
    response = await post_twilio(client, INBOUND, reply("  stop "))
    assert response.status == 200
    assert response.content_type == "text/xml"
    assert (await response.text()) == "<Response/>"
    assert suppressions(config) == {ADA_PHONE: ("sms", "sms-stop")}
    await post_twilio(client, INBOUND, reply("Start"))
    assert suppressions(config) == {}


async def test_opt_out_type_and_other_words(client: TestClient, config: Any) -> None:
    await post_twilio(client, INBOUND, reply("thanks!", BOB_PHONE))
    assert suppressions(config) == {}
    await post_twilio(client, INBOUND, reply("please no more", BOB_PHONE, OptOutType="STOP"))
    assert suppressions(config) == {BOB_PHONE: ("sms", "sms-stop")}


async def test_start_does_not_lift_a_suppression_added_by_hand(
    client: TestClient, config: Any
) -> None:
    with open_store(config.ledger, base_dir=config.root) as store:
        store.add_suppressions([(ADA_PHONE, "sms", "manual", "legal hold")])
    await post_twilio(client, INBOUND, reply("YES"))
    assert suppressions(config) == {ADA_PHONE: ("sms", "manual")}


async def test_forged_stop_is_403_and_suppresses_nothing(client: TestClient, config: Any) -> None:
    response = await post_twilio(client, INBOUND, reply("STOP"), signature="Zm9yZ2Vk")
    assert response.status == 403
    assert suppressions(config) == {}


# --- SendGrid events --------------------------------------------------------------


def event(name: str, email: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "email": email,
        "event": name,
        "timestamp": 1764400000,
        "sg_event_id": event_id,
        "sg_message_id": "X1.filter0001",
        "announcement": KEY,
        "channel": "email",
        "incident": "mail-down",
        **extra,
    }


async def post_events(
    client: TestClient, key: SendGridKey, events: Any, *, signed: bool = True
) -> Any:
    body = json.dumps(events).encode()
    headers = key.headers(body) if signed else {"Content-Type": "application/json"}
    return await client.post(SENDGRID, data=body, headers=headers)


async def test_sendgrid_events(client: TestClient, config: Any, sendgrid_key: SendGridKey) -> None:
    events = [
        event("processed", ADA_EMAIL, "e0"),
        event("delivered", ADA_EMAIL, "e1"),
        event("bounce", BOB_EMAIL, "e2", reason="550 5.1.1 mailbox unknown", type="bounce"),
        event("open", ADA_EMAIL, "e3"),
        event("delivered", "nobody@example.com", "e4"),
        event("delivered", ADA_EMAIL, "e5", announcement="other/identified"),
        event("unsubscribe", ADA_EMAIL, "e6"),
        event("spamreport", "carol@example.com", "e7"),
        event("group_unsubscribe", "DAN@Example.com", "e8", asm_group_id=1),
        "not an event",
    ]
    response = await post_events(client, sendgrid_key, events)
    assert response.status == 200
    rows = states(config, "email")
    assert rows[ADA_EMAIL][0] == "delivered"
    assert rows[BOB_EMAIL] == ("undelivered", "bounce: 550 5.1.1 mailbox unknown")
    assert suppressions(config) == {
        ADA_EMAIL: ("email", "sendgrid-unsubscribe"),
        "carol@example.com": ("email", "sendgrid-spamreport"),
        "dan@example.com": ("email", "sendgrid-group_unsubscribe"),
    }


async def test_the_same_event_twice_counts_once(
    client: TestClient, config: Any, sendgrid_key: SendGridKey
) -> None:
    await post_events(client, sendgrid_key, [event("delivered", BOB_EMAIL, "same")])
    # The same event id again, now claiming a bounce: a replay changes nothing.
    await post_events(client, sendgrid_key, [event("bounce", BOB_EMAIL, "same", reason="x")])
    assert states(config, "email")[BOB_EMAIL] == ("delivered", None)
    with open_store(config.ledger, base_dir=config.root) as store:
        assert [r["event"] for r in store.receipts(BOB_EMAIL)] == ["sendgrid delivered"]


async def test_unsigned_forged_or_wrongly_keyed_events_are_403(
    client: TestClient, config: Any, sendgrid_key: SendGridKey, caplog: pytest.LogCaptureFixture
) -> None:
    events = [event("unsubscribe", ADA_EMAIL, "f1"), event("delivered", ADA_EMAIL, "f2")]
    body = json.dumps(events).encode()
    other = SendGridKey.generate()
    attempts = [
        {"Content-Type": "application/json"},
        other.headers(body),
        {**sendgrid_key.headers(body), "X-Twilio-Email-Event-Webhook-Timestamp": "1764400001"},
        {**sendgrid_key.headers(body), "X-Twilio-Email-Event-Webhook-Signature": "%%%not-b64"},
        {**sendgrid_key.headers(body), "X-Twilio-Email-Event-Webhook-Signature": "QUJD"},
    ]
    for headers in attempts:
        response = await client.post(SENDGRID, data=body, headers=headers)
        assert response.status == 403
    # Signed, then altered by one byte on the way.
    altered = body.replace(b"f2", b"f3")
    response = await client.post(SENDGRID, data=altered, headers=sendgrid_key.headers(body))
    assert response.status == 403
    assert suppressions(config) == {}
    assert states(config, "email")[ADA_EMAIL][0] == "sent"
    for headers in attempts[1:]:
        assert headers["X-Twilio-Email-Event-Webhook-Signature"] not in caplog.text
    # Refused events were never seen: the real ones still apply once signed.
    assert (await post_events(client, sendgrid_key, events)).status == 200
    assert states(config, "email")[ADA_EMAIL][0] == "delivered"


async def test_no_key_configured_refuses_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sendgrid_key: SendGridKey
) -> None:
    config = make_shop(tmp_path, monkeypatch)
    seed_sent(config)
    client = await client_for(config)
    try:
        response = await post_events(client, sendgrid_key, [event("spamreport", ADA_EMAIL, "n")])
        assert response.status == 403
    finally:
        await client.close()
    assert suppressions(config) == {}


async def test_signed_but_not_an_array_is_400(
    client: TestClient, sendgrid_key: SendGridKey
) -> None:
    assert (await post_events(client, sendgrid_key, {"event": "delivered"})).status == 400
    body = b"not json"
    response = await client.post(SENDGRID, data=body, headers=sendgrid_key.headers(body))
    assert response.status == 400
