"""Pausing and resuming SendGrid Single Sends (DESIGN §15) through the library, against
the fake Marketing Campaigns server (several pages, faults) and a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx

from outagecomms import Announcer
from outagecomms.campaigns import CampaignsResult
from outagecomms.errors import ConfigError, InputError
from outagecomms.models import Incident
from outagecomms.run.planning import announcement_record
from tests.fakes import FakeSendGridCampaigns
from tests.fakes.sendgrid import DEFAULT_API_KEY

INCIDENT = "2026-11-22-email-outage"
OTHER = "2026-12-01-site-down"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


TOMORROW = _iso(datetime.now(UTC) + timedelta(days=1))
NEXT_WEEK = _iso(datetime.now(UTC) + timedelta(days=7))
YESTERDAY = _iso(datetime.now(UTC) - timedelta(days=1))


@pytest.fixture
def fake() -> Iterator[FakeSendGridCampaigns]:
    with FakeSendGridCampaigns() as server:
        server.page_size = 2  # ten Single Sends: five pages
        yield server


@pytest.fixture
def scheduled(fake: FakeSendGridCampaigns) -> list[str]:
    """Seven scheduled Single Sends among drafts and one already sending."""
    ids = []
    for i in range(10):
        if i in (2, 5):
            fake.add(f"Draft {i}", "draft")
        elif i == 7:
            fake.add("Flash sale", "triggered", YESTERDAY)
        else:
            ids.append(fake.add(f"Newsletter {i}", "scheduled", TOMORROW))
    return ids


def _announcer(tmp_path: Path, base_url: str | None) -> Announcer:
    block = f"campaigns: {{driver: sendgrid, base_url: '{base_url}', timeout: 2}}\n"
    (tmp_path / "channels.yaml").write_text(
        "ledger: sqlite:///ledger.db\n"
        + (block if base_url else "")
        + "channels:\n  banner: {driver: file, path: public/}\n"
    )
    announcer = Announcer.from_config(tmp_path / "channels.yaml")
    for incident_id in (INCIDENT, OTHER):
        incident = Incident(id=incident_id, title="Mail is slow", summary="Delays.")
        with announcer.open_store() as store:
            store.record_announcement(announcement_record(incident, sandbox=False))
    return announcer


@pytest.fixture
def announcer(
    tmp_path: Path, fake: FakeSendGridCampaigns, monkeypatch: pytest.MonkeyPatch
) -> Announcer:
    monkeypatch.setenv("OUTAGECOMMS_CAMPAIGNS__API_KEY", DEFAULT_API_KEY)
    return _announcer(tmp_path, fake.base_url)


def _paused(announcer: Announcer, incident: str = INCIDENT) -> list[tuple[str, str, str | None]]:
    with announcer.open_store() as store:
        return [(p.id, p.name, p.send_at) for p in store.paused(incident)]


def _statuses(fake: FakeSendGridCampaigns) -> dict[str, str]:
    return {i: s.status for i, s in fake.single_sends.items()}


def test_pause_pages_through_everything_and_unschedules_only_what_is_scheduled(
    announcer: Announcer, fake: FakeSendGridCampaigns, scheduled: list[str]
) -> None:
    result = announcer.pause_campaigns(INCIDENT)
    assert result.ok and result.exit_code == 0 and result.error is None
    assert [c.id for c in result.changed] == scheduled
    # Every page was asked of the configured server, although SendGrid's `next` links
    # name api.sendgrid.com: the key never leaves for a host the config does not name.
    tokens = [r.query.get("page_token") for r in fake.requests if r.method == "GET"]
    assert tokens == [None, "2", "4", "6", "8"]
    assert fake.calls("DELETE") == [f"/v3/marketing/singlesends/{i}/schedule" for i in scheduled]
    assert all(r.headers["Authorization"] == f"Bearer {DEFAULT_API_KEY}" for r in fake.requests)
    statuses = _statuses(fake)
    assert all(statuses[i] == "draft" for i in scheduled)
    assert sorted(s for s in statuses.values()) == ["draft"] * 9 + ["triggered"]
    names = {i: s.name for i, s in fake.single_sends.items()}
    assert _paused(announcer) == [(i, names[i], TOMORROW) for i in scheduled]
    assert _paused(announcer, OTHER) == []


def test_pause_twice_changes_nothing_more(
    announcer: Announcer, fake: FakeSendGridCampaigns, scheduled: list[str]
) -> None:
    announcer.pause_campaigns(INCIDENT)
    before = _paused(announcer)
    again = announcer.pause_campaigns(INCIDENT)
    assert again.ok and again.changed == []
    assert len(fake.calls("DELETE")) == len(scheduled)
    assert _paused(announcer) == before
    # Another incident finds nothing scheduled either, so it records nothing.
    assert announcer.pause_campaigns(OTHER).changed == []
    assert _paused(announcer, OTHER) == []


def test_dry_runs_change_and_record_nothing(
    announcer: Announcer, fake: FakeSendGridCampaigns, scheduled: list[str]
) -> None:
    would = announcer.pause_campaigns(INCIDENT, dry_run=True)
    assert [c.id for c in would.changed] == scheduled and would.dry_run
    assert fake.calls("DELETE") == [] and _paused(announcer) == []
    announcer.pause_campaigns(INCIDENT)
    would = announcer.resume_campaigns(INCIDENT, dry_run=True)
    assert [c.new_send_at for c in would.changed] == [TOMORROW] * len(scheduled)
    assert fake.calls("PUT") == []
    with announcer.open_store() as store:
        assert all(p.resumed_at is None for p in store.paused(INCIDENT))


def test_a_refused_key_records_nothing_and_says_which_variable(
    announcer: Announcer, fake: FakeSendGridCampaigns, scheduled: list[str]
) -> None:
    fake.api_key = "SG.another-key.entirely-different"
    result = announcer.pause_campaigns(INCIDENT)
    assert not result.ok and result.exit_code == 1 and result.changed == []
    assert result.error is not None
    assert "OUTAGECOMMS_CAMPAIGNS__API_KEY" in result.error and "HTTP 401" in result.error
    assert DEFAULT_API_KEY not in result.error
    assert _paused(announcer) == [] and fake.calls("DELETE") == []
    fake.api_key = DEFAULT_API_KEY
    fake.forbidden = True  # a key without Marketing access
    result = announcer.pause_campaigns(INCIDENT)
    assert result.error is not None and "Marketing access" in result.error
    assert _paused(announcer) == []


def test_sendgrid_down_records_nothing(
    announcer: Announcer, fake: FakeSendGridCampaigns, scheduled: list[str]
) -> None:
    fake.down = True
    fake.retry_after = 0.01
    result = announcer.pause_campaigns(INCIDENT)
    assert result.error is not None and "unavailable" in result.error
    assert result.changed == [] and _paused(announcer) == []
    assert all(s == "scheduled" for i, s in _statuses(fake).items() if i in scheduled)


def test_a_partial_pause_is_recorded_exactly_and_a_rerun_completes_it(
    announcer: Announcer, fake: FakeSendGridCampaigns, scheduled: list[str]
) -> None:
    fake.down_after = 5 + 3  # five pages listed, three unscheduled, then SendGrid fails
    first = announcer.pause_campaigns(INCIDENT)
    assert first.error is not None and first.exit_code == 1
    assert [c.id for c in first.changed] == scheduled[:3]
    assert [p[0] for p in _paused(announcer)] == scheduled[:3]
    drafts = {i for i, s in _statuses(fake).items() if s == "draft" and i in scheduled}
    assert drafts == set(scheduled[:3])
    fake.down_after = None
    second = announcer.pause_campaigns(INCIDENT)
    assert second.ok and [c.id for c in second.changed] == scheduled[3:]
    assert [p[0] for p in _paused(announcer)] == scheduled
    # ...and the resume puts back all seven at their own time.
    assert [c.id for c in announcer.resume_campaigns(INCIDENT).changed] == scheduled


def test_transient_answers_are_retried(
    announcer: Announcer, fake: FakeSendGridCampaigns, scheduled: list[str]
) -> None:
    fake.fail_every, fake.fail_status, fake.retry_after = 3, 429, 0.01
    result = announcer.pause_campaigns(INCIDENT)
    assert result.ok and [c.id for c in result.changed] == scheduled
    assert fake.faulted > 0


def test_resume_at_the_original_time_or_at_the_given_one_and_never_in_the_past(
    announcer: Announcer, fake: FakeSendGridCampaigns
) -> None:
    ahead = fake.add("Weekly digest", "scheduled", NEXT_WEEK)
    missed = fake.add("Morning promo", "scheduled", _iso(datetime.now(UTC) + timedelta(hours=1)))
    assert announcer.pause_campaigns(INCIDENT).ok
    # The incident lasted longer than the promo's slot.
    with announcer.open_store() as store:
        store.record_paused(INCIDENT, missed, "Morning promo", YESTERDAY)
    waiting = announcer.resume_campaigns(INCIDENT)
    assert waiting.exit_code == 1 and not waiting.ok
    assert [(c.id, c.new_send_at) for c in waiting.changed] == [(ahead, NEXT_WEEK)]
    assert [c.id for c in waiting.waiting] == [missed]
    assert fake.single_sends[missed].status == "draft"
    with pytest.raises(InputError, match="not in the future"):
        announcer.resume_campaigns(INCIDENT, at=YESTERDAY)
    with pytest.raises(InputError, match="time zone"):
        announcer.resume_campaigns(INCIDENT, at="2026-12-01T10:00:00")
    with pytest.raises(InputError, match="not a time"):
        announcer.resume_campaigns(INCIDENT, at="tomorrow morning")
    later = _iso(datetime.now(UTC) + timedelta(hours=3))
    done = announcer.resume_campaigns(INCIDENT, at=later)
    assert done.ok and [(c.id, c.new_send_at) for c in done.changed] == [(missed, later)]
    assert fake.single_sends[missed].status == "scheduled"
    assert fake.single_sends[missed].send_at == later
    assert fake.single_sends[ahead].send_at == NEXT_WEEK
    # Idempotent: nothing is left to resume.
    again = announcer.resume_campaigns(INCIDENT, at=later)
    assert again.ok and again.changed == again.waiting == again.closed == []
    assert len(fake.calls("PUT")) == 2


def test_resume_touches_only_what_this_incident_paused(
    announcer: Announcer, fake: FakeSendGridCampaigns
) -> None:
    mine = fake.add("Mine", "scheduled", TOMORROW)
    assert announcer.pause_campaigns(INCIDENT).ok
    theirs = fake.add("Theirs", "scheduled", NEXT_WEEK)
    assert announcer.pause_campaigns(OTHER).ok
    untouched = fake.add("Draft kept as draft", "draft")
    result = announcer.resume_campaigns(INCIDENT)
    assert [c.id for c in result.changed] == [mine]
    assert fake.calls("PUT") == [f"/v3/marketing/singlesends/{mine}/schedule"]
    assert fake.single_sends[theirs].status == "draft"
    assert fake.single_sends[untouched].status == "draft"


def test_resume_leaves_alone_what_someone_already_rescheduled_or_deleted(
    announcer: Announcer, fake: FakeSendGridCampaigns
) -> None:
    rescheduled = fake.add("Rescheduled by hand", "scheduled", TOMORROW)
    assert announcer.pause_campaigns(INCIDENT).ok
    with announcer.open_store() as store:
        store.record_paused(INCIDENT, "ss-gone", "Deleted meanwhile", TOMORROW)
    fake.set(rescheduled, "scheduled", NEXT_WEEK)  # a person in SendGrid's web app
    result = announcer.resume_campaigns(INCIDENT)
    assert result.ok and result.changed == []
    notes = {c.id: c.note for c in result.closed}
    assert notes[rescheduled] == f"already scheduled for {NEXT_WEEK} at SendGrid; left as it is"
    assert notes["ss-gone"] == "no longer exists at SendGrid"
    assert fake.calls("PUT") == [] and fake.single_sends[rescheduled].send_at == NEXT_WEEK
    assert announcer.resume_campaigns(INCIDENT).closed == []  # closed once, for good


def test_unknown_incident_and_missing_configuration_are_bad_input(
    tmp_path: Path, fake: FakeSendGridCampaigns, monkeypatch: pytest.MonkeyPatch
) -> None:
    announcer = _announcer(tmp_path, fake.base_url)
    with pytest.raises(ConfigError, match="OUTAGECOMMS_CAMPAIGNS__API_KEY"):
        announcer.pause_campaigns(INCIDENT)
    monkeypatch.setenv("OUTAGECOMMS_CAMPAIGNS__API_KEY", DEFAULT_API_KEY)
    announcer = Announcer.from_config(tmp_path / "channels.yaml")
    for action in (announcer.pause_campaigns, announcer.resume_campaigns):
        with pytest.raises(InputError, match="no incident '2026-01-01-nope'") as caught:
            action("2026-01-01-nope")
        assert caught.value.exit_code == 2
    assert fake.requests == []
    monkeypatch.delenv("OUTAGECOMMS_CAMPAIGNS__API_KEY")
    (tmp_path / "other").mkdir()
    no_block = _announcer(tmp_path / "other", None)
    with pytest.raises(ConfigError, match="no 'campaigns:' block"):
        no_block.pause_campaigns(INCIDENT)


def test_a_literal_key_in_channels_yaml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "channels.yaml").write_text(
        "campaigns: {driver: sendgrid, api_key: SG.literal-key-in-the-file}\nchannels: {}\n"
    )
    with pytest.raises(ConfigError, match="set OUTAGECOMMS_CAMPAIGNS__API_KEY") as caught:
        Announcer.from_config(tmp_path / "channels.yaml")
    assert "SG.literal-key-in-the-file" not in str(caught.value)


@respx.mock(using="httpx")
def test_a_connection_lost_mid_pause_keeps_what_was_done(
    respx_mock: respx.MockRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTAGECOMMS_CAMPAIGNS__API_KEY", DEFAULT_API_KEY)
    announcer = _announcer(tmp_path, "https://api.sendgrid.test")
    listing = {
        "result": [
            {"id": "a", "name": "A", "status": "scheduled", "send_at": TOMORROW},
            {"id": "b", "name": "B", "status": "scheduled", "send_at": TOMORROW},
        ],
        "_metadata": {},
    }
    respx_mock.get("https://api.sendgrid.test/v3/marketing/singlesends").respond(json=listing)
    respx_mock.delete("https://api.sendgrid.test/v3/marketing/singlesends/a/schedule").respond(
        json={"id": "a", "status": "draft"}
    )
    refused = respx_mock.delete(
        "https://api.sendgrid.test/v3/marketing/singlesends/b/schedule"
    ).mock(side_effect=httpx.ConnectError("connection refused"))
    result: CampaignsResult = announcer.pause_campaigns(INCIDENT)
    assert [c.id for c in result.changed] == ["a"]
    assert result.error is not None and "did not answer" in result.error
    assert refused.call_count == 3  # retried, then given up
    assert _paused(announcer) == [("a", "A", TOMORROW)]


def test_resume_at_now_means_as_soon_as_sendgrid_allows(
    announcer: Announcer, fake: FakeSendGridCampaigns
) -> None:
    missed = fake.add("Morning promo", "scheduled", TOMORROW)
    assert announcer.pause_campaigns(INCIDENT).ok
    with announcer.open_store() as store:
        store.record_paused(INCIDENT, missed, "Morning promo", YESTERDAY)
    before = datetime.now(UTC)
    done = announcer.resume_campaigns(INCIDENT, at="now")
    assert done.ok and [c.id for c in done.changed] == [missed]
    send_at = datetime.fromisoformat(str(fake.single_sends[missed].send_at).replace("Z", "+00:00"))
    assert before + timedelta(seconds=59) <= send_at <= datetime.now(UTC) + timedelta(minutes=3)
