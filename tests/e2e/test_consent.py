"""Receipts and opt-outs end to end: the real CLI sends through the fake providers, a real
``outagecomms serve`` takes signed receipts, replies and one-click unsubscribes, and the
next ``send`` skips each opted-out address with its reason.

Signatures are real: Twilio's computed with the SDK's ``RequestValidator``, SendGrid's
with a generated ECDSA P-256 key."""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fakes import FakeProviders
from tests.serve.consent_shop import SendGridKey, twilio_signature

from .conftest import CLI, Run

ROOT = Path(__file__).parents[2]
PUBLIC_URL = "https://status.shop.example"
INVESTIGATING = "examples/incident-investigating.yaml"
RESOLVED = "examples/incident-resolved.yaml"
INCIDENT_ID = "2026-11-22-email-outage"
ADA, BOB, CAROL = "+12015550123", "+12125550147", "+13035550111"
PEOPLE = [
    ("ada@example.com", "(201) 555-0123", "Ada"),
    ("bob@example.com", "212-555-0147", "Bob"),
    ("carol@example.com", "303 555 0111", "Carol"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_shop(
    root: Path, *, sendgrid_key: str = "", quiet_hours: str | None = None, zone: str = ""
) -> None:
    shutil.copytree(ROOT / "examples", root / "examples", dirs_exist_ok=True)
    quiet = f", quiet_hours: '{quiet_hours}'" if quiet_hours else ""
    (root / "channels.yaml").write_text(
        "organization: {name: Acme Shop, timezone: UTC}\n"
        f"serve: {{public_url: '{PUBLIC_URL}'}}\n"
        "audience: audience.csv\n"
        "channels:\n"
        f"  sms: {{driver: twilio, from: '+15005550006', max_attempts: 1{quiet}}}\n"
        "  email: {driver: sendgrid, from: outage@shop.example"
        + (f", webhook_public_key: '{sendgrid_key}'" if sendgrid_key else "")
        + "}\n"
    )
    lines = ["email,phone,name,sms_opt_in,timezone"]
    lines += [f"{email},{phone},{name},yes,{zone}" for email, phone, name in PEOPLE]
    (root / "audience.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def fakes() -> Iterator[FakeProviders]:
    with FakeProviders() as providers:
        yield providers


@pytest.fixture
def env(fakes: FakeProviders) -> dict[str, str]:
    return fakes.env(social=None, team=None) | {
        "OUTAGECOMMS_SERVE__SECRET": "e2e-serve-secret-0123456789abcdef"
    }


class Server:
    """``outagecomms serve`` in a subprocess on a free port."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        import os

        self.url = f"http://127.0.0.1:{free_port()}"
        clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("OUTAGECOMMS_")}
        self.process = subprocess.Popen(
            [*CLI, "serve", "--listen", self.url.removeprefix("http://")],
            cwd=cwd,
            env=clean | env | {"NO_COLOR": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/status.json", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"serve did not start: {self.process.stderr.read()}")  # type: ignore[union-attr]

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=10, **kwargs)

    def twilio(self, path: str, params: dict[str, str]) -> httpx.Response:
        headers = {"X-Twilio-Signature": twilio_signature_for(path, params)}
        return self.post(path, data=params, headers=headers)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=15)
        return out + err


def twilio_signature_for(path: str, params: dict[str, str]) -> str:
    from tests.fakes.twilio import DEFAULT_AUTH_TOKEN

    return twilio_signature(path, params, token=DEFAULT_AUTH_TOKEN)


def ledger(run: Run, cwd: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    shown = run("ledger", INCIDENT_ID, "--format", "json", cwd=cwd, env=env)
    assert shown.returncode == 0, shown.stderr
    return list(json.loads(shown.stdout))


def row(rows: list[dict[str, Any]], key: str, channel: str, recipient: str) -> dict[str, Any]:
    return next(
        r
        for r in rows
        if r["announcement"] == key and r["channel"] == channel and r["recipient"] == recipient
    )


def test_receipts_replies_and_unsubscribes_reach_the_next_send(
    run: Run, tmp_path: Path, fakes: FakeProviders, env: dict[str, str]
) -> None:
    key = SendGridKey.generate()
    write_shop(tmp_path, sendgrid_key=key.public)
    sent = run("send", INVESTIGATING, "--yes", cwd=tmp_path, env=env)
    assert sent.returncode == 0, sent.stdout + sent.stderr

    # Every SMS asks for receipts at serve's hook; every email carries its own link.
    sids = {m["to"]: m["sid"] for m in fakes.twilio.messages}
    assert set(sids) == {ADA, BOB, CAROL}
    hook = f"{PUBLIC_URL}/hooks/twilio/status"
    assert {m["status_callback"] for m in fakes.twilio.messages} == {hook}
    emails = {e["to"]: e for e in fakes.sendgrid.emails}
    links = {}
    for address, received in emails.items():
        header = received["headers"]["List-Unsubscribe"]
        assert received["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        links[address] = header.strip("<>")
        assert links[address].startswith(f"{PUBLIC_URL}/unsubscribe/")
        assert links[address] in received["text"] and links[address] in received["html"]
        assert address not in links[address]
    assert len(set(links.values())) == 3

    server = Server(tmp_path, env)
    try:
        status = "/hooks/twilio/status"
        delivered = {"MessageSid": sids[ADA], "MessageStatus": "delivered", "To": ADA}
        assert server.twilio(status, delivered).status_code == 200
        failed = {"MessageSid": sids[CAROL], "MessageStatus": "undelivered", "ErrorCode": "30003"}
        assert server.twilio(status, failed).status_code == 200
        forged = {"MessageSid": sids[CAROL], "MessageStatus": "delivered"}
        bad = server.post(status, data=forged, headers={"X-Twilio-Signature": "Zm9yZ2VkIQ=="})
        assert bad.status_code == 403

        stop = {"From": BOB, "To": "+15005550006", "Body": "Stop", "MessageSid": "SMreply"}
        answer = server.twilio("/hooks/twilio/inbound", stop)
        assert answer.status_code == 200 and answer.text == "<Response/>"
        assert answer.headers["content-type"].startswith("text/xml")

        events = [
            {
                "email": "bob@example.com",
                "event": "delivered",
                "sg_event_id": "ev-1",
                "timestamp": 1764400000,
                "announcement": f"{INCIDENT_ID}/investigating",
                "channel": "email",
            },
            {"email": "carol@example.com", "event": "spamreport", "sg_event_id": "ev-2"},
        ]
        body = json.dumps(events).encode()
        assert server.post("/hooks/sendgrid", content=body, headers=key.headers(body)).is_success
        other = SendGridKey.generate()
        body2 = json.dumps([{**events[1], "email": "ada@example.com", "sg_event_id": "x"}]).encode()
        assert (
            server.post("/hooks/sendgrid", content=body2, headers=other.headers(body2)).status_code
            == 403
        )

        path = urlsplit(links["ada@example.com"]).path
        page = httpx.get(server.url + path, timeout=10)
        assert page.status_code == 200 and "<button" in page.text
        clicked = server.post(path, data={"List-Unsubscribe": "One-Click"})
        assert clicked.status_code == 200 and not clicked.is_redirect
        assert server.post(path + "x", data={"List-Unsubscribe": "One-Click"}).status_code == 400
    finally:
        log = server.stop()
    assert "Zm9yZ2VkIQ==" not in log and path.rsplit("/", 1)[1] not in log

    rows = ledger(run, tmp_path, env)
    first = f"{INCIDENT_ID}/investigating"
    assert row(rows, first, "sms", ADA)["state"] == "delivered"
    carol_sms = row(rows, first, "sms", CAROL)
    assert carol_sms["state"] == "undelivered" and "30003" in carol_sms["error"]
    assert row(rows, first, "email", "bob@example.com")["state"] == "delivered"

    listed = run("suppress", "list", "--format", "json", cwd=tmp_path, env=env)
    suppressed = json.loads(listed.stdout)
    assert all(list(s) == ["address", "kind", "source", "reason", "created_at"] for s in suppressed)
    assert {(s["address"], s["kind"], s["source"]) for s in suppressed} == {
        (BOB, "sms", "sms-stop"),
        ("carol@example.com", "email", "sendgrid-spamreport"),
        ("ada@example.com", "email", "one-click"),
    }

    # The next announcement skips each of them, with the reason, and exits 0.
    before_sms, before_mail = len(fakes.twilio.messages), len(fakes.sendgrid.emails)
    again = run("send", RESOLVED, "--yes", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    new_sms = [m["to"] for m in fakes.twilio.messages[before_sms:]]
    new_mail = [e["to"] for e in fakes.sendgrid.emails[before_mail:]]
    assert sorted(new_sms) == sorted([ADA, CAROL])
    assert new_mail == ["bob@example.com"]
    rows = ledger(run, tmp_path, env)
    second = f"{INCIDENT_ID}/resolved"
    assert row(rows, second, "sms", BOB)["state"] == "skipped"
    assert row(rows, second, "sms", BOB)["error"] == "suppressed (sms-stop)"
    assert row(rows, second, "email", "ada@example.com")["error"] == "suppressed (one-click)"
    assert row(rows, second, "email", "carol@example.com")["error"] == (
        "suppressed (sendgrid-spamreport)"
    )

    why = run("why", "ADA@example.com", "--format", "json", cwd=tmp_path, env=env)
    assert why.returncode == 0, why.stderr
    answer = json.loads(why.stdout)
    assert set(answer) == {"deliveries", "suppressions"}
    assert [(d["announcement"], d["state"], d["reason"]) for d in answer["deliveries"]] == [
        (first, "sent", None),
        (second, "skipped", "suppressed (one-click)"),
    ]
    assert all(
        set(d) == {"announcement", "channel", "state", "reason", "provider_id", "updated_at"}
        for d in answer["deliveries"]
    )
    assert [s["source"] for s in answer["suppressions"]] == ["one-click"]
    text = run("why", "(212) 555-0147", INCIDENT_ID, cwd=tmp_path, env=env)
    assert "sms-stop" in text.stdout and "suppressed (sms-stop)" in text.stdout
    assert "replied STOP" in text.stdout


def test_twilio_21610_fails_and_suppresses(
    run: Run, tmp_path: Path, fakes: FakeProviders, env: dict[str, str]
) -> None:
    write_shop(tmp_path)
    fakes.twilio.errors_for[CAROL] = (400, 21610, "Attempt to send to unsubscribed recipient")
    first = run("send", INVESTIGATING, "--yes", "--channel", "sms", cwd=tmp_path, env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    rows = ledger(run, tmp_path, env)
    carol = row(rows, f"{INCIDENT_ID}/investigating", "sms", CAROL)
    assert carol["state"] == "failed" and carol["error"].startswith("21610")
    listed = json.loads(run("suppress", "list", "--format", "json", cwd=tmp_path, env=env).stdout)
    assert [(s["address"], s["source"]) for s in listed] == [(CAROL, "twilio-21610")]
    # The failed row is not retried: it is skipped now, which is not a failure.
    again = run("send", INVESTIGATING, "--yes", "--channel", "sms", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    carol = row(ledger(run, tmp_path, env), f"{INCIDENT_ID}/investigating", "sms", CAROL)
    assert (carol["state"], carol["error"]) == ("skipped", "suppressed (twilio-21610)")
    assert [m["to"] for m in fakes.twilio.messages].count(CAROL) == 0


def test_a_pending_row_suppressed_later_is_never_sent(
    run: Run, tmp_path: Path, fakes: FakeProviders, env: dict[str, str]
) -> None:
    write_shop(tmp_path)
    # The provider is down: the rows stay pending.
    (tmp_path / "channels.yaml").write_text(
        (tmp_path / "channels.yaml")
        .read_text()
        .replace("max_attempts: 1", "max_attempts: 1, breaker_threshold: 1, concurrency: 1")
    )
    fakes.twilio.errors_for[ADA] = (503, 20503, "Service Unavailable")
    down = run("send", INVESTIGATING, "--yes", "--channel", "sms", cwd=tmp_path, env=env)
    assert down.returncode == 1
    states = {r["recipient"]: r["state"] for r in ledger(run, tmp_path, env)}
    assert "pending" in states.values() or "failed" in states.values()
    open_rows = [r for r, s in states.items() if s in ("pending", "failed")]
    added = run("suppress", "add", *open_rows, "--reason", "asked by phone", cwd=tmp_path, env=env)
    assert added.returncode == 0 and f"Suppressed {len(open_rows)}" in added.stdout
    fakes.twilio.errors_for.clear()
    before = len(fakes.twilio.messages)
    up = run("send", INVESTIGATING, "--yes", "--channel", "sms", cwd=tmp_path, env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert [m["to"] for m in fakes.twilio.messages[before:]] == []
    rows = {r["recipient"]: r for r in ledger(run, tmp_path, env)}
    for number in open_rows:
        assert (rows[number]["state"], rows[number]["error"]) == ("skipped", "suppressed (manual)")


def test_quiet_hours_defer_sms_until_the_window_ends(
    run: Run, tmp_path: Path, fakes: FakeProviders, env: dict[str, str]
) -> None:
    # A window around the current time, in the recipients' own zone (the timezone column):
    # the test does not depend on the time it runs at.
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    write_shop(tmp_path, quiet_hours=f"{start:%H:%M}-{end:%H:%M}", zone="UTC")
    sent = run("send", INVESTIGATING, "--yes", cwd=tmp_path, env=env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert fakes.twilio.messages == []
    assert len(fakes.sendgrid.emails) == 3, "quiet hours are for SMS only"
    expected_end = datetime.combine(
        (now if end.time() > now.time() else now + timedelta(days=1)).date(),
        end.time().replace(second=0, microsecond=0),
        tzinfo=UTC,
    )
    iso = expected_end.isoformat()
    assert "3 deferred by quiet hours" in sent.stdout and iso in sent.stdout
    assert "run the same command again after" in sent.stdout
    rows = ledger(run, tmp_path, env)
    sms = [r for r in rows if r["channel"] == "sms"]
    assert {(r["state"], r["error"]) for r in sms} == {("pending", f"quiet hours until {iso}")}

    forced = run("send", INVESTIGATING, "--yes", "--ignore-quiet-hours", cwd=tmp_path, env=env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert sorted(m["to"] for m in fakes.twilio.messages) == sorted([ADA, BOB, CAROL])
    sms = [r for r in ledger(run, tmp_path, env) if r["channel"] == "sms"]
    assert {(r["state"], r["error"]) for r in sms} == {("sent", None)}


def test_suppress_commands_and_their_bad_input(
    run: Run, tmp_path: Path, env: dict[str, str]
) -> None:
    write_shop(tmp_path)
    added = run("suppress", "add", "Ada@Example.com", "(201) 555-0123", cwd=tmp_path, env=env)
    assert added.returncode == 0 and "Suppressed 2" in added.stdout
    again = run("suppress", "add", "ada@example.com", cwd=tmp_path, env=env)
    assert "Suppressed 0" in again.stdout and "1 already were" in again.stdout
    bad = run("suppress", "add", "not-an-address", "ok@example.com", cwd=tmp_path, env=env)
    assert (
        bad.returncode == 2
        and "not-an-address" in bad.stderr
        and "nothing was changed" in bad.stderr
    )
    csv_text = run("suppress", "list", "--format", "csv", cwd=tmp_path, env=env).stdout
    assert csv_text.splitlines()[0] == "address,kind,source,reason,created_at"
    assert "ada@example.com,email,manual" in csv_text and "+12015550123,sms,manual" in csv_text
    table = run("suppress", "list", cwd=tmp_path, env=env)
    assert "ada@example.com" in table.stdout and "2 suppressed" in table.stdout
    assert run("suppress", "list", "--format", "xml", cwd=tmp_path, env=env).returncode == 2

    (tmp_path / "old.csv").write_text(
        "address,reason\nbob@example.com,complained\n,\n555,typo\n+1 303 555 0111,\n"
    )
    imported = run("suppress", "import", "old.csv", cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr
    assert "Imported 2" in imported.stdout and "line 4: '555'" in imported.stdout
    missing = run("suppress", "import", "nope.csv", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "nope.csv" in missing.stderr

    removed = run("suppress", "remove", "ADA@example.com", "x@example.com", cwd=tmp_path, env=env)
    assert "Removed 1" in removed.stdout and "1 were not on it" in removed.stdout
    listed = json.loads(run("suppress", "list", "--format", "json", cwd=tmp_path, env=env).stdout)
    assert {(s["address"], s["source"], s["reason"]) for s in listed} == {
        ("+12015550123", "manual", None),
        ("bob@example.com", "import", "complained"),
        ("+13035550111", "import", None),
    }
    nobody = run("why", "zed@example.com", cwd=tmp_path, env=env)
    assert nobody.returncode == 0 and "No message to it" in nobody.stdout
    assert json.loads(
        run("why", "zed@example.com", "-f", "json", cwd=tmp_path, env=env).stdout
    ) == {
        "deliveries": [],
        "suppressions": [],
    }
    assert run("why", "zed@example.com", "--format", "yaml", cwd=tmp_path, env=env).returncode == 2


def test_preview_dry_run_and_sandbox_honour_the_list_and_carry_the_link(
    run: Run, tmp_path: Path, env: dict[str, str]
) -> None:
    write_shop(tmp_path)
    assert run("suppress", "add", "bob@example.com", "+13035550111", cwd=tmp_path).returncode == 0
    preview = run("preview", INVESTIGATING, cwd=tmp_path)
    assert preview.returncode == 0, preview.stderr
    assert "2 recipients" in preview.stdout and "1 suppressed (manual)" in preview.stdout
    assert f"{PUBLIC_URL}/unsubscribe/" in preview.stdout
    dry = run("send", INVESTIGATING, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and "1 suppressed (manual)" in dry.stdout

    sandbox = run("send", INVESTIGATING, "--sandbox", "--yes", cwd=tmp_path)
    assert sandbox.returncode == 0, sandbox.stdout + sandbox.stderr
    outbox = tmp_path / ".outagecomms" / "outbox"
    emls = {
        email.utils.parseaddr(m["To"])[1]: m
        for m in (
            email.message_from_string(f.read_text(), policy=email.policy.default)
            for f in outbox.glob("email/*.eml")
        )
    }
    assert set(emls) == {"ada@example.com", "carol@example.com"}
    for mail in emls.values():
        link = mail["List-Unsubscribe"].strip("<>")
        assert link.startswith(f"{PUBLIC_URL}/unsubscribe/")
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert link in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    sms = {f.read_text().splitlines()[0] for f in outbox.glob("sms/*.txt")}
    assert sms == {f"To: {ADA}", f"To: {BOB}"}
    why = json.loads(run("why", "bob@example.com", "--sandbox", "-f", "json", cwd=tmp_path).stdout)
    assert [(d["state"], d["reason"]) for d in why["deliveries"]] == [
        ("skipped", "suppressed (manual)")
    ]


def test_smtp_emails_carry_the_one_click_headers(
    run: Run, tmp_path: Path, env: dict[str, str]
) -> None:
    from tests.fakes import FakeSMTP

    write_shop(tmp_path)
    with FakeSMTP() as smtp:
        text = (tmp_path / "channels.yaml").read_text()
        text = text.replace(
            "  email: {driver: sendgrid, from: outage@shop.example}",
            f"  email: {{driver: smtp, host: 127.0.0.1, port: {smtp.port}, starttls: false,"
            " from: outage@shop.example}",
        )
        (tmp_path / "channels.yaml").write_text(text)
        smtp_env = {k: v for k, v in env.items() if "__EMAIL__" not in k}
        sent = run("send", INVESTIGATING, "--yes", "--channel", "email", cwd=tmp_path, env=smtp_env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        received = smtp.messages
    assert len(received) == 3
    for mail in received:
        parsed = email.message_from_bytes(mail.raw)
        assert parsed["List-Unsubscribe"].startswith(f"<{PUBLIC_URL}/unsubscribe/")
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
