"""Every locale the package ships renders every template, at every status, within every
channel's limits: SMS segments, X's weighted 280, Mastodon's 500, Bluesky's 300 graphemes,
the email subject. Whatever locale folders exist are checked, the root (English) included."""

from __future__ import annotations

from pathlib import Path

import pytest

from outagecomms import Incident, Recipient
from outagecomms.config import Config, load_config
from outagecomms.locales import display_locale, normalise_locale
from outagecomms.render import PACKAGED_TEMPLATES, PARTS, Renderer

EXAMPLES = Path(__file__).parents[2] / "src" / "outagecomms" / "scaffold" / "examples"
SHIPPED = sorted(
    {"en"}
    | {
        key
        for folder in PACKAGED_TEMPLATES.iterdir()
        if folder.is_dir() and (key := normalise_locale(folder.name)) is not None
    }
)
INCIDENTS = sorted(EXAMPLES.glob("incident-*.yaml"))
CHANNELS = {
    # The scaffold's SMS limit: the strictest a newcomer starts with.
    "sms": "{driver: twilio, from: '+15005550006', max_segments: 2}",
    "x": "{driver: x}",
    "mastodon": "{driver: mastodon, base_url: 'https://mastodon.example'}",
    "bluesky": "{driver: bluesky, handle: acme.bsky.social}",
    "banner": "{driver: file}",
    "email": "{driver: sendgrid, from: outage@shop.example}",
    "team": "{driver: slack}",
}


def configure(tmp_path: Path, locale: str) -> Config:
    lines = "".join(f"  {name}: {settings}\n" for name, settings in CHANNELS.items())
    (tmp_path / "channels.yaml").write_text(
        "organization: {name: Acme Shop, website: https://shop.example,"
        f" status_url: https://shop.example/status, locale: {locale}}}\n"
        "channels:\n" + lines,
        encoding="utf-8",
    )
    # An empty templates folder of the user's own: only the packaged ones are used.
    (tmp_path / "templates").mkdir()
    return load_config(tmp_path / "channels.yaml")


def test_the_four_languages_are_expected() -> None:
    """Not a check of the content: only that this test sees the folders it should."""
    assert "en" in SHIPPED and INCIDENTS


@pytest.mark.parametrize("locale", SHIPPED)
@pytest.mark.parametrize("incident_file", INCIDENTS, ids=lambda path: path.stem)
def test_every_template_fits_every_channel(
    tmp_path: Path, locale: str, incident_file: Path
) -> None:
    config = configure(tmp_path, locale)
    incident = Incident.load(incident_file)
    renderer = Renderer(config, incident)
    person = Recipient(email="ana.garcia@example.com", name="Ana", locale=locale)
    folder = next(
        (
            f
            for f in PACKAGED_TEMPLATES.iterdir()
            if f.is_dir() and normalise_locale(f.name) == locale
        ),
        None,
    )
    for name, settings in config.channels.items():
        kind = settings.kind
        assert kind is not None
        address, recipient = "-", None
        if kind == "sms":
            address, recipient = "+12015550123", person
        elif kind == "email":
            address, recipient = "ana.garcia@example.com", person
        # Raises LimitError when a text does not fit its channel.
        message = renderer.message(name, kind, settings, address=address, recipient=recipient)
        assert message.locale == display_locale(locale)
        used = renderer.template_files(name, kind, locale)
        for part, path in zip(PARTS[kind], used, strict=True):
            names = (f"{kind}.{incident.status}.{part}.j2", f"{kind}.{part}.j2")
            if folder is not None and any((folder / n).is_file() for n in names):
                # The locale has this part: it is the one used, not a fallback.
                assert path.parent == folder, (name, part, path)
