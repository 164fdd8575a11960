"""The library as an incident script uses it: from a plain script, no CLI."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import outagecomms
from outagecomms import Announcer, ConfigError, Incident, LimitError, Recipient

ROOT = Path(__file__).parents[2]


def test_public_api_is_pinned() -> None:
    assert sorted(outagecomms.__all__) == [
        "Announcer",
        "AudienceError",
        "ChannelPlan",
        "ChannelResult",
        "CheckResult",
        "Config",
        "ConfigError",
        "DeliveryError",
        "Failure",
        "Incident",
        "IncidentError",
        "InputError",
        "Ledger",
        "LimitError",
        "Message",
        "OutageCommsError",
        "Outcome",
        "Plan",
        "Recipient",
        "Result",
        "RunControl",
        "TemplateError",
        "__version__",
        "load_config",
    ]


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    shutil.copyfile(ROOT / "channels.yaml", tmp_path / "channels.yaml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def test_script_sends_to_sandbox_and_reads_the_result(shop: Path) -> None:
    script = textwrap.dedent(
        """
        from outagecomms import Announcer, Incident
        announcer = Announcer.from_config("channels.yaml")
        incident = Incident.load("examples/incident-investigating.yaml")
        result = announcer.send(incident, channels=["sms", "email"], sandbox=True)
        print(result.ok, result.exit_code, result.counts["sms"]["sent"], len(result.failures))
        again = announcer.send(incident, channels=["sms", "email"], sandbox=True)
        print(again.nothing_new, again.counts["sms"]["sent"], again.channels["sms"].sent_now)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=shop, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["True 0 10 0", "True 10 0"]
    assert done.stderr == "", "the library never prints"


def test_recipients_iterable_and_counts(shop: Path) -> None:
    announcer = Announcer.from_config(shop / "channels.yaml")
    incident = Incident.load(shop / "examples/incident-investigating.yaml")
    people = (
        Recipient(email=f"p{n}@example.com", phone=f"+1201555{n:04d}", sms_opt_in="yes")
        for n in range(30)
    )
    result = announcer.send(incident, sandbox=True, audience=[*people, Recipient(phone="12")])
    assert set(result.counts) == {"sms", "social", "banner", "email", "team"}
    assert result.counts["sms"]["sent"] == 30 and result.counts["email"]["sent"] == 30
    assert result.counts["social"]["sent"] == 1
    assert result.channels["sms"].skipped_reasons == {"invalid phone": 1}
    assert result.ok and result.exit_code == 0


def test_send_async_and_dry_run(shop: Path) -> None:
    announcer = Announcer.from_config(shop / "channels.yaml")
    incident = Incident.load(shop / "examples/incident-investigating.yaml")
    dry = asyncio.run(announcer.send_async(incident, dry_run=True, channels=["sms"]))
    assert dry.counts["sms"]["pending"] == 10 and dry.counts["sms"]["sent"] == 0
    assert not (shop / ".outagecomms").exists()


def test_bad_input_raises_before_sending(shop: Path) -> None:
    announcer = Announcer.from_config(shop / "channels.yaml")
    incident = Incident.load(shop / "examples/incident-investigating.yaml")
    with pytest.raises(ConfigError, match="did you mean 'sms'"):
        announcer.send(incident, channels=["smss"], sandbox=True)
    with pytest.raises(ConfigError, match="OUTAGECOMMS_CHANNELS__SMS__ACCOUNT_SID"):
        announcer.send(incident, channels=["sms"])
    long = incident.model_copy(update={"summary": "Very long. " * 40})
    with pytest.raises(LimitError, match="over max_segments 2"):
        announcer.send(long, sandbox=True)
    assert not (shop / ".outagecomms").exists(), "nothing may be recorded after a bad input"


def test_a_ledger_that_cannot_be_written_stops_the_channel_not_the_run(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from outagecomms.store import Ledger

    finish = Ledger.finish
    calls = 0

    def failing_finish(self: Ledger, *args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise sqlite3.OperationalError("disk I/O error")
        finish(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Ledger, "finish", failing_finish)
    announcer = Announcer.from_config(shop / "channels.yaml")
    incident = Incident.load(shop / "examples/incident-investigating.yaml")
    people = [Recipient(phone=f"+1201555{n:04d}", sms_opt_in="yes") for n in range(200)]
    result = announcer.send(incident, channels=["sms"], sandbox=True, audience=people)
    sms = result.channels["sms"]
    assert "disk I/O error" in (sms.stopped or "")
    assert not result.ok and result.exit_code == 1
    # It stopped: far from all 200 were written to the outbox, and none went out twice.
    files = sorted((shop / ".outagecomms/outbox/sms").iterdir())
    assert len(files) < 200
    assert len({f.read_text() for f in files}) == len(files)


def test_channels_that_never_wait_still_take_turns(shop: Path) -> None:
    """The sandbox outbox never waits on a network: its channels must still interleave
    (and leave room for Ctrl-C), not run one after the other."""
    announcer = Announcer.from_config(shop / "channels.yaml")
    incident = Incident.load(shop / "examples/incident-investigating.yaml")
    people = [
        Recipient(email=f"p{n}@example.com", phone=f"+1201555{n:04d}", sms_opt_in="yes")
        for n in range(2000)
    ]
    events: list[tuple[str, int]] = []
    result = announcer.send(
        incident,
        channels=["sms", "email"],
        sandbox=True,
        audience=people,
        progress=lambda channel, done, total: events.append((channel, done)),
    )
    assert result.ok
    first_email = next(i for i, (channel, _) in enumerate(events) if channel == "email")
    sms_by_then = max(done for channel, done in events[:first_email] if channel == "sms")
    assert sms_by_then < 1000, "the email channel waited for half the SMS"
