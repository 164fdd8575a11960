"""A new user's first run: init, preview, send to the sandbox, send again, read the ledger."""

from __future__ import annotations

import email
import json
from pathlib import Path

from .conftest import Run

INCIDENT = "examples/incident-investigating.yaml"
# From the scaffold's audience: valid, opted-in, de-duplicated phones and emails
# (Tim's +44 20 7946 0958 is a London landline: skipped as "not a mobile number").
SMS_PEOPLE = {
    "+12015550123",
    "+12125550147",
    "+12025550199",
    "+33612345678",
    "+14155550132",
    "+13125550166",
    "+12065550177",
    "+12135550155",
    "+16175550199",
    "+19085550133",
}


def test_init_then_sandbox_send_then_nothing_new(run: Run, tmp_path: Path) -> None:
    made = run("init", "shop")
    assert made.returncode == 0, made.stderr
    shop = tmp_path / "shop"
    assert (shop / "channels.yaml").is_file() and (shop / "templates" / "sms.txt.j2").is_file()

    first = run("send", INCIDENT, "--sandbox", "--yes", cwd=shop)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "every message was delivered to the sandbox outbox" in first.stdout

    outbox = shop / ".outagecomms" / "outbox"
    sms_files = sorted((outbox / "sms").glob("*.txt"))
    numbers = {f.read_text().splitlines()[0].removeprefix("To: ") for f in sms_files}
    assert numbers == SMS_PEOPLE and len(sms_files) == len(SMS_PEOPLE)
    # Each SMS carries the opt-out wording of its reader's language (Margaret is fr-FR).
    for f in sms_files:
        french = f.name.endswith("+33612345678.txt")
        wording = "Répondez STOP pour vous désabonner." if french else "Reply STOP to opt out."
        assert wording in f.read_text(), f.name

    emls = [email.message_from_string(f.read_text()) for f in (outbox / "email").glob("*.eml")]
    recipients = {email.utils.parseaddr(m["To"])[1] for m in emls}
    assert "ada@example.com" in recipients and "margaret@example.com" not in recipients
    assert len(recipients) == len(emls)
    assert all(m["Subject"] == "[Investigating] Email delivery is delayed" for m in emls)

    status = json.loads((outbox / "banner" / "status.json").read_text())
    assert status["id"] == "2026-11-22-email-outage" and status["status"] == "investigating"
    assert status["eta"] == "2026-11-22T12:00:00Z" and "expires_at" not in status
    assert (
        "<strong>Email delivery is delayed</strong>"
        in (outbox / "banner" / "banner.html").read_text()
    )
    assert not (shop / "public").exists(), "the sandbox must not touch the real banner folder"
    assert len(list((outbox / "social").iterdir())) == 1
    assert len(list((outbox / "team").iterdir())) == 1

    again = run("send", INCIDENT, "--sandbox", "--yes", cwd=shop)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Nothing new to send" in again.stdout
    assert len(list((outbox / "sms").iterdir())) == len(SMS_PEOPLE)

    ledger = run("ledger", "--format", "json", cwd=shop)
    rows = json.loads(ledger.stdout)
    sms_rows = [r for r in rows if r["channel"] == "sms"]
    assert {r["recipient"] for r in sms_rows if r["state"] == "sent"} == SMS_PEOPLE
    assert all(r["attempts"] == 1 for r in rows if r["state"] == "sent")
    # Everyone the channel could have reached but did not has a skipped row and its reason.
    skipped = {(r["recipient"], r["error"]) for r in sms_rows if r["state"] == "skipped"}
    assert {
        ("+13035550111", "opted out"),
        ("+16505550144", "no sms opt-in"),
        ("12345", "invalid phone"),
        ("555-1234", "invalid phone"),
        ("+19085550122", "opted out"),
    } <= skipped
    assert {r["state"] for r in rows} == {"sent", "skipped"}
    email_skips = {
        (r["recipient"], r["error"])
        for r in rows
        if r["channel"] == "email" and r["state"] == "skipped"
    }
    assert ("margaret@example.com", "opted out") in email_skips
    assert ("barbara@example", "invalid email") in email_skips
    assert {r["recipient"] for r in rows if r["channel"] == "social"} == {"-"}
    expected_keys = {"announcement", "channel", "recipient", "state", "provider_id", "error"}
    assert expected_keys | {"attempts", "updated_at"} <= set(rows[0])


def test_resolved_sends_the_apology_and_threads_the_post(run: Run, tmp_path: Path) -> None:
    assert run("init").returncode == 0
    assert run("send", INCIDENT, "--sandbox", "--yes").returncode == 0
    done = run("send", "examples/incident-resolved.yaml", "--sandbox", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    outbox = tmp_path / ".outagecomms" / "outbox"
    apology = [
        email.message_from_string(f.read_text()) for f in (outbox / "email").glob("*resolved*.eml")
    ]
    assert apology and all("our apologies" in m["Subject"] for m in apology)
    assert all("SORRY10" in m.get_payload()[0].get_payload() for m in apology)
    posts = {f.name: f.read_text() for f in (outbox / "social").iterdir()}
    reply = next(text for name, text in posts.items() if "resolved" in name)
    assert "In-Reply-To: outbox:" in reply
    status = json.loads((outbox / "banner" / "status.json").read_text())
    assert status["status"] == "resolved" and status["expires_at"]


def test_preview_shows_every_channel(run: Run, tmp_path: Path) -> None:
    assert run("init").returncode == 0
    shown = run("preview", INCIDENT)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for channel in ("sms", "social", "banner", "email", "team"):
        assert f"{channel} (" in text
    assert f"{len(SMS_PEOPLE)} recipients" in text
    assert "segment(s) of max 2" in text and "GSM-7" in text
    assert "/280 weighted characters" in text
    assert "invalid phone" in text and "duplicate" in text
    assert not (tmp_path / ".outagecomms").exists(), "preview must not record anything"


def test_dry_run_records_nothing(run: Run, tmp_path: Path) -> None:
    assert run("init").returncode == 0
    dry = run("send", INCIDENT, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "nothing was sent or recorded" in dry.stdout
    assert not (tmp_path / ".outagecomms").exists()
    assert run("ledger", "--format", "json").stdout.strip() == "[]"
