"""SendGridEmail: the /v3/mail/send payload, batching, and how answers become outcomes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import ValidationError

from outagecomms.channels.sendgrid_email import SendGridEmail, shape_of
from outagecomms.config import Config, SendGridSettings, load_config
from outagecomms.models import Incident, Message, Outcome, Recipient
from outagecomms.redact import register_secret
from outagecomms.render import Renderer
from tests.fakes import FakeSendGrid
from tests.fakes.sendgrid import substitute

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
            message("grace@example.com", "Grace", text="Hello Grace"),
            message("alan@example.com", "Alan", text="Hi Alan"),
        ]
    )
    assert route.call_count == 2
    by_text = {
        body_of(call)["content"][0]["value"]: sorted(
            p["to"][0]["email"] for p in body_of(call)["personalizations"]
        )
        for call in route.calls
    }
    # Content differing only by the recipient's name is one shape (see the tests below).
    assert by_text == {
        "Hi [oc-name-txt]": ["ada@example.com", "alan@example.com"],
        "Hello [oc-name-txt]": ["grace@example.com"],
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


def refuse_bad_address(request: httpx.Request) -> httpx.Response:
    """SendGrid's answer to a request naming ``not-an-address@``: the whole request refused."""
    body = json.loads(request.content)
    for index, personalization in enumerate(body["personalizations"]):
        if personalization["to"][0]["email"] == "not-an-address@":
            field = f"personalizations.{index}.to.0.email"
            error = {"message": "Does not contain a valid address.", "field": field}
            return httpx.Response(400, json={"errors": [error]})
    return httpx.Response(202, headers={"X-Message-Id": "second"})


async def test_one_refused_address_fails_alone_and_the_others_are_sent(
    router: respx.MockRouter, channel: SendGridEmail
) -> None:
    route = router.post("/v3/mail/send").mock(side_effect=refuse_bad_address)
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


def test_a_missing_sender_is_refused_with_the_settings() -> None:
    with pytest.raises(ValidationError, match="set 'from'"):
        SendGridSettings.model_validate(
            {"driver": "sendgrid", "base_url": BASE, "api_key": API_KEY}
        )


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


# -- one request for many names: shapes and substitutions ------------------------


FULL_INCIDENT = Incident(
    id="mail-down",
    title="Email delivery is delayed",
    summary="Our mail server crashed. Orders are safe; confirmations are delayed.",
    details="We are moving mail to a backup server & will resend what was held.",
    affected=["newsletter", "order confirmations"],
    eta=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
)


def render_config(tmp_path: Path, templates: dict[str, str] | None = None) -> Config:
    """A config whose email channel renders through the real (packaged) templates,
    overridden by ``templates`` (file name -> text) where given."""
    (tmp_path / "channels.yaml").write_text(
        "organization: {name: Acme Shop, status_url: https://shop.example/status}\n"
        "channels:\n"
        "  email: {driver: sendgrid, from: outage@shop.example}\n"
    )
    (tmp_path / "templates").mkdir(exist_ok=True)
    for name, text in (templates or {}).items():
        (tmp_path / "templates" / name).write_text(text)
    return load_config(tmp_path / "channels.yaml")


def rendered(
    config: Config, people: list[tuple[str, str | None]], incident: Incident = INCIDENT
) -> list[Message]:
    """Messages rendered by the real renderer for ``(address, name)`` pairs."""
    renderer = Renderer(config, incident)
    settings_ = config.channels["email"]
    return [
        renderer.message(
            "email",
            "email",
            settings_,
            address=address,
            recipient=Recipient(email=address, name=name),
        )
        for address, name in people
    ]


def delivered(bodies: list[dict[str, Any]]) -> dict[str, tuple[str, str, str | None]]:
    """(subject, text, html) each address receives once SendGrid applied its substitutions.

    The fake's one-pass replacement and a naive one (tag after tag, in either order)
    must agree: what a recipient gets cannot depend on how SendGrid substitutes.
    """
    received: dict[str, tuple[str, str, str | None]] = {}
    for body in bodies:
        content = {c["type"]: c["value"] for c in body["content"]}
        parts = (body["subject"], content["text/plain"], content.get("text/html"))
        for personalization in body["personalizations"]:
            substitutions = personalization.get("substitutions", {})
            assert all(isinstance(v, str) for v in substitutions.values())
            one_pass = tuple(substitute(part, substitutions) for part in parts)
            for order in (list(substitutions), list(reversed(substitutions))):
                naive = []
                for part in parts:
                    for tag in order:
                        part = None if part is None else part.replace(tag, substitutions[tag])
                    naive.append(part)
                assert tuple(naive) == one_pass
            address = personalization["to"][0]["email"]
            assert address not in received, "an address went twice"
            received[address] = one_pass  # type: ignore[assignment]
    return received


def as_rendered(messages: list[Message]) -> dict[str, tuple[str, str, str | None]]:
    return {m.recipient: (m.subject or "", m.text, m.html) for m in messages}


async def send_all(channel: SendGridEmail, messages: list[Message]) -> list[Outcome]:
    """Batches of ``batch_size``, as the announcer hands them over."""
    outcomes: list[Outcome] = []
    for start in range(0, len(messages), channel.batch_size):
        outcomes += await channel.send(messages[start : start + channel.batch_size])
    return outcomes


async def test_2500_different_names_go_in_three_requests_each_exactly_as_rendered(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    config = render_config(tmp_path)
    people = [(f"customer{n}@example.com", f"Customer{n} Number") for n in range(2500)]
    messages = rendered(config, people, FULL_INCIDENT)
    assert messages[7].text.startswith("Hi Customer7,")  # the default greeting
    ids: list[str] = []
    route = router.post("/v3/mail/send").mock(side_effect=accept(ids))
    async with SendGridEmail("email", "email", settings(), config) as channel:
        outcomes = await send_all(channel, messages)

    assert route.call_count == 3
    bodies = [body_of(call) for call in route.calls]
    assert [len(b["personalizations"]) for b in bodies] == [1000, 1000, 500]
    assert delivered(bodies) == as_rendered(messages)
    # The shared content greets a token, never anyone's name.
    text = bodies[0]["content"][0]["value"]
    assert text.startswith("Hi [oc-first-txt],") and "Customer" not in text
    assert "Hi [oc-first-html],</p>" in bodies[0]["content"][1]["value"]
    assert all(o.state == "sent" for o in outcomes)
    ids_in_order = ["msg-1"] * 1000 + ["msg-2"] * 1000 + ["msg-3"] * 500
    assert [o.provider_id for o in outcomes] == ids_in_order


async def test_a_name_with_html_characters_is_escaped_in_html_and_raw_in_text(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    config = render_config(tmp_path)
    nasty = "O'Brien <b>&"
    messages = rendered(config, [("ob@example.com", nasty), ("ada@example.com", "Ada Lovelace")])
    route = router.post("/v3/mail/send").respond(202, headers={"X-Message-Id": "one"})
    async with SendGridEmail("email", "email", settings(), config) as channel:
        await channel.send(messages)

    assert route.call_count == 1
    body = body_of(route.calls.last)
    received = delivered([body])
    assert received == as_rendered(messages)
    _, text, html = received["ob@example.com"]
    assert text.startswith("Hi O'Brien,")
    assert "Hi O&#39;Brien,</p>" in (html or "") and nasty not in (html or "")
    [substitutions] = [
        p["substitutions"]
        for p in body["personalizations"]
        if p["to"][0]["email"] == "ob@example.com"
    ]
    assert substitutions == {"[oc-first-txt]": "O'Brien", "[oc-first-html]": "O&#39;Brien"}


async def test_a_name_found_elsewhere_in_the_content_still_comes_out_exactly(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    # "Acme" and "Shop" are also in "The Acme Shop team", "on" inside many words: each of
    # their shapes has more tokens than the greeting, so differs from Ada's and Grace's.
    config = render_config(tmp_path)
    people = [
        ("acme@example.com", "Acme"),
        ("ada@example.com", "Ada"),
        ("shop@example.com", "Shop"),
        ("grace@example.com", "Grace"),
        ("on@example.com", "on"),
    ]
    messages = rendered(config, people, FULL_INCIDENT)
    ids: list[str] = []
    route = router.post("/v3/mail/send").mock(side_effect=accept(ids))
    async with SendGridEmail("email", "email", settings(), config) as channel:
        outcomes = await channel.send(messages)

    bodies = [body_of(call) for call in route.calls]
    received = delivered(bodies)
    assert received == as_rendered(messages)
    assert "The Acme Shop team" in received["acme@example.com"][1]
    assert "order confirmations" in received["on@example.com"][1]
    assert sorted(sorted(p["to"][0]["email"] for p in b["personalizations"]) for b in bodies) == [
        ["acme@example.com"],
        ["ada@example.com", "grace@example.com"],
        ["on@example.com"],
        ["shop@example.com"],
    ]
    assert all(o.state == "sent" for o in outcomes)


async def test_a_template_that_transforms_the_name_sends_each_message_as_rendered(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    config = render_config(tmp_path, {"email.txt.j2": "Hi {{ recipient.name | upper }}!"})
    people = [("ada@example.com", "Ada"), ("grace@example.com", "Grace"), ("al@example.com", "Al")]
    messages = rendered(config, people)
    assert messages[0].text == "Hi ADA!"
    ids: list[str] = []
    route = router.post("/v3/mail/send").mock(side_effect=accept(ids))
    async with SendGridEmail("email", "email", settings(), config) as channel:
        outcomes = await channel.send(messages)

    # The text differs by more than the name: one request each, still exact.
    assert route.call_count == 3
    bodies = [body_of(call) for call in route.calls]
    assert delivered(bodies) == as_rendered(messages)
    assert {b["content"][0]["value"] for b in bodies} == {"Hi ADA!", "Hi GRACE!", "Hi AL!"}
    assert [o.provider_id for o in outcomes] == ["msg-1", "msg-2", "msg-3"]


async def test_recipients_without_a_name_share_one_request(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    config = render_config(tmp_path)
    people: list[tuple[str, str | None]] = [
        ("a@example.com", None),
        ("ada@example.com", "Ada"),
        ("b@example.com", None),
        ("grace@example.com", "Grace"),
        ("c@example.com", None),
    ]
    messages = rendered(config, people)
    ids: list[str] = []
    route = router.post("/v3/mail/send").mock(side_effect=accept(ids))
    async with SendGridEmail("email", "email", settings(), config) as channel:
        outcomes = await channel.send(messages)

    assert route.call_count == 2
    bodies = [body_of(call) for call in route.calls]
    assert delivered(bodies) == as_rendered(messages)
    nameless = next(b for b in bodies if b["content"][0]["value"].startswith("Hi there,"))
    assert sorted(p["to"][0]["email"] for p in nameless["personalizations"]) == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]
    assert all("substitutions" not in p for p in nameless["personalizations"])
    assert [o.provider_id for o in outcomes] == ["msg-1", "msg-2", "msg-1", "msg-2", "msg-1"]


async def test_the_address_in_the_content_is_substituted_too(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    config = render_config(
        tmp_path,
        {
            "email.txt.j2": "Hi {{ recipient.name }}, this went to {{ recipient.email }}.",
            "email.html.j2": "<p>{{ recipient.name }}: sent to {{ recipient.email }}</p>",
        },
    )
    # The second name is also the start of the address: the address wins as a whole.
    people = [("ada@example.com", "Ada"), ("grace@example.com", "grace"), ("o'b@example.com", "")]
    messages = rendered(config, people)
    route = router.post("/v3/mail/send").respond(202, headers={"X-Message-Id": "one"})
    async with SendGridEmail("email", "email", settings(), config) as channel:
        await channel.send(messages)

    bodies = [body_of(call) for call in route.calls]
    assert delivered(bodies) == as_rendered(messages)
    # o'b has no name ("Hi None, ...": another text), and an address escaped in html.
    assert route.call_count == 2
    named = next(b for b in bodies if len(b["personalizations"]) == 2)
    assert named["content"][0]["value"] == "Hi [oc-name-txt], this went to [oc-addr-txt]."
    assert named["content"][1]["value"] == "<p>[oc-name-html]: sent to [oc-addr-html]</p>"
    [unnamed] = [b for b in bodies if b is not named]
    assert unnamed["personalizations"][0]["substitutions"] == {
        "[oc-addr-txt]": "o'b@example.com",
        "[oc-addr-html]": "o&#39;b@example.com",
    }


@pytest.mark.parametrize(
    ("name", "summary", "shared"),
    [
        ("Ada", "Orders are safe.", True),
        ("X", "Orders are safe.", False),  # too short to be worth replacing
        ("Ada", "Look for [oc-name-txt] in the text.", False),  # a token already there
        ("[oc-Ada", "Orders are safe.", False),  # a value that looks like a token
        ("A" * 6000, "Orders are safe.", False),  # substitutions over 10,000 bytes
    ],
    ids=["shared", "short-name", "token-in-content", "token-in-name", "too-big"],
)
def test_shape_guards(tmp_path: Path, name: str, summary: str, shared: bool) -> None:
    config = render_config(tmp_path)
    incident = INCIDENT.model_copy(update={"summary": summary})
    [message] = rendered(config, [("ada@example.com", name)], incident)
    shape = shape_of(message)
    assert bool(shape.substitutions) is shared
    received = tuple(substitute(part, shape.substitutions) for part in shape.content)
    assert received == (message.subject, message.text, message.html)
    if not shared:
        assert shape.content == (message.subject, message.text, message.html)


def test_a_token_in_a_request_wide_value_turns_substitution_off(tmp_path: Path) -> None:
    config = render_config(tmp_path)
    [message] = rendered(config, [("ada@example.com", "Ada")])
    assert shape_of(message).substitutions
    # SendGrid substitutes in reply-to and custom args as well.
    assert not shape_of(message, ["help+[oc-x]@shop.example"]).substitutions


async def test_the_retry_without_a_refused_address_keeps_the_substitutions(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    config = render_config(tmp_path)
    people = [("ada@example.com", "Ada"), ("not-an-address@", "Nobody"), ("gh@example.com", "Gh")]
    messages = rendered(config, people)

    route = router.post("/v3/mail/send").mock(side_effect=refuse_bad_address)
    async with SendGridEmail("email", "email", settings(), config) as channel:
        outcomes = await channel.send(messages)

    assert route.call_count == 2
    assert [o.state for o in outcomes] == ["sent", "failed", "sent"]
    retried = body_of(route.calls.last)
    assert delivered([retried]) == as_rendered([messages[0], messages[2]])


async def test_against_the_fake_every_recipient_receives_what_was_rendered(
    tmp_path: Path,
) -> None:
    config = render_config(tmp_path)
    people = [(f"person.{n}@example.com", f"Person {n}") for n in range(1500)]
    people += [("ob@example.com", "O'Brien <b>&"), ("acme@example.com", "Acme")]
    people += [("not-an-email", "Broken"), ("nobody@example.com", None)]
    messages = rendered(config, people)
    with FakeSendGrid() as fake:
        sg = settings(base_url=fake.base_url, api_key=fake.api_key)
        async with SendGridEmail("email", "email", sg, config) as channel:
            outcomes = await send_all(channel, messages)
        emails = fake.emails
        sent = fake.requests_sent

    by_address = {m.recipient: o for m, o in zip(messages, outcomes, strict=True)}
    assert by_address.pop("not-an-email").state == "failed"
    assert all(o.state == "sent" for o in by_address.values())
    assert len(emails) == len(by_address)
    expected = as_rendered([m for m in messages if m.recipient != "not-an-email"])
    assert {e["to"]: (e["subject"], e["text"], e["html"]) for e in emails} == expected
    # Each address's provider id is the X-Message-Id of the request that carried it.
    assert all(e["message_id"] == by_address[e["to"]].provider_id for e in emails)
    # 1500 "Person n" share a shape; Acme, O'Brien's escaped html and the nameless differ.
    assert len(sent) <= 6 and max(len(s["body"]["personalizations"]) for s in sent) <= 1000
