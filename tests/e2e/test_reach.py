"""The real CLI against fake Mastodon and Bluesky servers: threads, idempotent retries,
posts caught mid-flight, rate limits, refused credentials, per-network limits, and
secrets that never show."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeBluesky, FakeMastodon
from tests.fakes.bluesky import DEFAULT_APP_PASSWORD, DEFAULT_HANDLE
from tests.fakes.mastodon import DEFAULT_ACCESS_TOKEN

from .conftest import Run

INCIDENT = """\
id: mail-down
title: Email delivery is delayed
status: {status}
summary: {summary}
started_at: 2026-11-22T09:40:00Z
eta: 2026-11-22T12:00:00Z
"""
STATUS_URL = "https://acme-shop.com/status"  # a real TLD: only those make a URL


@pytest.fixture
def mastodon() -> Any:
    with FakeMastodon() as fake:
        yield fake


@pytest.fixture
def bluesky() -> Any:
    with FakeBluesky() as fake:
        yield fake


def setup(
    tmp_path: Path, mastodon: FakeMastodon, bluesky: FakeBluesky, *, social: str | None = None
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "social.txt.j2").write_text(
        social
        or "Störung — {{ incident.title }}: {{ incident.summary }} "
        "Mehr: {{ organization.status_url }}",
        encoding="utf-8",
    )
    (tmp_path / "channels.yaml").write_text(
        "organization: {name: Acme Shop, website: https://shop.example,"
        f" status_url: {STATUS_URL}, locale: de}}\n"
        "channels:\n"
        f"  masto: {{driver: mastodon, base_url: '{mastodon.base_url}', visibility: unlisted}}\n"
        f"  sky: {{driver: bluesky, handle: {DEFAULT_HANDLE}, base_url: '{bluesky.base_url}'}}\n",
        encoding="utf-8",
    )
    write_incident(tmp_path, "investigating")


def write_incident(tmp_path: Path, status: str, summary: str = "Orders are safe.") -> None:
    (tmp_path / "incident.yaml").write_text(
        INCIDENT.format(status=status, summary=summary), encoding="utf-8"
    )


def secrets(
    token: str = DEFAULT_ACCESS_TOKEN, password: str = DEFAULT_APP_PASSWORD
) -> dict[str, str]:
    return {
        "OUTAGECOMMS_CHANNELS__MASTO__ACCESS_TOKEN": token,
        "OUTAGECOMMS_CHANNELS__SKY__APP_PASSWORD": password,
    }


def ledger(run: Run, env: dict[str, str]) -> list[dict[str, Any]]:
    result = run("ledger", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def test_an_incident_threads_on_both_networks(
    run: Run, tmp_path: Path, mastodon: FakeMastodon, bluesky: FakeBluesky
) -> None:
    setup(tmp_path, mastodon, bluesky)
    env = secrets()
    first = run("--verbose", "send", "incident.yaml", "--yes", env=env)  # the debug log too
    assert first.returncode == 0, first.stdout + first.stderr
    assert "DEBUG" in first.stderr
    write_incident(tmp_path, "resolved", "All mail has gone out.")
    second = run("send", "incident.yaml", "--yes", env=env)
    assert second.returncode == 0, second.stdout + second.stderr

    # Mastodon: two statuses, the second replying to the first, in the organization's language.
    opening, update = mastodon.statuses
    assert opening["text"].startswith("Störung — Email delivery is delayed: Orders are safe.")
    assert opening["in_reply_to_id"] is None and update["in_reply_to_id"] == opening["id"]
    assert {s["visibility"] for s in mastodon.statuses} == {"unlisted"}
    assert {s["language"] for s in mastodon.statuses} == {"de"}
    keys = {s["idempotency_key"] for s in mastodon.statuses}
    assert len(keys) == 2  # one per announcement

    # Bluesky: one session per run, the reply names the first post as root and parent.
    assert bluesky.sessions == 2
    root, reply = bluesky.posts
    assert "reply" not in root and root["langs"] == ["de"]
    assert reply["reply"]["root"]["uri"] == root["uri"]
    assert reply["reply"]["parent"]["cid"] == root["cid"]
    [link] = reply["facets"]
    start = reply["text"].encode().index(STATUS_URL.encode())
    assert (link["index"]["byteStart"], link["index"]["byteEnd"]) == (
        start,
        start + len(STATUS_URL),
    )
    assert link["features"][0]["uri"] == STATUS_URL

    rows = {(r["announcement"], r["channel"]): r for r in ledger(run, env)}
    assert rows[("mail-down/investigating", "masto")]["provider_id"] == opening["id"]
    assert rows[("mail-down/resolved", "sky")]["provider_id"] == (
        f"{reply['uri']}|{reply['cid']}|{root['uri']}|{root['cid']}"
    )
    assert {r["state"] for r in rows.values()} == {"sent"}
    every_output = first.stdout + first.stderr + second.stdout + second.stderr
    every_output += json.dumps(list(rows.values()))
    assert_no_secret(every_output, DEFAULT_ACCESS_TOKEN, DEFAULT_APP_PASSWORD, *bluesky.tokens)

    # A third run finds everything delivered: nothing new anywhere.
    again = run("send", "incident.yaml", "--yes", env=env)
    assert again.returncode == 0
    assert len(mastodon.statuses) == 2 and len(bluesky.posts) == 2


def test_a_lost_mastodon_answer_is_retried_without_a_second_status(
    run: Run, tmp_path: Path, mastodon: FakeMastodon, bluesky: FakeBluesky
) -> None:
    setup(tmp_path, mastodon, bluesky)
    mastodon.lose_answers = 1  # made, then answered 502
    result = run("send", "incident.yaml", "--yes", "--channel", "masto", env=secrets())
    assert result.returncode == 0, result.stdout + result.stderr
    [status] = mastodon.statuses
    posts = [r for r in mastodon.requests if r.path == "/api/v1/statuses"]
    assert len(posts) == 2  # the retry reached the instance, with the same key
    assert posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"]
    [row] = ledger(run, secrets())
    assert row["state"] == "sent" and row["provider_id"] == status["id"] and row["attempts"] == 2


def test_a_bluesky_post_caught_mid_flight_stays_unknown(
    run: Run, tmp_path: Path, mastodon: FakeMastodon, bluesky: FakeBluesky
) -> None:
    setup(tmp_path, mastodon, bluesky)
    bluesky.lose_answers = 1  # posted, connection closed before the answer
    result = run("send", "incident.yaml", "--yes", "--channel", "sky", env=secrets())
    assert result.returncode == 1
    assert "unknown" in result.stdout.lower()
    [row] = ledger(run, secrets())
    assert row["state"] == "unknown"
    again = run("send", "incident.yaml", "--yes", "--channel", "sky", env=secrets())
    assert again.returncode == 1
    assert len(bluesky.posts) == 1  # never posted twice on its own


def test_rate_limits_wait_for_the_reset_time(
    run: Run, tmp_path: Path, mastodon: FakeMastodon, bluesky: FakeBluesky
) -> None:
    setup(tmp_path, mastodon, bluesky)
    mastodon.rate_limited = bluesky.rate_limited = 1
    mastodon.retry_after = bluesky.retry_after = 1.5
    result = run("send", "incident.yaml", "--yes", env=secrets())
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(mastodon.statuses) == 1 and len(bluesky.posts) == 1
    for fake, path in (
        (mastodon, "/api/v1/statuses"),
        (bluesky, "/xrpc/com.atproto.repo.createRecord"),
    ):
        limited, accepted = [r for r in fake.requests if r.path == path]
        # Mastodon's reset is an ISO time to the millisecond; Bluesky's a whole epoch second.
        assert accepted.received_at - limited.received_at >= 1.0


def test_refused_credentials(
    run: Run, tmp_path: Path, mastodon: FakeMastodon, bluesky: FakeBluesky
) -> None:
    setup(tmp_path, mastodon, bluesky)
    wrong = secrets("wrong-mastodon-token-123", "wrong-app-password-456")
    check = run("check", env=wrong)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "refused" in check.stdout
    send = run("send", "incident.yaml", "--yes", env=wrong)
    assert send.returncode == 1
    assert not mastodon.statuses and not bluesky.posts
    rows = ledger(run, wrong)
    assert {r["state"] for r in rows} == {"failed"}
    output = check.stdout + check.stderr + send.stdout + send.stderr + json.dumps(rows)
    assert_no_secret(output, "wrong-mastodon-token-123", "wrong-app-password-456")
    assert "OUTAGECOMMS_CHANNELS__MASTO__ACCESS_TOKEN" in output
    assert "OUTAGECOMMS_CHANNELS__SKY__APP_PASSWORD" in output

    good = run("check", env=secrets())
    assert good.returncode == 0, good.stdout + good.stderr
    assert "@acmeshop" in good.stdout and DEFAULT_HANDLE in good.stdout


def test_missing_secrets_are_bad_config(
    run: Run, tmp_path: Path, mastodon: FakeMastodon, bluesky: FakeBluesky
) -> None:
    setup(tmp_path, mastodon, bluesky)
    result = run("send", "incident.yaml", "--yes")
    assert result.returncode == 2
    assert "OUTAGECOMMS_CHANNELS__MASTO__ACCESS_TOKEN" in result.stderr


def test_each_network_checks_its_own_limit_before_sending(
    run: Run, tmp_path: Path, mastodon: FakeMastodon, bluesky: FakeBluesky
) -> None:
    """320 characters and a link: fine on Mastodon (500), too long for Bluesky (300)."""
    setup(tmp_path, mastodon, bluesky)
    write_incident(tmp_path, "investigating", "Orders are safe. " * 17)
    result = run("send", "incident.yaml", "--yes", env=secrets())
    assert result.returncode == 2
    assert "channel 'sky'" in result.stderr and "over Bluesky's 300" in result.stderr
    assert not mastodon.requests and not bluesky.requests
    only_masto = run("send", "incident.yaml", "--yes", "--channel", "masto", env=secrets())
    assert only_masto.returncode == 0, only_masto.stderr
    assert len(mastodon.statuses) == 1

    write_incident(tmp_path, "identified", "Orders are safe. " * 30)
    too_long = run("preview", "incident.yaml", "--channel", "masto")
    assert too_long.returncode == 2 and "over Mastodon's 500" in too_long.stderr


def test_preview_shows_each_networks_count(
    run: Run, tmp_path: Path, mastodon: FakeMastodon, bluesky: FakeBluesky
) -> None:
    setup(tmp_path, mastodon, bluesky, social="Fixed 🎉 {{ organization.status_url }}")
    result = run("preview", "incident.yaml")
    assert result.returncode == 0, result.stderr
    # The link counts 23 on Mastodon and in full (28) on Bluesky; the emoji is one character.
    assert "31/500 characters on Mastodon" in result.stdout
    assert "36/300 characters on Bluesky" in result.stdout
    assert not mastodon.requests and not bluesky.requests
    started = time.monotonic()
    sandbox = run("send", "incident.yaml", "--yes", "--sandbox")
    assert sandbox.returncode == 0 and time.monotonic() - started < 60
    assert not mastodon.requests and not bluesky.requests
    assert (tmp_path / ".outagecomms" / "outbox" / "sky").is_dir()
