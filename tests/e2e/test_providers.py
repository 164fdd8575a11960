"""The real CLI against fake Twilio, X, SendGrid, Slack and SMTP servers on 127.0.0.1.

Each test writes a channels.yaml whose drivers point at the fakes through
``base_url`` (secrets through the environment, as a user would set them),
runs ``outagecomms`` in a subprocess, and asserts on what the fakes received
and on what the ledger says.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import phonenumbers
import pytest

from tests.fakes import FakeProviders, FakeSMTP, closed_port

from .conftest import Run

ROOT = Path(__file__).parents[2]
INCIDENT_ID = "2026-11-22-email-outage"
INVESTIGATING = "examples/incident-investigating.yaml"
RESOLVED = "examples/incident-resolved.yaml"


def channels_yaml(smtp_port: int, *, banner: str = "file") -> str:
    banner_block = (
        "  banner: {driver: file, path: public/}\n"
        if banner == "file"
        else "  banner: {driver: http, method: PUT}\n"
    )
    return (
        "organization: {name: Acme Shop, website: https://shop.example,"
        " status_url: https://shop.example/status}\n"
        "audience: audience.csv\n"
        "default_region: US\n"
        "channels:\n"
        "  sms: {driver: twilio, from: '+15005550006', max_segments: 2, concurrency: 20}\n"
        "  social: {driver: x}\n" + banner_block + "  email:\n"
        "    driver: smtp\n"
        "    host: 127.0.0.1\n"
        f"    port: {smtp_port}\n"
        "    starttls: false\n"
        "    from: outage@shop.example\n"
        "    from_name: Acme Shop\n"
        "    fallback: {driver: sendgrid}\n"
        "  team: {driver: slack}\n"
    )


def write_audience(path: Path, people: int) -> tuple[set[str], set[str]]:
    """An audience of ``people`` rows with opt-outs, duplicates and bad rows mixed in.

    Returns the phones (E.164) and emails that must each get exactly one message,
    computed here independently of the product's own normalisation.
    """
    phones: set[str] = set()
    emails: set[str] = set()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "phone", "name", "sms_opt_in", "email_opt_in"])
        for n in range(people):
            phone = f"(201) {200 + n // 10000:03d}-{n % 10000:04d}"
            email = f"Person.{n}@Example.com"
            sms_opt_in = "no" if n % 7 == 0 else "yes"
            email_opt_in = "no" if n % 11 == 0 else ""
            if n % 97 == 0:
                phone, email = "555-12", "not-an-email"
            writer.writerow([email, phone, f"Person {n}", sms_opt_in, email_opt_in])
            if n % 13 == 0:  # the same person again, written differently
                writer.writerow([email.upper(), phone.replace("(", "").replace(")", "")])
            number = phonenumbers.parse(phone, "US") if n % 97 else None
            if number is not None and phonenumbers.is_valid_number(number) and sms_opt_in == "yes":
                phones.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
            if n % 97 and email_opt_in != "no":
                emails.add(email.lower())
    return phones, emails


@pytest.fixture
def fakes() -> Iterator[FakeProviders]:
    with FakeProviders() as providers:
        yield providers


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def ledger_rows(
    run: Run, cwd: Path, env: dict[str, str], *, skipped: bool = False
) -> list[dict[str, object]]:
    """The incident's rows; the ``skipped`` ones (audience rows a channel does not
    address: no opt-in, invalid, suppressed) only when asked for."""
    shown = run("ledger", INCIDENT_ID, "--format", "json", cwd=cwd, env=env)
    assert shown.returncode == 0, shown.stderr
    rows: list[dict[str, object]] = json.loads(shown.stdout)
    return [r for r in rows if skipped or r["state"] != "skipped"]


def test_2500_recipients_each_reached_once_and_the_ledger_matches(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    (shop / "channels.yaml").write_text(channels_yaml(closed_port()))
    phones, emails = write_audience(shop / "audience.csv", 2500)
    env = fakes.env(email_fallback=True)

    sent = run("send", INVESTIGATING, "--yes", cwd=shop, env=env, timeout=300)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "every message was delivered" in sent.stdout
    assert "the fallback sendgrid carried the mail" in sent.stdout

    texts = [m["to"] for m in fakes.twilio.messages]
    assert Counter(texts).most_common(1)[0][1] == 1, "an SMS went twice to one number"
    assert set(texts) == phones
    assert all(m["body"].endswith("Reply STOP to opt out.") for m in fakes.twilio.messages)

    mails = fakes.sendgrid.emails
    assert Counter(m["to"] for m in mails).most_common(1)[0][1] == 1
    assert {m["to"] for m in mails} == emails
    batches = [len(r["body"]["personalizations"]) for r in fakes.sendgrid.requests_sent]
    assert max(batches) <= 1000 and sum(batches) == len(emails)
    first = mails[0]
    assert INCIDENT_ID in first["categories"]
    assert first["custom_args"]["announcement"] == f"{INCIDENT_ID}/investigating"
    assert first["name"].startswith("Person ")

    assert len(fakes.x.posts) == 1
    assert len(fakes.slack.received) == 1 and fakes.slack.received[0].json["text"]
    status = json.loads((shop / "public" / "status.json").read_text())
    assert status["id"] == INCIDENT_ID and status["status"] == "investigating"

    rows = ledger_rows(run, shop, env)
    by_channel: dict[str, dict[str, dict[str, object]]] = {}
    for row in rows:
        by_channel.setdefault(str(row["channel"]), {})[str(row["recipient"])] = row
    assert all(row["state"] == "sent" and row["attempts"] == 1 for row in rows)
    assert {to: r["provider_id"] for to, r in by_channel["sms"].items()} == {
        m["to"]: m["sid"] for m in fakes.twilio.messages
    }
    for mail in mails:
        row = by_channel["email"][mail["to"]]
        assert mail["message_id"] in str(row["provider_id"]) and row["provider"] == "sendgrid"
    assert by_channel["social"]["-"]["provider_id"] == fakes.x.posts[0]["id"]

    fakes.reset()
    again = run("send", INVESTIGATING, "--yes", cwd=shop, env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Nothing new to send" in again.stdout
    assert all(not fake.requests for fake in fakes.all), "a re-run must make no request"


def test_the_resolved_post_replies_to_the_first(run: Run, shop: Path, fakes: FakeProviders) -> None:
    (shop / "channels.yaml").write_text(channels_yaml(closed_port()))
    write_audience(shop / "audience.csv", 20)
    env = fakes.env(email_fallback=True)
    assert run("send", INVESTIGATING, "--yes", cwd=shop, env=env).returncode == 0
    first = fakes.x.posts[0]
    done = run("send", RESOLVED, "--yes", cwd=shop, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    reply = fakes.x.posts[1]
    assert reply["in_reply_to"] == first["id"]
    apology = [m for m in fakes.sendgrid.emails if "apologies" in m["subject"]]
    assert apology and all("SORRY10" in m["text"] for m in apology)
    status = json.loads((shop / "public" / "status.json").read_text())
    assert status["status"] == "resolved" and status["expires_at"]


def test_a_stopped_subscriber_fails_alone_with_twilio_code(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    (shop / "channels.yaml").write_text(channels_yaml(closed_port()))
    phones, _ = write_audience(shop / "audience.csv", 50)
    stopped = sorted(phones)[3]
    fakes.twilio.errors_for[stopped] = (400, 21610, "Attempt to send to unsubscribed recipient")
    env = fakes.env(email_fallback=True)

    sent = run("send", INVESTIGATING, "--yes", "--channel", "sms", cwd=shop, env=env)
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "21610" in sent.stdout
    assert {m["to"] for m in fakes.twilio.messages} == phones - {stopped}
    rows = {r["recipient"]: r for r in ledger_rows(run, shop, env)}
    assert rows[stopped]["state"] == "failed" and "21610" in str(rows[stopped]["error"])
    assert all(r["state"] == "sent" for to, r in rows.items() if to != stopped)

    # 21610 suppressed the number: the next run skips it, which is not a failure.
    fakes.reset()
    again = run("send", INVESTIGATING, "--yes", "--channel", "sms", cwd=shop, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert fakes.twilio.requests == []
    rows = {r["recipient"]: r for r in ledger_rows(run, shop, env, skipped=True)}
    assert (rows[stopped]["state"], rows[stopped]["error"]) == (
        "skipped",
        "suppressed (twilio-21610)",
    )


def test_smtp_up_means_sendgrid_receives_nothing(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    with FakeSMTP() as smtp:
        (shop / "channels.yaml").write_text(channels_yaml(smtp.port))
        _, emails = write_audience(shop / "audience.csv", 120)
        env = fakes.env(email_fallback=True)
        sent = run("send", INVESTIGATING, "--yes", "--channel", "email", cwd=shop, env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "fallback" not in sent.stdout
        received = [mail.message["To"] for mail in smtp.messages]
        assert len(received) == len(emails)
        assert {str(to).split("<")[-1].rstrip(">") for to in received} == emails
    assert fakes.sendgrid.requests == []
    rows = ledger_rows(run, shop, env)
    assert {r["provider"] for r in rows} == {"smtp"}


def test_http_banner_puts_the_status_json_with_the_token(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    (shop / "channels.yaml").write_text(channels_yaml(closed_port(), banner="http"))
    write_audience(shop / "audience.csv", 5)
    env = fakes.env(email_fallback=True, banner="banner")
    sent = run("send", INVESTIGATING, "--yes", "--channel", "banner", cwd=shop, env=env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    (request,) = fakes.banner.received
    assert request.method == "PUT"
    assert request.headers["Authorization"] == f"Bearer {fakes.banner.token}"
    assert request.json["id"] == INCIDENT_ID and request.json["status"] == "investigating"
    assert fakes.banner.token not in sent.stdout + sent.stderr


def test_check_reports_each_channel_and_never_sends(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    with FakeSMTP() as smtp:
        (shop / "channels.yaml").write_text(channels_yaml(smtp.port))
        write_audience(shop / "audience.csv", 5)
        env = fakes.env(email_fallback=True)
        checked = run("check", cwd=shop, env=env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        lines = {line.split()[1]: line for line in checked.stdout.splitlines() if "│" in line}
        assert "accepted" in lines["sms"] and "accepted" in lines["social"]
        assert "accepted" in lines["email"] and "not checkable" in lines["team"]
        assert smtp.messages == []

        env["OUTAGECOMMS_CHANNELS__SMS__AUTH_TOKEN"] = "wrong-token-abcdef"
        refused = run("check", cwd=shop, env=env)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "refused" in refused.stdout
        output = refused.stdout + refused.stderr
        assert "wrong-token-abcdef" not in output and fakes.sendgrid.api_key not in output
    assert fakes.twilio.messages == [] and fakes.x.posts == [] and fakes.sendgrid.emails == []
    assert fakes.slack.received == []
