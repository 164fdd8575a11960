"""Consent inside a run, through the library: quiet hours defer SMS (and
``ignore_quiet_hours`` sends them), suppressed and skipped people get skipped rows, counted
once under ``skipped``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from outagecomms import Announcer, Incident, Recipient
from outagecomms.config import load_config
from outagecomms.run.consent import QuietCheck
from outagecomms.store import open_store

INCIDENT = Incident(id="mail-down", title="Mail is down", summary="Orders are safe.")
PEOPLE = [
    Recipient(phone="+12015550123", email="ada@example.com", sms_opt_in=True, timezone="UTC"),
    Recipient(phone="+12125550147", email="bob@example.com", sms_opt_in=True, timezone="UTC"),
    Recipient(phone="+13035550111", email="carol@example.com", sms_opt_in=False),
    Recipient(phone="+14155550100", email="dan@example.com"),
    Recipient(phone="12", email="not-an-email"),
]


def shop(tmp_path: Path, quiet: str | None = None) -> Announcer:
    window = f", quiet_hours: '{quiet}'" if quiet else ""
    (tmp_path / "channels.yaml").write_text(
        "organization: {name: Acme Shop}\n"
        "channels:\n"
        f"  sms: {{driver: twilio, from: '+15005550006'{window}}}\n"
        "  email: {driver: sendgrid, from: outage@shop.example}\n"
    )
    return Announcer.from_config(tmp_path / "channels.yaml")


def around_now(hours_before: int = 1, hours_after: int = 2) -> str:
    now = datetime.now(UTC)
    return f"{now - timedelta(hours=hours_before):%H:%M}-{now + timedelta(hours=hours_after):%H:%M}"


def rows(announcer: Announcer) -> dict[tuple[str, str], tuple[str, str | None]]:
    with open_store(announcer.config.ledger, mode="sandbox", base_dir=announcer.config.root) as s:
        found = s.fetch(
            "SELECT channel, recipient, state, error FROM deliveries WHERE mode=?", ("sandbox",)
        )
    return {(c, r): (st, e) for c, r, st, e in found}


def test_skipped_rows_with_stable_reasons_counted_once(tmp_path: Path) -> None:
    announcer = shop(tmp_path)
    result = announcer.send(INCIDENT, audience=PEOPLE, sandbox=True)
    assert result.exit_code == 0
    found = rows(announcer)
    assert found[("sms", "+13035550111")] == ("skipped", "opted out")
    assert found[("sms", "+14155550100")] == ("skipped", "no sms opt-in")
    assert found[("sms", "12")] == ("skipped", "invalid phone")
    assert found[("email", "not-an-email")] == ("skipped", "invalid email")
    assert result.counts["sms"]["skipped"] == 3 and result.counts["sms"]["sent"] == 2
    assert result.counts["email"]["skipped"] == 1 and result.counts["email"]["sent"] == 4


def test_suppressed_addresses_are_skipped_in_preflight_and_send(tmp_path: Path) -> None:
    announcer = shop(tmp_path)
    with open_store(announcer.config.ledger, base_dir=announcer.config.root) as store:
        store.add_suppressions([("BOB@example.com", "email", "one-click", None)])
        store.add_suppressions([("+12015550123", "sms", "sms-stop", "replied STOP")])
    plan = announcer.preflight(INCIDENT, audience=PEOPLE)
    assert plan.channels["email"].skipped["suppressed (one-click)"] == 1
    assert plan.channels["sms"].skipped["suppressed (sms-stop)"] == 1
    assert plan.channels["sms"].recipients == 1
    result = announcer.send(INCIDENT, audience=PEOPLE, sandbox=True)
    found = rows(announcer)
    assert found[("email", "bob@example.com")] == ("skipped", "suppressed (one-click)")
    assert found[("sms", "+12015550123")] == ("skipped", "suppressed (sms-stop)")
    assert result.exit_code == 0 and result.counts["email"]["sent"] == 3


def test_quiet_hours_defer_and_ignore_quiet_hours_sends(tmp_path: Path) -> None:
    announcer = shop(tmp_path, quiet=around_now())
    result = announcer.send(INCIDENT, audience=PEOPLE, sandbox=True)
    sms = result.channels["sms"]
    assert (sms.deferred, sms.counts["pending"], sms.counts["sent"]) == (2, 2, 0)
    assert sms.deferred_until is not None and sms.deferred_until.endswith("+00:00")
    assert result.ok and result.exit_code == 0
    assert result.counts["email"]["sent"] == 4, "quiet hours are for SMS only"
    assert rows(announcer)[("sms", "+12015550123")] == (
        "pending",
        f"quiet hours until {sms.deferred_until}",
    )
    forced = announcer.send(INCIDENT, audience=PEOPLE, sandbox=True, ignore_quiet_hours=True)
    assert forced.counts["sms"]["sent"] == 2 and forced.channels["sms"].deferred == 0
    assert rows(announcer)[("sms", "+12015550123")] == ("sent", None)


def test_outside_quiet_hours_nothing_waits(tmp_path: Path) -> None:
    announcer = shop(tmp_path, quiet=around_now(-2, 4))  # a window starting in two hours
    result = announcer.send(INCIDENT, audience=PEOPLE, sandbox=True)
    assert result.channels["sms"].deferred == 0 and result.counts["sms"]["sent"] == 2


def test_quiet_check_uses_the_number_then_the_organization(tmp_path: Path) -> None:
    (tmp_path / "channels.yaml").write_text(
        "organization: {name: A, timezone: Asia/Tokyo}\n"
        "channels:\n  sms: {driver: twilio, from: '+15005550006', quiet_hours: '21:00-08:00'}\n"
    )
    config = load_config(tmp_path / "channels.yaml")
    noon_paris = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)  # 12:00 in Paris, 20:00 in Tokyo
    check = QuietCheck.for_channel(config, config.channels["sms"], now=noon_paris)
    assert check is not None
    assert check.until("+33612345678", Recipient()) is None  # the number says Paris
    late_tokyo = noon_paris + timedelta(hours=2)  # 22:00 in Tokyo
    check = QuietCheck.for_channel(config, config.channels["sms"], now=late_tokyo)
    assert check is not None and check.until("+33612345678", Recipient()) is None
    # A number without a known zone falls back to the organization's: night in Tokyo.
    until = check.until("+88213000000", Recipient())
    assert until is not None and until.isoformat() == "2026-12-01T08:00:00+09:00"


def test_bad_quiet_hours_is_a_config_error(tmp_path: Path) -> None:
    from outagecomms import ConfigError

    with pytest.raises(ConfigError, match="quiet_hours"):
        shop(tmp_path, quiet="late-early")


def test_a_webhook_key_that_is_not_a_key_is_a_config_error(tmp_path: Path) -> None:
    from outagecomms import ConfigError
    from tests.serve.consent_shop import SendGridKey

    config = tmp_path / "channels.yaml"
    good = SendGridKey.generate().public
    config.write_text(
        f"channels:\n  email: {{driver: sendgrid, from: a@b.co, webhook_public_key: '{good}'}}\n"
    )
    assert load_config(config).channels["email"].webhook_public_key == good  # type: ignore[attr-defined]
    for bad in ("abc", good[:-8], "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"):
        config.write_text(
            f"channels:\n  email: {{driver: sendgrid, from: a@b.co, webhook_public_key: '{bad}'}}\n"
        )
        with pytest.raises(ConfigError, match="not a SendGrid verification key"):
            load_config(config)
