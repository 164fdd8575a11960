"""Languages (DESIGN §16): tag normalisation, the template lookup order per locale, the
packaged defaults searched the same way, and times formatted with Babel in the
organization's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from outagecomms import Incident, Recipient, render
from outagecomms.config import load_config
from outagecomms.errors import ConfigError
from outagecomms.locales import display_locale, fallbacks, format_when, normalise_locale
from outagecomms.render import Renderer

ETA = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
INCIDENT = Incident(id="mail-down", title="Mail is down", summary="Orders are safe.", eta=ETA)
RESOLVED = INCIDENT.model_copy(update={"status": "resolved"})


def configure(tmp_path: Path, organization: str = "") -> Path:
    (tmp_path / "channels.yaml").write_text(
        "organization: {name: Acme Shop" + organization + "}\n"
        "channels:\n"
        "  sms: {driver: twilio, from: '+15005550006'}\n"
        "  social: {driver: x}\n",
        encoding="utf-8",
    )
    (tmp_path / "templates").mkdir(exist_ok=True)
    return tmp_path / "channels.yaml"


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def sms(renderer: Renderer, locale: str | None) -> str:
    return renderer.render_parts("sms", "sms", Recipient(phone="+12015550123", locale=locale))[
        "txt"
    ]


# --- tags ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "key"),
    [
        ("fr-CA", "fr-ca"),
        ("fr_ca", "fr-ca"),
        ("FR-ca", "fr-ca"),
        (" de ", "de"),
        ("zh_Hant_TW", "zh-hant-tw"),
        ("es-419", "es-419"),
        ("fr-XK", "fr-xk"),  # Babel has no fr-XK: its times are written as in fr
        ("en-US-x-shop", "en-us-x-shop"),
    ],
)
def test_tags_are_matched_case_insensitively_with_underscores(tag: str, key: str) -> None:
    assert normalise_locale(tag) == key


@pytest.mark.parametrize("tag", ["", "english", "fr--CA", "12", "fr CA", "xx", "tlh", "fr-CA!"])
def test_invalid_tags(tag: str) -> None:
    assert normalise_locale(tag) is None


def test_fallbacks_and_display() -> None:
    assert fallbacks("zh-hant-tw") == ["zh-hant-tw", "zh-hant", "zh"]
    assert fallbacks("de") == ["de"]
    assert display_locale("fr-ca") == "fr-CA"
    assert display_locale("zh-hant-tw") == "zh-Hant-TW"
    assert display_locale("es-419") == "es-419"


# --- lookup order ----------------------------------------------------------------------


@pytest.fixture
def layered(tmp_path: Path) -> Path:
    """templates/ with a generic and a resolved file at every level."""
    templates = tmp_path / "templates"
    write(templates / "fr-CA", "sms.txt.j2", "fr-CA generic")
    write(templates / "fr", "sms.resolved.txt.j2", "fr resolved")
    write(templates / "fr", "sms.txt.j2", "fr generic")
    write(templates, "sms.resolved.txt.j2", "root resolved")
    write(templates, "sms.txt.j2", "root generic")
    return configure(tmp_path)


def test_folder_by_folder_the_most_specific_locale_wins(layered: Path) -> None:
    renderer = Renderer(load_config(layered), RESOLVED)
    # fr-CA/sms.txt.j2 beats fr/sms.resolved.txt.j2: folders first, then status.
    assert sms(renderer, "fr-CA") == "fr-CA generic"
    assert sms(renderer, "fr-BE") == "fr resolved"
    assert sms(renderer, "fr") == "fr resolved"
    assert sms(renderer, "de") == "root resolved"
    assert sms(renderer, None) == "root resolved"


def test_candidates_are_listed_in_lookup_order(layered: Path) -> None:
    renderer = Renderer(load_config(layered), RESOLVED)
    names = renderer.candidates("sms", "sms", "txt", "fr-ca")
    assert names[:6] == [
        "config/fr-CA/sms.resolved.txt.j2",
        "config/fr-CA/sms.txt.j2",
        "config/fr/sms.resolved.txt.j2",
        "config/fr/sms.txt.j2",
        "config/sms.resolved.txt.j2",
        "config/sms.txt.j2",
    ]
    # Then the packaged defaults the same way (their fr folders, if shipped, before them).
    assert all(name.startswith("default/") for name in names[6:])
    assert names[-2:] == ["default/sms.resolved.txt.j2", "default/sms.txt.j2"]


def test_folder_names_are_matched_like_tags(tmp_path: Path) -> None:
    config = configure(tmp_path)
    write(tmp_path / "templates" / "FR_ca", "sms.txt.j2", "odd folder name")
    renderer = Renderer(load_config(config), INCIDENT)
    assert sms(renderer, "fr-ca") == "odd folder name"
    assert sms(renderer, "FR-CA") == "odd folder name"


def test_a_template_missing_in_a_locale_falls_back(tmp_path: Path) -> None:
    config = configure(tmp_path)
    write(tmp_path / "templates" / "de", "sms.txt.j2", "Deutsch")
    renderer = Renderer(load_config(config), INCIDENT)
    assert sms(renderer, "de-AT") == "Deutsch"
    # No social template in de/: the social post comes from further down, never an error.
    post = renderer.render_parts("social", "social")["txt"]
    assert post and post != "Deutsch"


def test_invalid_locale_uses_the_organization_locale(tmp_path: Path) -> None:
    config = configure(tmp_path, ", locale: es")
    write(tmp_path / "templates" / "es", "sms.txt.j2", "español {{ locale }}")
    renderer = Renderer(load_config(config), INCIDENT)
    assert sms(renderer, "klingon") == "español es"
    assert sms(renderer, None) == "español es"
    assert renderer.invalid_locale("klingon") and not renderer.invalid_locale("fr-CA")
    assert not renderer.invalid_locale(None)


def test_broadcasts_use_the_organization_locale(tmp_path: Path) -> None:
    config = configure(tmp_path, ", locale: fr_CA")
    write(tmp_path / "templates" / "fr", "social.txt.j2", "en français ({{ locale }})")
    renderer = Renderer(load_config(config), INCIDENT)
    assert renderer.render_parts("social", "social")["txt"] == "en français (fr-CA)"
    message = renderer.message(
        "social", "social", load_config(config).channels["social"], address="-"
    )
    assert message.locale == "fr-CA"


def test_channel_templates_come_first_the_same_way(tmp_path: Path) -> None:
    config = configure(tmp_path)
    text = (
        (tmp_path / "channels.yaml")
        .read_text()
        .replace("  sms: {driver: twilio,", "  sms: {driver: twilio, templates: vip,")
    )
    (tmp_path / "channels.yaml").write_text(text)
    write(tmp_path / "vip", "sms.txt.j2", "vip generic")
    write(tmp_path / "vip" / "fr", "sms.txt.j2", "vip fr")
    write(tmp_path / "templates" / "fr-CA", "sms.txt.j2", "config fr-CA")
    renderer = Renderer(load_config(config), INCIDENT)
    assert sms(renderer, "fr-CA") == "vip fr"
    assert sms(renderer, "de") == "vip generic"


def test_packaged_defaults_are_searched_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = tmp_path / "packaged"
    write(packaged, "sms.txt.j2", "default generic")
    write(packaged, "sms.resolved.txt.j2", "default resolved")
    write(packaged / "pt", "sms.txt.j2", "padrão")
    write(packaged / "pt-BR", "sms.resolved.txt.j2", "resolvido")
    monkeypatch.setattr(render, "PACKAGED_TEMPLATES", packaged)
    renderer = Renderer(load_config(configure(tmp_path)), RESOLVED)
    assert sms(renderer, "pt-BR") == "resolvido"
    assert sms(renderer, "pt-PT") == "padrão"
    assert sms(renderer, "en") == "default resolved"


def test_includes_look_in_the_locale_folder_first(tmp_path: Path) -> None:
    config = configure(tmp_path)
    templates = tmp_path / "templates"
    write(templates, "footer.txt.j2", "Reply STOP to opt out.")
    write(templates / "fr", "footer.txt.j2", "STOP pour vous désabonner.")
    write(templates / "fr", "sms.txt.j2", 'Panne. {% include "footer.txt.j2" %}')
    write(templates / "de", "sms.txt.j2", 'Störung. {% include "footer.txt.j2" %}')
    renderer = Renderer(load_config(config), INCIDENT)
    assert sms(renderer, "fr-CA") == "Panne. STOP pour vous désabonner."
    assert sms(renderer, "de") == "Störung. Reply STOP to opt out."


def test_one_locale_renders_once_per_template(tmp_path: Path) -> None:
    """The per-recipient fill-in path still holds: one skeleton per locale in use."""
    config = configure(tmp_path)
    write(
        tmp_path / "templates", "sms.txt.j2", "Hi {{ recipient.name }}, {{ incident.eta | when }}"
    )
    write(tmp_path / "templates" / "fr", "sms.txt.j2", "Bonjour {{ recipient.name }}")
    renderer = Renderer(load_config(config), INCIDENT)
    people = [Recipient(phone="+12015550123", name=f"P{n}", locale="en") for n in range(50)]
    texts = [renderer.render_parts("sms", "sms", p)["txt"] for p in people]
    assert texts[7] == "Hi P7, 12:00 PM UTC"
    assert renderer.render_parts("sms", "sms", Recipient(name="Zoé", locale="fr"))["txt"] == (
        "Bonjour Zoé"
    )
    skeletons = [part for part in renderer._parts.values() if part.skeleton is not None]
    assert len(skeletons) == 2


# --- times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "zone", "fmt", "shown"),
    [
        ("en", "UTC", "time", "12:00 PM UTC"),
        ("en", "America/New_York", "time", "7:00 AM EST"),
        ("en-gb", "Europe/London", "time", "12:00 GMT"),
        ("fr", "Europe/Paris", "time", "13:00 UTC+01:00"),
        ("de", "Europe/Berlin", "time", "13:00 MEZ"),
        ("es", "Europe/Madrid", "time", "13:00 CET"),
        ("fr", "Europe/Paris", "date", "22 novembre 2026"),
        ("de", "Europe/Berlin", "date", "22. November 2026"),
        ("es", "UTC", "date", "22 de noviembre de 2026"),
        ("en", "UTC", "datetime", "Nov 22, 12:00 PM UTC"),
        ("de", "Europe/Berlin", "datetime", "22. Nov., 13:00 MEZ"),
        ("fr", "Europe/Paris", "EEEE d MMMM", "dimanche 22 novembre"),
        ("en", "Asia/Tokyo", "%Y-%m-%d %H:%M", "2026-11-22 21:00"),
    ],
)
def test_when_formats_for_the_locale_in_the_organization_zone(
    locale: str, zone: str, fmt: str, shown: str
) -> None:
    assert format_when(ETA, fmt, locale, ZoneInfo(zone)) == shown


def test_when_uses_the_longest_prefix_babel_knows() -> None:
    utc = ZoneInfo("UTC")
    assert format_when(ETA, "date", "fr-xk", utc) == format_when(ETA, "date", "fr", utc)
    assert format_when(ETA, "time", "en-us-x-shop", utc) == "12:00 PM UTC"


def test_when_keeps_sms_in_gsm7() -> None:
    """CLDR puts (narrow) no-break spaces in times; they would make an SMS UCS-2."""
    for locale in ("en", "fr-ca", "de", "es"):
        text = format_when(ETA, "datetime", locale, ZoneInfo("UTC"))
        assert "\u202f" not in text and "\u00a0" not in text


def test_when_on_dates_and_nothing() -> None:
    assert format_when(None, "time", "en", ZoneInfo("UTC")) == ""
    assert format_when(date(2026, 11, 22), "time", "de", ZoneInfo("UTC")) == "22. November 2026"


def test_when_filter_uses_the_message_locale_and_zone(tmp_path: Path) -> None:
    config = configure(tmp_path, ", timezone: Europe/Paris")
    write(tmp_path / "templates", "sms.txt.j2", "{{ incident.eta | when }}")
    renderer = Renderer(load_config(config), INCIDENT)
    assert sms(renderer, "de") == "13:00 MEZ"
    assert sms(renderer, "en-US") == "1:00 PM GMT+01:00"
    assert sms(renderer, "fr_CA") == "13 h 00 UTC+01:00"


@pytest.mark.parametrize(
    ("organization", "problem"),
    [
        (", timezone: Mars/Olympus", "not an IANA time zone"),
        (", locale: english", "not a language tag"),
    ],
)
def test_bad_organization_keys_are_config_errors(
    tmp_path: Path, organization: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(configure(tmp_path, organization))


def test_every_language_with_templates_is_known(tmp_path: Path) -> None:
    config = configure(tmp_path, ", locale: de")
    write(tmp_path / "templates" / "fr_CA", "sms.txt.j2", "x")
    write(tmp_path / "templates" / "es", "sms.txt.j2", "x")
    locales = Renderer(load_config(config), INCIDENT).template_locales()
    assert locales[0] == "de" and {"fr-ca", "es"} <= set(locales)
    assert len(locales) == len(set(locales))
