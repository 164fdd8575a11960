"""The fake providers answer like the real ones, checked with plain httpx and
smtplib requests (no outagecomms code involved)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from tests.fakes import (
    FakeProviders,
    FakeSendGrid,
    FakeSMTP,
    FakeTwilio,
    FakeWebhook,
    FakeX,
    closed_port,
    num_segments,
    silent_server,
)

TO = "+15005550010"
FROM = "+15005550006"


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(
        api_key_sid="SK" + "1" * 32,
        api_key_secret="key-secret",
        errors_for={"+15005550009": (400, 21610, "Attempt to send to unsubscribed recipient")},
    ) as fake:
        yield fake


@pytest.fixture(scope="module")
def x() -> Iterator[FakeX]:
    with FakeX() as fake:
        yield fake


@pytest.fixture(scope="module")
def sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    # Module-scoped fakes start quickly once; each test still sees empty records.
    for name in ("twilio", "x", "sendgrid"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


def _messages_url(fake: FakeTwilio, sid: str | None = None) -> str:
    return f"{fake.base_url}/2010-04-01/Accounts/{sid or fake.account_sid}/Messages.json"


def _sms(fake: FakeTwilio, **form: str) -> httpx.Response:
    return httpx.post(
        _messages_url(fake), data=form, auth=(fake.account_sid, fake.auth_token), timeout=5
    )


# -- Twilio -------------------------------------------------------------------


def test_twilio_accepts_a_message(twilio: FakeTwilio) -> None:
    response = _sms(twilio, To=TO, From=FROM, Body="Checkout is down", StatusCallback="http://cb/x")
    assert response.status_code == 201
    data = response.json()
    assert data["sid"].startswith("SM") and len(data["sid"]) == 34
    assert data["status"] == "queued"
    assert (data["to"], data["from"], data["body"]) == (TO, FROM, "Checkout is down")
    assert data["num_segments"] == "1"
    assert data["error_code"] is None and data["price"] is None
    assert data["account_sid"] == twilio.account_sid and data["date_created"]
    assert twilio.messages == [
        {
            "to": TO,
            "from": FROM,
            "body": "Checkout is down",
            "sid": data["sid"],
            "messaging_service_sid": None,
            "status_callback": "http://cb/x",
            "num_segments": "1",
        }
    ]
    (recorded,) = twilio.requests
    assert recorded.method == "POST" and recorded.form is not None
    assert recorded.form["Body"] == "Checkout is down"
    assert recorded.headers["authorization"].startswith("Basic ")


def test_twilio_messaging_service_and_api_key(twilio: FakeTwilio) -> None:
    response = httpx.post(
        _messages_url(twilio),
        data={"To": TO, "MessagingServiceSid": "MG" + "2" * 32, "Body": "’" * 71},
        auth=(twilio.api_key_sid or "", twilio.api_key_secret or ""),
    )
    assert response.status_code == 201
    data = response.json()
    assert data["status"] == "accepted" and data["from"] is None
    assert data["num_segments"] == "2"
    assert twilio.messages[0]["messaging_service_sid"] == "MG" + "2" * 32


def test_twilio_refuses_bad_credentials(twilio: FakeTwilio) -> None:
    response = httpx.post(
        _messages_url(twilio), data={"To": TO, "From": FROM, "Body": "hi"}, auth=("AC1", "nope")
    )
    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert twilio.messages == []


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({"To": "+15005550009", "From": FROM, "Body": "hi"}, 400, 21610),
        ({"To": "5551234", "From": FROM, "Body": "hi"}, 400, 21211),
        ({"From": FROM, "Body": "hi"}, 400, 21604),
        ({"To": TO, "Body": "hi"}, 400, 21603),
        ({"To": TO, "From": FROM}, 400, 21602),
        ({"To": TO, "From": FROM, "Body": "x" * 1601}, 400, 21617),
    ],
)
def test_twilio_errors(twilio: FakeTwilio, form: dict[str, str], status: int, code: int) -> None:
    response = _sms(twilio, **form)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code and body["status"] == status and body["message"]
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert twilio.messages == []


def test_twilio_account_read(twilio: FakeTwilio) -> None:
    url = f"{twilio.base_url}/2010-04-01/Accounts/{twilio.account_sid}.json"
    ok = httpx.get(url, auth=(twilio.account_sid, twilio.auth_token))
    assert ok.status_code == 200 and ok.json()["sid"] == twilio.account_sid
    refused = httpx.get(url, auth=(twilio.account_sid, "wrong"))
    assert refused.status_code == 401 and refused.json()["code"] == 20003


def test_num_segments() -> None:
    assert num_segments("a" * 160) == 1
    assert num_segments("a" * 161) == 2
    assert num_segments("€" * 80) == 1
    assert num_segments("’" * 70) == 1
    assert num_segments("’" * 71) == 2


# -- X ------------------------------------------------------------------------


def _oauth(fake: FakeX, consumer_key: str | None = None) -> dict[str, str]:
    key = consumer_key or fake.consumer_key
    return {
        "Authorization": (
            f'OAuth oauth_consumer_key="{key}", oauth_nonce="n", '
            f'oauth_signature="sig%3D", oauth_signature_method="HMAC-SHA1", '
            f'oauth_timestamp="1700000000", oauth_token="{fake.access_token}", '
            f'oauth_version="1.0"'
        )
    }


def test_x_posts_a_thread(x: FakeX) -> None:
    first = httpx.post(f"{x.base_url}/2/tweets", json={"text": "Down"}, headers=_oauth(x))
    assert first.status_code == 201
    first_id = first.json()["data"]["id"]
    assert first.json()["data"] == {
        "id": first_id,
        "edit_history_tweet_ids": [first_id],
        "text": "Down",
    }
    second = httpx.post(
        f"{x.base_url}/2/tweets",
        json={"text": "Fixed", "reply": {"in_reply_to_tweet_id": first_id}},
        headers={"Authorization": f"Bearer {x.bearer_token}"},
    )
    assert second.status_code == 201
    second_id = second.json()["data"]["id"]
    assert int(second_id) > int(first_id)
    assert x.posts == [
        {"id": first_id, "text": "Down", "in_reply_to": None},
        {"id": second_id, "text": "Fixed", "in_reply_to": first_id},
    ]


def test_x_refuses_duplicates_and_bad_auth(x: FakeX) -> None:
    url = f"{x.base_url}/2/tweets"
    assert httpx.post(url, json={"text": "Same"}, headers=_oauth(x)).status_code == 201
    duplicate = httpx.post(url, json={"text": "Same"}, headers=_oauth(x))
    assert duplicate.status_code == 403
    assert duplicate.json() == {
        "detail": "You are not allowed to create a Tweet with duplicate content.",
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
    }
    unauthorized = {
        "title": "Unauthorized",
        "type": "about:blank",
        "status": 401,
        "detail": "Unauthorized",
    }
    for headers in (_oauth(x, "other-key"), {"Authorization": "Bearer nope"}, {}):
        refused = httpx.post(url, json={"text": "New"}, headers=headers)
        assert refused.status_code == 401 and refused.json() == unauthorized
    assert httpx.post(url, json={}, headers=_oauth(x)).status_code == 400
    assert len(x.posts) == 1


def test_x_users_me(x: FakeX) -> None:
    me = httpx.get(f"{x.base_url}/2/users/me", headers=_oauth(x))
    assert me.status_code == 200
    assert set(me.json()["data"]) == {"id", "name", "username"}
    assert httpx.get(f"{x.base_url}/2/users/me").status_code == 401


def test_x_rate_limit_headers(x: FakeX) -> None:
    x.fail_every, x.fail_status, x.retry_after = 1, 429, 2
    try:
        response = httpx.post(f"{x.base_url}/2/tweets", json={"text": "t"}, headers=_oauth(x))
    finally:
        x.fail_every, x.fail_status, x.retry_after = None, 500, None
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    reset = int(response.headers["x-rate-limit-reset"])
    assert time.time() < reset <= time.time() + 3
    assert x.posts == [] and x.faulted == 1


# -- SendGrid -----------------------------------------------------------------


def _mail(*recipients: str, **extra: Any) -> dict[str, Any]:
    return {
        "personalizations": [
            {"to": [{"email": r, "name": r.split("@")[0]}], "custom_args": {"key": "k1"}}
            for r in recipients
        ],
        "from": {"email": "outage@shop.example", "name": "Acme"},
        "subject": "Checkout is down",
        "content": [
            {"type": "text/plain", "value": "plain"},
            {"type": "text/html", "value": "<p>html</p>"},
        ],
        "categories": ["INC-1"],
        **extra,
    }


def _send(fake: FakeSendGrid, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{fake.base_url}/v3/mail/send",
        json=body,
        headers={"Authorization": f"Bearer {key or fake.api_key}"},
    )


def test_sendgrid_accepts_a_batch(sendgrid: FakeSendGrid) -> None:
    response = _send(sendgrid, _mail("a@x.example", "b@x.example"))
    assert response.status_code == 202 and response.content == b""
    message_id = response.headers["x-message-id"]
    assert len(message_id) == 22
    assert [s["message_id"] for s in sendgrid.requests_sent] == [message_id]
    emails = sendgrid.emails
    assert [e["to"] for e in emails] == ["a@x.example", "b@x.example"]
    assert emails[0] | {"to": None} == {
        "to": None,
        "name": "a",
        "kind": "to",
        "from": "outage@shop.example",
        "subject": "Checkout is down",
        "categories": ["INC-1"],
        "custom_args": {"key": "k1"},
        "asm_group_id": None,
        "message_id": message_id,
        "text": "plain",
        "html": "<p>html</p>",
        "headers": {},
    }


def test_sendgrid_refuses_a_bad_key(sendgrid: FakeSendGrid) -> None:
    response = _send(sendgrid, _mail("a@x.example"), key="SG.wrong")
    assert response.status_code == 401
    assert response.json() == {
        "errors": [
            {
                "message": "The provided authorization grant is invalid, expired, or revoked",
                "field": None,
                "help": None,
            }
        ]
    }
    scopes = httpx.get(f"{sendgrid.base_url}/v3/scopes", headers={"Authorization": "Bearer x"})
    assert scopes.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_mail("a@x.example", "A@x.example"), "personalizations.1.to"),
        (_mail(*(f"u{i}@x.example" for i in range(1001))), "personalizations"),
        ({**_mail("a@x.example"), "from": None}, "from.email"),
        ({**_mail("a@x.example"), "content": [{"type": "text/plain", "value": "p"}]}, "content"),
        ({**_mail("a@x.example"), "subject": None}, "subject"),
        ({**_mail(), "personalizations": []}, "personalizations"),
    ],
    ids=["duplicate", "too-many", "no-from", "no-html", "no-subject", "no-personalizations"],
)
def test_sendgrid_validation(sendgrid: FakeSendGrid, body: dict[str, Any], field: str) -> None:
    response = _send(sendgrid, body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert field in [e["field"] for e in errors]
    assert all(e["message"] for e in errors)
    assert sendgrid.requests_sent == []


def test_sendgrid_emails_apply_each_personalizations_substitutions(
    sendgrid: FakeSendGrid,
) -> None:
    body = _mail(
        "a@x.example",
        "b@x.example",
        subject="For -name-",
        content=[
            {"type": "text/plain", "value": "Hi -name-, -name-long- (-name-)"},
            {"type": "text/html", "value": "<p>Hi -name-html-</p>"},
        ],
    )
    body["personalizations"][0]["substitutions"] = {
        "-name-": "Ada -name-html-",  # a value is not searched again
        "-name-long-": "long",
        "-name-html-": "Ada &amp; co",
    }
    assert _send(sendgrid, body).status_code == 202
    first, second = sendgrid.emails
    assert (first["subject"], first["text"], first["html"]) == (
        "For Ada -name-html-",
        "Hi Ada -name-html-, long (Ada -name-html-)",
        "<p>Hi Ada &amp; co</p>",
    )
    # The other personalization has no substitutions: it gets the content as sent.
    assert (second["subject"], second["text"]) == ("For -name-", "Hi -name-, -name-long- (-name-)")


@pytest.mark.parametrize(
    "substitutions",
    [{"-n-": 1}, ["-n-", "x"], {"-n-": "x" * 10_000}],
    ids=["not-a-string", "not-an-object", "too-big"],
)
def test_sendgrid_refuses_bad_substitutions(sendgrid: FakeSendGrid, substitutions: Any) -> None:
    body = _mail("a@x.example", "b@x.example")
    body["personalizations"][1]["substitutions"] = substitutions
    response = _send(sendgrid, body)
    assert response.status_code == 400
    assert "personalizations.1.substitutions" in [e["field"] for e in response.json()["errors"]]
    assert sendgrid.requests_sent == []


def test_sendgrid_sandbox_and_scopes(sendgrid: FakeSendGrid) -> None:
    body = _mail("a@x.example", mail_settings={"sandbox_mode": {"enable": True}})
    response = _send(sendgrid, body)
    assert response.status_code == 200
    assert sendgrid.emails == [] and len(sendgrid.sandbox_requests) == 1
    scopes = httpx.get(
        f"{sendgrid.base_url}/v3/scopes", headers={"Authorization": f"Bearer {sendgrid.api_key}"}
    )
    assert scopes.status_code == 200 and "mail.send" in scopes.json()["scopes"]


# -- webhooks -------------------------------------------------------------------


def test_webhook_slack_and_banner() -> None:
    with (
        FakeWebhook(require_text=True) as slack,
        FakeWebhook(token="t0k", path="/status.json") as banner,
    ):
        assert httpx.post(slack.url, json={"text": "Incident"}).text == "ok"
        no_text = httpx.post(slack.url, json={"blocks": []})
        assert (no_text.status_code, no_text.text) == (400, "no_text")
        bad = httpx.post(slack.url, content=b"{", headers={"content-type": "application/json"})
        assert (bad.status_code, bad.text) == (400, "invalid_payload")
        assert [r.json for r in slack.received] == [{"text": "Incident"}]

        status = {"id": "INC-1", "status": "investigating"}
        assert httpx.put(banner.url, json=status).status_code == 401
        ok = httpx.put(banner.url, json=status, headers={"Authorization": "Bearer t0k"})
        assert (ok.status_code, ok.text) == (200, "ok")
        (received,) = banner.received
        assert received.method == "PUT" and received.path == "/status.json"
        assert received.json == status and received.headers["Authorization"] == "Bearer t0k"
        assert httpx.get(banner.url).status_code == 405


# -- faults, latency, lifecycle -------------------------------------------------


def test_fail_every_is_not_a_delivery(twilio: FakeTwilio) -> None:
    twilio.fail_every, twilio.fail_status, twilio.retry_after = 3, 429, 0.5
    try:
        statuses = [_sms(twilio, To=TO, From=FROM, Body=f"m{i}").status_code for i in range(7)]
        faulted = _sms(twilio, To=TO, From=FROM, Body="m7")
    finally:
        twilio.fail_every, twilio.fail_status, twilio.retry_after = None, 500, None
    assert statuses == [201, 201, 429, 201, 201, 429, 201]
    assert faulted.status_code == 201
    assert len(twilio.messages) == 6 and len(twilio.requests) == 6
    assert twilio.faulted == 2
    assert [r.form["Body"] for r in twilio.faulted_requests if r.form] == ["m2", "m5"]

    twilio.fail_every, twilio.retry_after = 1, 0.5
    try:
        response = _sms(twilio, To=TO, From=FROM, Body="again")
    finally:
        twilio.fail_every, twilio.retry_after = None, None
    assert response.status_code == 500
    assert response.headers["Retry-After"] == "0.5"
    assert response.json()["code"] == 20500


def test_down_answers_503_and_reset_clears(sendgrid: FakeSendGrid) -> None:
    sendgrid.down = True
    try:
        response = _send(sendgrid, _mail("a@x.example"))
    finally:
        sendgrid.down = False
    assert response.status_code == 503 and response.json()["errors"]
    assert sendgrid.faulted == 1 and sendgrid.emails == []
    assert _send(sendgrid, _mail("a@x.example")).status_code == 202
    sendgrid.reset()
    assert (sendgrid.faulted, sendgrid.requests, sendgrid.emails) == (0, [], [])


async def test_latency_overlaps_requests() -> None:
    with FakeWebhook(latency=0.2) as hook:
        async with httpx.AsyncClient() as client:
            started = time.perf_counter()
            responses = await asyncio.gather(
                *(client.post(hook.url, json={"n": i}) for i in range(20))
            )
            elapsed = time.perf_counter() - started
    assert all(r.status_code == 200 for r in responses)
    # 20 requests sleeping 0.2 s each finish together, not one after another.
    assert 0.2 <= elapsed < 1.5


def test_stop_frees_the_port() -> None:
    fake = FakeTwilio(latency=5)
    fake.start()
    port = fake.port
    with pytest.raises(httpx.ReadTimeout):
        # A request caught mid-latency must not hold up stop().
        httpx.get(f"{fake.base_url}/2/anything", timeout=0.2)
    started = time.perf_counter()
    fake.stop()
    assert time.perf_counter() - started < 2
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_served_to_a_subprocess(twilio: FakeTwilio) -> None:
    # The e2e tests run the real CLI in a subprocess against these fakes.
    code = (
        "import httpx, sys; "
        "r = httpx.post(sys.argv[1], data={'To': sys.argv[2], 'From': sys.argv[2], "
        "'Body': 'hi'}, auth=(sys.argv[3], sys.argv[4])); print(r.status_code)"
    )
    args = [_messages_url(twilio), TO, twilio.account_sid, twilio.auth_token]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=20
    )
    assert done.stdout.strip() == "201", done.stderr
    assert len(twilio.messages) == 1


def test_fake_providers_env() -> None:
    with FakeProviders() as fakes:
        env = fakes.env()
        assert env["OUTAGECOMMS_CHANNELS__SMS__ACCOUNT_SID"] == fakes.twilio.account_sid
        assert env["OUTAGECOMMS_CHANNELS__SMS__BASE_URL"] == fakes.twilio.base_url
        assert env["OUTAGECOMMS_CHANNELS__SOCIAL__ACCESS_TOKEN_SECRET"] == (
            fakes.x.access_token_secret
        )
        assert env["OUTAGECOMMS_CHANNELS__EMAIL__API_KEY"] == fakes.sendgrid.api_key
        assert env["OUTAGECOMMS_CHANNELS__TEAM__WEBHOOK_URL"] == fakes.slack.url
        assert not any("BANNER" in key for key in env)
        other = fakes.env(email_fallback=True, banner="status", sms=None)
        assert other["OUTAGECOMMS_CHANNELS__EMAIL__FALLBACK__API_KEY"] == fakes.sendgrid.api_key
        assert other["OUTAGECOMMS_CHANNELS__STATUS__TOKEN"] == fakes.banner.token
        assert not any("__SMS__" in key for key in other)
        assert httpx.post(fakes.slack.url, json={"text": "hi"}).text == "ok"


# -- SMTP -----------------------------------------------------------------------


def _email(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "outage@shop.example"
    message["To"] = to
    message["Subject"] = "Checkout is down"
    message.set_content("We are on it.")
    return message


def test_smtp_receives_messages() -> None:
    with FakeSMTP() as server, smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.send_message(_email("a@x.example"))
        client.send_message(_email("b@x.example"))
    assert [m.rcpt_tos for m in server.messages] == [["a@x.example"], ["b@x.example"]]
    first = server.messages[0]
    assert first.mail_from == "outage@shop.example"
    assert (first.to, first.subject) == ("a@x.example", "Checkout is down")
    body = first.message.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "We are on it."


def test_smtp_fails_rcpt_mid_batch() -> None:
    with FakeSMTP(fail_rcpt_after=1) as server, smtplib.SMTP(server.host, server.port) as client:
        client.send_message(_email("a@x.example"))
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.send_message(_email("b@x.example"))
    assert refused.value.recipients["b@x.example"] == (451, b"4.3.0 Try again later")
    assert len(server.messages) == 1 and server.refused_rcpts == ["b@x.example"]


def test_smtp_auth() -> None:
    with FakeSMTP(auth=("user", "pw")) as server:
        with (
            smtplib.SMTP(server.host, server.port) as client,
            pytest.raises(smtplib.SMTPAuthenticationError),
        ):
            client.login("user", "wrong")
        with (
            smtplib.SMTP(server.host, server.port) as client,
            pytest.raises(smtplib.SMTPSenderRefused) as refused,
        ):
            client.send_message(_email("a@x.example"))
        assert refused.value.smtp_code == 530
        with smtplib.SMTP(server.host, server.port) as client:
            client.login("user", "pw")
            client.send_message(_email("a@x.example"))
    assert len(server.messages) == 1


def test_closed_port_and_silent_server() -> None:
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", closed_port(), timeout=1)
    with silent_server() as silent:
        started = time.perf_counter()
        with pytest.raises((TimeoutError, smtplib.SMTPServerDisconnected)):
            smtplib.SMTP(silent.host, silent.port, timeout=0.3)
        assert time.perf_counter() - started < 2
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(silent.base_url, timeout=0.3)
        assert silent.connections == 2
