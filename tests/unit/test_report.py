"""The report beyond its SQL (tests/store/test_report_sql.py): people counted once across
channels after a real (sandbox) send, the readable forms of times, and the html's escaping."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from outagecomms import Announcer, Incident, Recipient
from outagecomms.report import (
    AnnouncementLine,
    ChannelReport,
    IncidentLine,
    Report,
    build_report,
    clock,
    duration,
    wave_name,
)
from outagecomms.report_html import render_html
from outagecomms.report_table import report_tables

ROOT = Path(__file__).parents[2]


def test_someone_texted_and_emailed_is_one_person_reached(tmp_path: Path) -> None:
    shutil.copyfile(ROOT / "channels.yaml", tmp_path / "channels.yaml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    announcer = Announcer.from_config(tmp_path / "channels.yaml")
    people = [
        Recipient(email="Ada@Example.com", phone="+12015550123", sms_opt_in=True),
        Recipient(email="grace@example.com"),
        Recipient(phone="+12125550147", sms_opt_in=True),
    ]
    incident = Incident.load(tmp_path / "examples" / "incident-investigating.yaml")
    result = announcer.send(incident, ["sms", "email"], audience=people, sandbox=True)
    assert result.ok
    with announcer.view_store() as store:  # type: ignore[union-attr]
        report = build_report(store, incident.id, sandbox=True, kinds={"sms": "sms"})
    assert report.channels["sms"].sent == 2 and report.channels["email"].sent == 2
    assert report.reach == 3  # four messages, three people
    assert report.channels["email"].kind is None  # not in the kinds given


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.25, "0.2s"), (10.5, "10.5s"), (59.9, "59.9s"), (61, "1m01s"), (7380, "2h03m")],
)
def test_durations_read_like_a_person_writes_them(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


def test_times_and_wave_names() -> None:
    assert clock("2026-11-22T09:41:03.123456Z") == "2026-11-22 09:41:03"
    assert clock(None) == "-"
    assert wave_name("inc-1/monitoring/2", "inc-1") == "monitoring/2"
    assert wave_name("other/resolved", "inc-1") == "other/resolved"


def _hostile_report() -> Report:
    title = "<script>alert('x')</script> & [bold]markup[/bold]"
    return Report(
        incident=IncidentLine("inc-1", title, "major", "2026-11-22T09:30:00Z", None),
        announcements=[AnnouncementLine("inc-1/investigating", "investigating", None, None, None)],
        channels={"email": ChannelReport(kind="email", planned=3, skipped={"<b>odd</b>": 3})},
        reach=0,
        opt_outs={"<i>src</i>": 1},
    )


def test_html_escapes_every_text_and_says_when_nothing_was_sent() -> None:
    html = render_html(_hostile_report())
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<b>odd</b>" not in html and "&lt;b&gt;odd&lt;/b&gt;" in html
    assert "&lt;i&gt;src&lt;/i&gt;" in html
    assert "No message was sent." in html and "not resolved" in html
    assert html.count("<svg") == 1  # the funnel; no time chart without a message sent


def test_table_shows_text_as_written_within_80_columns() -> None:
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(report_tables(_hostile_report()))
    text = console.export_text()
    assert "[bold]markup[/bold]" in text and "<b>odd</b>" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Opt-outs 1 (1 <i>src</i>)" in text
