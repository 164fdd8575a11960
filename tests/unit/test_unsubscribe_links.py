"""One-click unsubscribe links in emails: the template variable, the RFC 8058 headers of
every email driver, and SendGrid keeping one request for many recipients' links."""

from __future__ import annotations

from email import message_from_string
from pathlib import Path

import pytest

from outagecomms import Incident, Recipient, TemplateError
from outagecomms.channels.mime import build_email
from outagecomms.channels.sendgrid_email import SendGridEmail, shape_of
from outagecomms.config import Config, load_config
from outagecomms.consent import make_token, read_token
from outagecomms.render import Renderer
from tests.fakes.sendgrid import substitute

SECRET = "unit-test-serve-secret-000"
PUBLIC = "https://status.shop.example"
INCIDENT = Incident(id="mail-down", title="Mail is down", summary="Orders are safe.")


def link(address: str) -> str:
    return f"{PUBLIC}/unsubscribe/{make_token(SECRET, address)}"


def make_config(tmp_path: Path) -> Config:
    (tmp_path / "channels.yaml").write_text(
        "organization: {name: Acme Shop}\n"
        "channels:\n"
        "  sms: {driver: twilio, from: '+15005550006'}\n"
        "  email: {driver: sendgrid, from: outage@shop.example}\n"
    )
    return load_config(tmp_path / "channels.yaml")


def email_of(renderer: Renderer, config: Config, address: str, name: str | None = None):
    return renderer.message(
        "email",
        "email",
        config.channels["email"],
        address=address,
        recipient=Recipient(email=address, name=name),
    )


def test_default_templates_show_each_recipient_their_own_link(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    renderer = Renderer(config, INCIDENT, unsubscribe_url=link)
    ada = email_of(renderer, config, "ada@example.com", "Ada")
    bob = email_of(renderer, config, "bob@example.com", "Bob")
    assert ada.unsubscribe_url == link("ada@example.com")
    assert f"Unsubscribe from these emails: {ada.unsubscribe_url}" in ada.text
    assert f'<a href="{ada.unsubscribe_url}" style="color:#6b7280;">Unsubscribe</a>' in (
        ada.html or ""
    )
    assert bob.unsubscribe_url is not None and bob.unsubscribe_url in bob.text
    assert ada.unsubscribe_url not in bob.text
    token = ada.unsubscribe_url.rsplit("/", 1)[1]
    assert read_token(SECRET, token) == "ada@example.com"
    # The SMS knows nothing of it.
    sms = renderer.message(
        "sms", "sms", config.channels["sms"], address="+14155550100", recipient=Recipient()
    )
    assert sms.unsubscribe_url is None and PUBLIC not in sms.text


def test_without_public_url_there_is_no_link(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    message = email_of(Renderer(config, INCIDENT), config, "ada@example.com")
    assert message.unsubscribe_url is None
    assert "nsubscribe" not in message.text and "nsubscribe" not in (message.html or "")
    mail, _ = build_email(message, sender="outage@shop.example")
    assert "List-Unsubscribe" not in mail


def test_a_filtered_link_is_a_template_error(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "email.txt.j2").write_text("Leave: {{ unsubscribe_url | upper }}")
    with pytest.raises(TemplateError, match="unsubscribe_url"):
        email_of(Renderer(config, INCIDENT, unsubscribe_url=link), config, "ada@example.com")


def test_smtp_and_outbox_emails_carry_the_one_click_headers(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    message = email_of(Renderer(config, INCIDENT, unsubscribe_url=link), config, "ada@x.example")
    mail, _ = build_email(message, sender="outage@shop.example")
    parsed = message_from_string(mail.as_string())
    assert parsed["List-Unsubscribe"] == f"<{link('ada@x.example')}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_sendgrid_one_request_each_recipient_their_own_link_and_headers(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    renderer = Renderer(config, INCIDENT, unsubscribe_url=link)
    people = [(f"p{i}@example.com", f"Person {i}") for i in range(5)]
    messages = [email_of(renderer, config, address, name) for address, name in people]
    channel = SendGridEmail("email", "email", config.channels["email"], config)
    groups = channel.split(messages)
    assert groups == [[0, 1, 2, 3, 4]], "distinct links must not split the request"
    body = channel.payload(messages)
    assert len(body["personalizations"]) == 5
    for message, personalization in zip(messages, body["personalizations"], strict=True):
        assert personalization["to"][0]["email"] == message.recipient
        assert personalization["headers"] == {
            "List-Unsubscribe": f"<{message.unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        substitutions = personalization["substitutions"]
        text = substitute(body["content"][0]["value"], substitutions)
        html = substitute(body["content"][1]["value"], substitutions)
        assert (text, html) == (message.text, message.html)
    assert shape_of(messages[0]).substitutions["[oc-unsub-txt]"] == messages[0].unsubscribe_url
