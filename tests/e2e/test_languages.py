"""The real CLI with an audience in several languages: preview shows one sample and the count
per locale, the sandbox outbox gets each person's language, broadcasts the organization's."""

from __future__ import annotations

from pathlib import Path

from .conftest import Run

AUDIENCE = """\
email,phone,name,locale,sms_opt_in
,+12015550101,Ann,en,yes
,+12015550102,Bob,,yes
,+12015550103,Chloé,fr-CA,yes
,+12015550104,Denis,FR_ca,yes
,+12015550105,Élise,fr,yes
,+12015550106,Kor,klingon,yes
,+12015550107,Hans,de-AT,yes
"""


NUMBERS = ("+12015550101", "+12015550103", "+12015550104", "+12015550106")


def setup(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    for folder, text in {
        "": "{{ incident.title }}, fix by {{ incident.eta | when }}. Reply STOP to opt out.",
        "fr": "Panne : {{ incident.title }}, retour vers {{ incident.eta | when }}. STOP pour "
        "vous désabonner.",
        "de": "Störung: {{ incident.title }}, behoben bis {{ incident.eta | when }}. STOP zum "
        "Abmelden.",
    }.items():
        (templates / folder).mkdir(parents=True, exist_ok=True)
        (templates / folder / "sms.txt.j2").write_text(text, encoding="utf-8")
    (templates / "de" / "social.txt.j2").write_text("Störung: {{ incident.title }}")
    (tmp_path / "audience.csv").write_text(AUDIENCE, encoding="utf-8")
    (tmp_path / "channels.yaml").write_text(
        "organization: {name: Acme Shop, locale: de, timezone: Europe/Berlin}\n"
        "audience: audience.csv\n"
        "channels:\n"
        "  sms: {driver: twilio, from: '+15005550006'}\n"
        "  social: {driver: x}\n",
        encoding="utf-8",
    )
    (tmp_path / "incident.yaml").write_text(
        "id: mail-down\ntitle: Mail is down\nstarted_at: 2026-11-22T09:40:00Z\n"
        "eta: 2026-11-22T12:00:00Z\n",
        encoding="utf-8",
    )


def test_preview_shows_one_sample_per_locale_with_its_count(run: Run, tmp_path: Path) -> None:
    setup(tmp_path)
    result = run("preview", "incident.yaml")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # Bob (no locale) and Kor (invalid) get organization.locale, de; fr_CA is fr-CA.
    assert "de — 2 recipient(s):" in out
    assert "fr-CA — 2 recipient(s):" in out
    assert "fr — 1 recipient(s):" in out
    assert "en — 1 recipient(s):" in out
    assert "de-AT — 1 recipient(s):" in out
    assert "Panne : Mail is down, retour vers 13:00 UTC+01:00." in out
    assert "Störung: Mail is down, behoben bis 13:00 MEZ." in out
    assert "Mail is down, fix by 1:00 PM GMT+01:00." in out
    assert "1 recipient(s) have a locale that is not a language tag" in out
    assert "they get the de text" in out
    # The broadcast post is in the organization's language.
    assert "Störung: Mail is down\n" in out


def test_sandbox_sends_each_person_their_language(run: Run, tmp_path: Path) -> None:
    setup(tmp_path)
    result = run("send", "incident.yaml", "--yes", "--sandbox")
    assert result.returncode == 0, result.stdout + result.stderr
    outbox = tmp_path / ".outagecomms" / "outbox"
    texts = [path.read_text(encoding="utf-8") for path in (outbox / "sms").iterdir()]
    assert len(texts) == 7
    by_number = {number: next(t for t in texts if f"To: {number}" in t) for number in NUMBERS}
    assert "fix by 1:00 PM GMT+01:00" in by_number["+12015550101"]
    assert "Panne : Mail is down" in by_number["+12015550103"]
    assert "Panne : Mail is down" in by_number["+12015550104"]
    assert "Störung: Mail is down" in by_number["+12015550106"]
    [post] = (outbox / "social").iterdir()
    assert "Störung: Mail is down" in post.read_text(encoding="utf-8")


def test_check_finds_a_mistake_in_any_language(run: Run, tmp_path: Path) -> None:
    setup(tmp_path)
    (tmp_path / "templates" / "fr" / "sms.txt.j2").write_text("Panne {{ incident.titre }}")
    result = run("check")
    assert result.returncode == 2
    assert "fr" in result.stderr and "sms.txt.j2" in result.stderr and "titre" in result.stderr
