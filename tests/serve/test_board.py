"""What the status page knows, from the announcements alone."""

from __future__ import annotations

from datetime import timedelta

from outagecomms.serve.board import build_board

from .records import NOW, record


def board(*records, history_days=90):
    return build_board(records, now=NOW, history_days=history_days)


def test_nothing_sent_is_all_operational():
    empty = board()
    assert (empty.indicator, empty.description) == ("none", "All systems operational")
    assert empty.open == () and empty.recent == ()
    assert empty.updated_at == NOW


def test_planned_announcements_are_not_shown():
    planned = board(record("a", sent=None))
    assert planned.incidents == {} and planned.indicator == "none"


def test_worst_open_severity_wins_and_newest_update_first():
    b = board(
        record("minor-one", severity="minor", sent=NOW - timedelta(hours=1)),
        record("critical-one", severity="critical", sent=NOW - timedelta(hours=3)),
        record("major-one", severity="major", sent=NOW - timedelta(hours=2)),
    )
    assert b.indicator == "critical"
    assert b.description == "Major service outage"
    assert [i.id for i in b.open] == ["minor-one", "major-one", "critical-one"]


def test_an_incident_is_open_until_resolved_and_its_timeline_is_newest_first():
    sent = [NOW - timedelta(hours=h) for h in (3, 2, 1)]
    b = board(
        record("a", "investigating", sent=sent[0]),
        record("a", "identified", sent=sent[1], severity="critical"),
    )
    (incident,) = b.open
    assert [u.status for u in incident.timeline] == ["identified", "investigating"]
    assert incident.latest.severity == "critical" and b.indicator == "critical"
    resolved = board(
        record("a", "investigating", sent=sent[0]),
        record("a", "resolved", sent=sent[2]),
    )
    assert resolved.open == () and resolved.indicator == "none"
    assert [i.id for i in resolved.recent] == ["a"]
    assert resolved.incidents["a"].resolved_at == sent[2]


def test_a_new_wave_after_resolved_reopens_the_incident():
    b = board(
        record("a", "investigating", sent=NOW - timedelta(hours=3)),
        record("a", "resolved", sent=NOW - timedelta(hours=2)),
        record("a", "investigating", update="again", sent=NOW - timedelta(hours=1)),
    )
    assert [i.id for i in b.open] == ["a"] and b.recent == ()


def test_resolved_incidents_leave_the_list_after_history_days():
    b = board(
        record("recent", "resolved", sent=NOW - timedelta(days=29)),
        record("old", "resolved", sent=NOW - timedelta(days=31)),
        history_days=30,
    )
    assert [i.id for i in b.recent] == ["recent"]
    assert "old" in b.incidents  # still reachable on its own page


def test_updates_are_ordered_by_when_they_went_out_not_by_recording():
    b = board(
        record("a", "identified", sent=NOW - timedelta(hours=1)),
        record("a", "investigating", sent=NOW - timedelta(hours=2)),
    )
    assert [u.status for u in b.incidents["a"].updates] == ["investigating", "identified"]
    assert [u.status for _, u in b.listed_updates()] == ["identified", "investigating"]
