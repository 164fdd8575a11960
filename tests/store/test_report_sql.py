"""The impact report's numbers (DESIGN §14) from a ledger with known content, on every
engine: each count, percentile, reach and opt-out is worked out by hand below."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from outagecomms.models import Incident
from outagecomms.report import UnknownIncidentError, build_report
from outagecomms.run.planning import announcement_record
from outagecomms.store import Store

from .conftest import OpenStore

INC = "inc-1"
INVESTIGATING, RESOLVED = f"{INC}/investigating", f"{INC}/resolved"
KINDS = {"sms": "sms", "email": "email", "social": "social", "banner": "banner"}


def _at(base: str, seconds: float) -> str:
    """``base`` (``2026-11-22T09:40:00``, UTC) plus ``seconds``, as the store writes times."""
    moment = datetime.fromisoformat(base).replace(tzinfo=UTC) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


T0 = "2026-11-22T09:40:00"  # the investigating wave's rows were planned at T0
T1 = "2026-11-22T12:00:00"  # the resolved wave's


def _row(
    store: Store,
    announcement: str,
    channel: str,
    recipient: str,
    state: str,
    *,
    planned: str,
    sent_after: float | None = None,
    person: str | None = None,
    error: str | None = None,
    mode: str = "live",
    incident: str = INC,
) -> None:
    sent_at = None if sent_after is None else _at(planned, sent_after)
    store.execute(
        "INSERT INTO deliveries (mode, announcement, incident, channel, recipient, state, error,"
        " attempts, created_at, updated_at, sent_at, person) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            mode,
            announcement,
            incident,
            channel,
            recipient,
            state,
            error,
            1,
            _at(planned, 0),
            _at(planned, 0),
            sent_at,
            person,
        ),
    )


def _suppression(store: Store, address: str, source: str, created_at: str) -> None:
    store.execute(
        "INSERT INTO suppressions (address, kind, source, reason, created_at) VALUES (?,?,?,?,?)",
        (address, "email", source, None, created_at),
    )


def _incident(status: str, title: str) -> Incident:
    return Incident.model_validate(
        {
            "id": INC,
            "title": title,
            "status": status,
            "severity": "major",
            "started_at": "2026-11-22T09:30:00Z",
            "summary": "Mail is slow.",
        }
    )


def _ledger(store: Store) -> None:
    """The known content (see each comment for what it contributes)."""
    for status, title, first in (
        ("investigating", "Email is slow", _at(T0, 0.5)),
        ("resolved", "Email is back", _at(T1, 2.25)),
    ):
        store.record_announcement(announcement_record(_incident(status, title), sandbox=False))
        store.mark_announcement_sent(f"{INC}/{status}", first)
    # email, investigating: p0..p9 sent 1.5 .. 10.5 s after T0;
    # p0-p5 delivered, p6 undelivered (not reached), p7-p9 sent.
    for i in range(10):
        state = "delivered" if i < 6 else "undelivered" if i == 6 else "sent"
        _row(
            store,
            INVESTIGATING,
            "email",
            f"p{i}@x.com",
            state,
            planned=T0,
            sent_after=i + 1.5,
            person=f"p{i}@x.com",
        )
    _row(store, INVESTIGATING, "email", "p10@x.com", "failed", planned=T0, person="p10@x.com")
    _row(store, INVESTIGATING, "email", "p11@x.com", "unknown", planned=T0, person="p11@x.com")
    _row(store, INVESTIGATING, "email", "p12@x.com", "pending", planned=T0, person="p12@x.com")
    for address, reason in (
        ("bad1", "invalid email"),
        ("bad2", "invalid email"),
        ("q@x.com", "suppressed (one-click)"),
    ):
        _row(store, INVESTIGATING, "email", address, "skipped", planned=T0, error=reason)
    # sms, investigating: the phones of p0-p3 sent 20..23 s after T0, p4's failed,
    # three audience rows without an opt-in.
    for i in range(4):
        _row(
            store,
            INVESTIGATING,
            "sms",
            f"+1201555010{i}",
            "sent",
            planned=T0,
            sent_after=20 + i,
            person=f"p{i}@x.com",
        )
    _row(store, INVESTIGATING, "sms", "+12015550104", "failed", planned=T0, person="p4@x.com")
    for i in range(3):
        _row(
            store,
            INVESTIGATING,
            "sms",
            f"+1201555020{i}",
            "skipped",
            planned=T0,
            error="no sms opt-in",
        )
    # social: one post 0.5 s after T0 (a broadcast: nobody's person).
    _row(store, INVESTIGATING, "social", "-", "sent", planned=T0, sent_after=0.5)
    # resolved: email to p0-p3 2.25/4.25/6.25/8.25 s after T1; an SMS to someone only
    # reachable by phone (p20) 30 s after T1.
    for i in range(4):
        _row(
            store,
            RESOLVED,
            "email",
            f"p{i}@x.com",
            "sent",
            planned=T1,
            sent_after=2.25 + 2 * i,
            person=f"p{i}@x.com",
        )
    _row(
        store,
        RESOLVED,
        "sms",
        "+12015550120",
        "sent",
        planned=T1,
        sent_after=30,
        person="+12015550120",
    )
    # Noise that must not count: a sandbox rehearsal and another incident.
    _row(
        store,
        INVESTIGATING,
        "email",
        "p0@x.com",
        "sent",
        planned=T0,
        sent_after=0.1,
        mode="sandbox",
        person="p0@x.com",
    )
    _row(
        store,
        "other/investigating",
        "email",
        "z@x.com",
        "sent",
        planned=T0,
        sent_after=0.1,
        incident="other",
        person="z@x.com",
    )
    # Opt-outs: from the start (09:30) to 7 days after the resolution (12:00:02.25 on the 22nd).
    _suppression(store, "early@x.com", "manual", "2026-11-22T09:20:00.000000Z")  # before
    _suppression(store, "a@x.com", "sms-stop", "2026-11-22T09:35:00.000000Z")
    _suppression(store, "b@x.com", "one-click", "2026-11-25T08:00:00.000000Z")
    _suppression(store, "c@x.com", "one-click", "2026-11-29T12:00:02.000000Z")  # just within
    _suppression(store, "d@x.com", "sendgrid-spamreport", "2026-11-29T12:00:03.000000Z")  # after


def test_every_number_of_the_report(open_at: OpenStore) -> None:
    with open_at() as store:
        _ledger(store)
        report = build_report(store, INC, kinds=KINDS)
    assert report.as_json() == {
        "incident": {
            "id": INC,
            "title": "Email is back",
            "severity": "major",
            "started_at": "2026-11-22T09:30:00Z",
            "resolved_at": _at(T1, 2.25),
        },
        "announcements": [
            {
                "key": INVESTIGATING,
                "status": "investigating",
                "update": None,
                "first_sent_at": _at(T0, 0.5),
                "last_sent_at": _at(T0, 23),
            },
            {
                "key": RESOLVED,
                "status": "resolved",
                "update": None,
                "first_sent_at": _at(T1, 2.25),
                "last_sent_at": _at(T1, 30),
            },
        ],
        "channels": {
            # offsets 20, 21, 22, 23 and 30 s: nearest ranks 1, ceil(2.5)=3, ceil(4.75)=5
            "sms": {
                "kind": "sms",
                "planned": 6,
                "sent": 5,
                "delivered": 0,
                "undelivered": 0,
                "failed": 1,
                "unknown": 0,
                "pending": 0,
                "skipped": {"no sms opt-in": 3},
                "first_sent_after_s": 20.0,
                "p50_sent_after_s": 22.0,
                "p95_sent_after_s": 30.0,
            },
            # 14 sent: 1.5 2.25 2.5 3.5 4.25 4.5 5.5 | 6.25 6.5 7.5 8.25 8.5 9.5 10.5;
            # ranks 1, ceil(7)=7, ceil(13.3)=14
            "email": {
                "kind": "email",
                "planned": 17,
                "sent": 14,
                "delivered": 6,
                "undelivered": 1,
                "failed": 1,
                "unknown": 1,
                "pending": 1,
                "skipped": {"invalid email": 2, "suppressed (one-click)": 1},
                "first_sent_after_s": 1.5,
                "p50_sent_after_s": 5.5,
                "p95_sent_after_s": 10.5,
            },
            "social": {
                "kind": "social",
                "planned": 1,
                "sent": 1,
                "delivered": 0,
                "undelivered": 0,
                "failed": 0,
                "unknown": 0,
                "pending": 0,
                "skipped": {},
                "first_sent_after_s": 0.5,
                "p50_sent_after_s": 0.5,
                "p95_sent_after_s": 0.5,
            },
        },
        # p0-p5 and p7-p9 by email (p6's was undelivered), p0-p3 again by SMS, p20 by SMS.
        "reach": 10,
        "opt_outs": {"total": 3, "by_source": {"one-click": 2, "sms-stop": 1}},
    }
    json.dumps(report.as_json())  # plain JSON types only


def test_the_sandbox_rehearsal_is_reported_apart(open_at: OpenStore) -> None:
    with open_at() as store:
        _ledger(store)
        rehearsal = build_report(store, INC, sandbox=True, kinds=KINDS)
    assert list(rehearsal.channels) == ["email"]
    assert rehearsal.channels["email"].sent == 1 and rehearsal.reach == 1
    assert rehearsal.incident.title is None  # no sandbox announcement was recorded


def test_timeline_buckets_count_every_message_sent(open_at: OpenStore) -> None:
    with open_at() as store:
        _ledger(store)
        report = build_report(store, INC, kinds=KINDS, timeline=True)
    # The incident's messages span 2h20m: minute buckets.
    assert report.timeline["email"] == [
        ("2026-11-22T09:40:00Z", 10),
        ("2026-11-22T12:00:00Z", 4),
    ]
    assert report.timeline["sms"] == [("2026-11-22T09:40:00Z", 4), ("2026-11-22T12:00:00Z", 1)]
    assert sum(n for points in report.timeline.values() for _, n in points) == 20


def test_an_incident_that_is_not_in_the_ledger(open_at: OpenStore) -> None:
    with open_at() as store:
        _ledger(store)
        with pytest.raises(UnknownIncidentError, match="did you mean 'inc-1'"):
            build_report(store, "inc-2", kinds=KINDS)
        with pytest.raises(UnknownIncidentError, match="only sent for real"):
            build_report(store, "other", sandbox=True, kinds=KINDS)


def test_times_across_midnight_and_a_month_end(open_at: OpenStore) -> None:
    """A wave planned just before midnight on the last day of November."""
    planned = "2026-11-30T23:59:59"
    with open_at() as store:
        for i, after in enumerate((0.75, 1.5, 86_400 + 3.25)):
            _row(
                store,
                f"{INC}/monitoring",
                "email",
                f"m{i}@x.com",
                "sent",
                planned=planned,
                sent_after=after,
                person=f"m{i}@x.com",
            )
        email = build_report(store, INC, kinds=KINDS).channels["email"]
    assert email.first_sent_after_s == 0.75
    assert email.p50_sent_after_s == 1.5
    assert email.p95_sent_after_s == 86_403.25
