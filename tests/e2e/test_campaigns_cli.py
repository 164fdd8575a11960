"""``outagecomms campaigns list|pause|resume`` as a marketing person runs them, against the
fake SendGrid Marketing Campaigns server: what it prints, what changes there, exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import FakeSendGridCampaigns
from tests.fakes.sendgrid import DEFAULT_API_KEY

from .conftest import Run

INCIDENT = "2026-11-22-email-outage"
KEY = {"OUTAGECOMMS_CAMPAIGNS__API_KEY": DEFAULT_API_KEY}


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def fake() -> Iterator[FakeSendGridCampaigns]:
    with FakeSendGridCampaigns() as server:
        server.page_size = 3
        yield server


@pytest.fixture
def shop(run: Run, tmp_path: Path, fake: FakeSendGridCampaigns) -> Path:
    """A scaffolded shop with a campaigns block, whose incident was rehearsed in the sandbox."""
    assert run("init", "shop").returncode == 0
    shop = tmp_path / "shop"
    config = shop / "channels.yaml"
    scaffolded = config.read_text()
    assert "\ncampaigns:\n  driver: sendgrid\n" in scaffolded  # the scaffold documents it
    config.write_text(
        scaffolded.replace(
            "\ncampaigns:\n  driver: sendgrid\n",
            f"\ncampaigns:\n  driver: sendgrid\n  base_url: {fake.base_url}\n",
        )
    )
    sent = run("send", "examples/incident-investigating.yaml", "--sandbox", "--yes", cwd=shop)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    return shop


def test_list_pause_and_resume_tell_what_happened(
    run: Run, shop: Path, fake: FakeSendGridCampaigns
) -> None:
    tomorrow = _iso(timedelta(days=1))
    newsletter = fake.add("Black Friday newsletter", "scheduled", tomorrow)
    teaser = fake.add("Cyber Monday teaser", "scheduled", _iso(timedelta(days=2)))
    for i in range(5):
        fake.add(f"Draft {i}", "draft")

    listed = run("campaigns", "list", env=KEY, cwd=shop)
    assert listed.returncode == 0, listed.stderr
    assert "Black Friday newsletter" in listed.stdout and tomorrow in listed.stdout
    assert "Draft 0" not in listed.stdout

    dry = run("campaigns", "pause", INCIDENT, "--dry-run", env=KEY, cwd=shop)
    assert dry.returncode == 0, dry.stderr
    assert "Would pause 2 scheduled campaign(s)" in dry.stdout and "Dry run" in dry.stdout
    assert fake.single_sends[newsletter].status == "scheduled"

    paused = run("campaigns", "pause", INCIDENT, env=KEY, cwd=shop)
    assert paused.returncode == 0, paused.stderr
    assert "Paused 2 scheduled campaign(s)" in paused.stdout
    assert "Black Friday newsletter" in paused.stdout and "Cyber Monday teaser" in paused.stdout
    assert f"outagecomms campaigns resume {INCIDENT}" in paused.stdout
    assert {fake.single_sends[i].status for i in (newsletter, teaser)} == {"draft"}

    again = run("campaigns", "pause", INCIDENT, env=KEY, cwd=shop)
    assert again.returncode == 0 and "Nothing to pause" in again.stdout
    assert "Black Friday" not in again.stdout  # prints only what it unscheduled

    resumed = run("campaigns", "resume", INCIDENT, env=KEY, cwd=shop)
    assert resumed.returncode == 0, resumed.stderr
    assert "Rescheduled 2 campaign(s)" in resumed.stdout and "(its original time)" in resumed.stdout
    assert fake.single_sends[newsletter].send_at == tomorrow
    done = run("campaigns", "resume", INCIDENT, env=KEY, cwd=shop)
    assert done.returncode == 0 and "Nothing to resume" in done.stdout


def test_resume_without_a_time_for_missed_slots_exits_1_and_lists_them(
    run: Run, shop: Path, fake: FakeSendGridCampaigns
) -> None:
    soon = fake.add("Lunch promo", "scheduled", _iso(timedelta(seconds=30)))
    assert run("campaigns", "pause", INCIDENT, env=KEY, cwd=shop).returncode == 0
    # Within a minute of its slot: too late to send it then.
    waiting = run("campaigns", "resume", INCIDENT, env=KEY, cwd=shop)
    assert waiting.returncode == 1
    assert "missed their time" in waiting.stdout and "Lunch promo" in waiting.stdout
    assert "--at" in waiting.stdout
    assert fake.single_sends[soon].status == "draft"

    past = run("campaigns", "resume", INCIDENT, "--at", "2020-01-01T10:00:00Z", env=KEY, cwd=shop)
    assert past.returncode == 2 and "not in the future" in past.stderr
    bad = run("campaigns", "resume", INCIDENT, "--at", "next tuesday", env=KEY, cwd=shop)
    assert bad.returncode == 2 and "not a time" in bad.stderr
    assert fake.calls("PUT") == []

    later = _iso(timedelta(hours=4))
    at = run("campaigns", "resume", INCIDENT, "--at", later, env=KEY, cwd=shop)
    assert at.returncode == 0, at.stderr
    assert f"at {later}" in at.stdout and "(its original time)" not in at.stdout
    assert fake.single_sends[soon].send_at == later


def test_sendgrid_down_mid_pause_exits_1_and_a_rerun_finishes(
    run: Run, shop: Path, fake: FakeSendGridCampaigns
) -> None:
    ids = [fake.add(f"Campaign {i}", "scheduled", _iso(timedelta(days=1))) for i in range(5)]
    fake.down_after, fake.retry_after = 2 + 2, 0.01  # two pages, two unscheduled, then 503
    broken = run("campaigns", "pause", INCIDENT, env=KEY, cwd=shop)
    assert broken.returncode == 1
    assert "Paused 2 scheduled campaign(s)" in broken.stdout
    assert "Campaign 0" in broken.stdout and "Campaign 2" not in broken.stdout
    assert "SendGrid is unavailable" in broken.stderr and "run the same command again" in (
        broken.stderr
    )
    fake.down_after = None
    fixed = run("campaigns", "pause", INCIDENT, env=KEY, cwd=shop)
    assert fixed.returncode == 0 and "Paused 3 scheduled campaign(s)" in fixed.stdout
    assert {fake.single_sends[i].status for i in ids} == {"draft"}
    resumed = run("campaigns", "resume", INCIDENT, env=KEY, cwd=shop)
    assert resumed.returncode == 0 and "Rescheduled 5 campaign(s)" in resumed.stdout


def test_bad_input_exits_2_and_a_refused_key_exits_1(
    run: Run, shop: Path, fake: FakeSendGridCampaigns
) -> None:
    fake.add("Newsletter", "scheduled", _iso(timedelta(days=1)))
    unknown = run("campaigns", "pause", "2026-01-01-no-such-thing", env=KEY, cwd=shop)
    assert unknown.returncode == 2 and "no incident '2026-01-01-no-such-thing'" in unknown.stderr
    unknown = run("campaigns", "resume", "2026-01-01-no-such-thing", env=KEY, cwd=shop)
    assert unknown.returncode == 2
    no_key = run("campaigns", "pause", INCIDENT, cwd=shop)
    assert no_key.returncode == 2 and "OUTAGECOMMS_CAMPAIGNS__API_KEY" in no_key.stderr
    wrong = {"OUTAGECOMMS_CAMPAIGNS__API_KEY": "SG.wrong-key.not-this-one"}
    refused = run("campaigns", "pause", INCIDENT, env=wrong, cwd=shop)
    assert refused.returncode == 1 and "refused the key" in refused.stderr
    assert "SG.wrong-key.not-this-one" not in refused.stdout + refused.stderr
    assert fake.calls("DELETE") == []
    assert run("campaigns", "list", env=wrong, cwd=shop).returncode == 1
