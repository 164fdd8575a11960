"""Every shipped template, in every language, at every status, read as a customer reads it:
within every channel's limits, the email's text and html parts saying the same thing, a
greeting by first name, the postal address and (when there is one) the unsubscribe link."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from outagecomms import Incident
from outagecomms.config import Config, TwilioSettings, load_config
from outagecomms.limits import sms_length, x_weighted_length
from outagecomms.models import Recipient
from outagecomms.render import PACKAGED_TEMPLATES, Renderer, check_limits

EXAMPLES = Path(__file__).parents[2] / "src/outagecomms/scaffold/examples"
STATUSES = ("investigating", "identified", "monitoring", "resolved")
LOCALES = ("en", "es", "fr", "de")
ADA = Recipient(email="ada@example.com", phone="+12015550123", name="Ada Lovelace")
NAMELESS = Recipient(email="someone@example.com", phone="+12015550124")
POSTAL = "1 Market Street, Springfield, IL 62701, USA"


def folder(locale: str) -> Path:
    return PACKAGED_TEMPLATES if locale == "en" else PACKAGED_TEMPLATES / locale


def config_for(tmp_path: Path, locale: str) -> Config:
    """The scaffold's channels, the locale's folder as the configured templates (the
    packaged English ones behind it, so a missing translation would not show: see
    ``test_every_locale_has_every_template``)."""
    (tmp_path / "channels.yaml").write_text(
        "organization:\n"
        "  name: Acme Shop\n"
        "  status_url: https://shop.example/status\n"
        f"  postal_address: {POSTAL}\n"
        f"templates: {folder(locale)}\n"
        "channels:\n"
        "  sms: {driver: twilio, from: '+15005550006', max_segments: 2}\n"
        "  social: {driver: x}\n"
        "  banner: {driver: file, path: public/}\n"
        "  email: {driver: smtp, host: mail.example, from: outage@shop.example}\n"
        "  team: {driver: slack}\n"
    )
    return load_config(tmp_path / "channels.yaml")


def incident(status: str) -> Incident:
    return Incident.load(EXAMPLES / f"incident-{status}.yaml")


def test_every_locale_has_every_template() -> None:
    english = {p.name for p in PACKAGED_TEMPLATES.glob("*.j2")}
    assert len(english) == 14
    for locale in LOCALES[1:]:
        assert {p.name for p in folder(locale).glob("*.j2")} == english, locale


def visible_text(markup: str) -> str:
    """What a reader sees of an html part: no head, no tags, entities decoded, one space."""
    markup = re.sub(r"<head>.*?</head>", " ", markup, flags=re.S)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())
    return text.replace(" .", ".").replace(" ,", ",")


def same_words(text: str, markup: str) -> None:
    """Every line of the text part is in the html part; a ``label: URL`` line is the
    label as visible text and the URL as a link."""
    seen = visible_text(markup)
    for line in text.splitlines():
        line = line.strip()
        if not line or line == "--":
            continue
        label, url = line, None
        found = re.search(r"\s?:?\s(https?://\S+)$", line)
        if found:
            label, url = line[: found.start()], found.group(1)
            assert f'href="{url}"' in markup, url
        assert label.rstrip(":") in seen, f"{label!r} not in the html part: {seen!r}"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("status", STATUSES)
def test_every_channel_fits_and_says_the_same(tmp_path: Path, locale: str, status: str) -> None:
    config = config_for(tmp_path, locale)
    renderer = Renderer(config, incident(status))
    for name, settings in config.channels.items():
        kind = settings.kind
        assert kind is not None
        person = ADA if kind in ("sms", "email") else None
        parts = renderer.render_parts(name, kind, person)
        check_limits(name, kind, settings, parts, "ada")
        if kind == "sms":
            assert isinstance(settings, TwilioSettings)
            assert sms_length(parts["txt"]).segments <= 2, parts["txt"]
            assert "STOP" in parts["txt"]
        if kind == "social":
            assert x_weighted_length(parts["txt"]) <= 280
            assert len(parts["txt"]) <= 300, "Bluesky counts every character of a link"
        if kind == "email":
            same_words(parts["txt"], parts["html"])
            assert '<meta charset="utf-8">' in parts["html"]
            assert "max-width:600px" in parts["html"]
            assert POSTAL in parts["txt"] and POSTAL in visible_text(parts["html"])
            assert "Ada" in parts["txt"].splitlines()[0] and "Lovelace" not in parts["txt"]
            assert f'lang="{locale}"' in parts["html"]
        if kind == "team":
            recovering = status in ("monitoring", "resolved")
            assert (":rotating_light:" in parts["txt"]) is not recovering
            assert "sms (twilio), social (x), banner (file), email (smtp)" in parts["txt"]
        for part, text in parts.items():
            for line in [visible_text(text)] if part == "html" else text.splitlines():
                assert "  " not in line.strip() and " ." not in line and ".." not in line, line
                assert line == line.rstrip(), f"trailing space: {line!r}"


@pytest.mark.parametrize("locale", LOCALES[1:])
@pytest.mark.parametrize("status", STATUSES)
def test_translations_carry_no_english(tmp_path: Path, locale: str, status: str) -> None:
    config = config_for(tmp_path, locale)
    quiet = incident(status).model_copy(
        update={"title": "T", "summary": "S.", "details": None, "affected": ["A"]}
    )
    renderer = Renderer(config, quiet)
    english = re.compile(r"\b(the|we|our|is|are|fix|hi|updates|sorry|reply|affected)\b", re.I)
    for name, settings in config.channels.items():
        kind = settings.kind
        assert kind is not None
        for part, text in renderer.render_parts(name, kind, ADA).items():
            shown = visible_text(text) if part == "html" else text
            shown = re.sub(
                r"https?://\S+|:[a-z_]+:|\(\w+\)|\b(sms|social|banner|email)\b", "", shown
            )
            assert not english.search(shown), f"{locale} {name}.{part}: {shown!r}"


@pytest.mark.parametrize("locale", LOCALES)
def test_greeting_without_a_first_name_and_the_unsubscribe_link(
    tmp_path: Path, locale: str
) -> None:
    config = config_for(tmp_path, locale)
    renderer = Renderer(config, incident("resolved"))
    parts = renderer.render_parts("email", "email", NAMELESS)
    first = parts["txt"].splitlines()[0]
    assert first.endswith((",", ":")) and "None" not in first and " ," not in first
    assert "unsubscribe" not in parts["html"].lower() and "{" not in parts["html"]
    # The consent work supplies ``unsubscribe_url`` in the context; the link appears only then.
    url = "https://shop.example/u/abc"
    for part in ("txt", "html"):
        template = renderer.env.get_template(f"config/email.resolved.{part}.j2")
        text = template.render(
            incident=incident("resolved"),
            organization=config.organization,
            recipient=ADA,
            channel={"name": "email", "kind": "email"},
            vars=incident("resolved").vars,
            announced_on=[],
            unsubscribe_url=url,
        )
        assert (f'href="{url}"' if part == "html" else url) in text
