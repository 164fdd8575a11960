"""The tables beside the deliveries: announcements, suppressions, receipts, webhook events,
paused campaigns, and ``fetch`` for reports; on every engine."""

from __future__ import annotations

import pytest

from outagecomms import Outcome
from outagecomms.models import Incident
from outagecomms.run.planning import announcement_record

from .conftest import OpenStore

KEY, INCIDENT = "mail-down/investigating", "mail-down"


def incident(**changes: object) -> Incident:
    fields = {
        "id": INCIDENT,
        "title": "Email delivery delayed",
        "summary": "Some emails arrive late.",
        "started_at": "2026-03-02T14:05:00+01:00",
        "affected": ["Email", "Webmail"],
        **changes,
    }
    return Incident.model_validate(fields)


def test_an_announcement_is_recorded_once_and_never_overwritten(open_at: OpenStore) -> None:
    with open_at() as store:
        assert store.announcement(KEY) is None
        first = announcement_record(incident(), sandbox=False)
        store.record_announcement(first)
        store.record_announcement(announcement_record(incident(summary="Changed"), sandbox=False))
        got = store.announcement(KEY)
        assert got == first
        assert got is not None and got.content == first.content
        assert got.started_at == "2026-03-02T13:05:00Z" and got.affected == ["Email", "Webmail"]
        assert got.first_sent_at is None
        store.mark_announcement_sent(KEY, "2026-03-02T13:06:00.000000Z")
        store.mark_announcement_sent(KEY, "2026-03-02T13:09:00.000000Z")  # the first one stays
        got = store.announcement(KEY)
        assert got is not None and got.first_sent_at == "2026-03-02T13:06:00.000000Z"


def test_content_differs_when_a_message_field_changes_and_only_then(open_at: OpenStore) -> None:
    same = announcement_record(incident(), sandbox=False).content
    assert announcement_record(incident(), sandbox=True).content == same
    assert announcement_record(incident(status="identified"), sandbox=False).content == same
    for change in ({"summary": "Other"}, {"eta": "2026-03-02T18:00:00Z"}, {"affected": ["X"]}):
        assert announcement_record(incident(**change), sandbox=False).content != same


def test_announcements_are_per_mode_and_listed_oldest_first(open_at: OpenStore) -> None:
    with open_at() as live, open_at("sandbox") as sandbox:
        sandbox.record_announcement(announcement_record(incident(), sandbox=True))
        assert live.announcement(KEY) is None
        live.record_announcement(announcement_record(incident(), sandbox=False))
        live.record_announcement(announcement_record(incident(status="resolved"), sandbox=False))
        live.record_announcement(announcement_record(incident(id="other"), sandbox=False))
        assert [a.key for a in live.announcements(INCIDENT)] == [KEY, f"{INCIDENT}/resolved"]
        assert len(live.announcements()) == 3
        only = sandbox.announcements()
        assert [(a.key, a.sandbox) for a in only] == [(KEY, True)]


def test_suppressions_are_one_list_keeping_the_first_source(open_at: OpenStore) -> None:
    with open_at() as live, open_at("sandbox") as sandbox:
        added = live.add_suppressions(
            [
                ("Ann@Example.COM", "email", "one-click", None),
                ("+12015550123", "sms", "STOP", "replied STOP"),
            ]
        )
        assert added == 2
        assert sandbox.add_suppressions([("ann@example.com", "email", "import", "csv")]) == 0
        found = sandbox.suppressed(["ANN@example.com", "+12015550123", "bob@example.com"])
        assert set(found) == {"ANN@example.com", "+12015550123"}
        assert found["ANN@example.com"].source == "one-click"
        assert found["ANN@example.com"].address == "ann@example.com"
        assert found["+12015550123"].reason == "replied STOP"
        assert {s.address for s in live.suppressions()} == {"ann@example.com", "+12015550123"}
        assert live.remove_suppressions(["ann@EXAMPLE.com", "nobody@example.com"]) == 1
        assert [s.address for s in sandbox.suppressions()] == ["+12015550123"]


def sent_rows(store: object, recipients: list[str], ids: list[str]) -> None:
    store.add_pending(KEY, INCIDENT, "sms", recipients)  # type: ignore[attr-defined]
    claimed = store.claim(KEY, "sms", recipients)  # type: ignore[attr-defined]
    store.finish(  # type: ignore[attr-defined]
        KEY, "sms", [(c, Outcome.sent(i)) for c, i in zip(claimed, ids, strict=True)]
    )


def test_receipts_follow_the_rules_and_are_logged(open_at: OpenStore) -> None:
    people = ["+12015550001", "+12015550002", "+12015550003"]
    with open_at() as store:
        sent_rows(store, people, ["SM1", "SM2", "SM3"])
        at = "2026-03-02T13:10:00.000000Z"
        assert store.apply_receipt(
            provider_id="SM1", state="undelivered", error="30003: Unreachable", event="u", at=at
        )
        assert store.apply_receipt(
            provider_id="SM1", state="delivered", error=None, event="d", at=at
        )
        # delivered never changes again
        assert store.apply_receipt(
            provider_id="SM1", state="undelivered", error="late", event="u2", at=at
        )
        assert store.apply_receipt(
            row=(KEY, "sms", people[1]), state="delivered", error=None, event="d", at=at
        )
        assert not store.apply_receipt(
            provider_id="SM404", state="delivered", error=None, event="d", at=at
        )
        states = store.states(KEY, "sms", people)
        assert states == {people[0]: "delivered", people[1]: "delivered", people[2]: "sent"}
        assert [r["event"] for r in store.receipts(people[0])] == ["u", "d", "u2"]
        assert store.receipts(people[0])[0] == {
            "announcement": KEY,
            "channel": "sms",
            "event": "u",
            "detail": "30003: Unreachable",
            "at": at,
        }
        with pytest.raises(ValueError):
            store.apply_receipt(provider_id="SM3", state="sent", error=None, event="x", at=at)


def test_receipts_leave_pending_failed_and_sandbox_rows_alone(open_at: OpenStore) -> None:
    with open_at() as live, open_at("sandbox") as sandbox:
        sent_rows(sandbox, ["+12015550009"], ["SBX1"])
        live.add_pending(KEY, INCIDENT, "sms", ["+12015550010"])
        at = "2026-03-02T13:10:00.000000Z"
        assert not live.apply_receipt(
            provider_id="SBX1", state="delivered", error=None, event="d", at=at
        )
        assert live.apply_receipt(
            row=(KEY, "sms", "+12015550010"), state="delivered", error=None, event="d", at=at
        )
        assert live.counts(KEY, "sms")["pending"] == 1


def test_webhook_events_are_new_only_once(open_at: OpenStore) -> None:
    with open_at() as store, open_at("sandbox") as other:
        assert store.first_time_event("sg-1")
        assert not store.first_time_event("sg-1")
        assert not other.first_time_event("sg-1")
        assert other.first_time_event("sg-2")


def test_paused_campaigns_are_recorded_per_incident(open_at: OpenStore) -> None:
    with open_at() as store:
        store.record_paused(INCIDENT, "c1", "Spring sale", "2026-03-02T15:00:00Z")
        store.record_paused(INCIDENT, "c2", "Newsletter", None)
        store.record_paused("other", "c3", "Other", None)
        assert [c.id for c in store.paused(INCIDENT)] == ["c1", "c2"]
        store.mark_resumed(INCIDENT, "c1", "2026-03-02T16:00:00.000000Z")
        first = store.paused(INCIDENT)[0]
        assert (first.name, first.send_at, first.resumed_at) == (
            "Spring sale",
            "2026-03-02T15:00:00Z",
            "2026-03-02T16:00:00.000000Z",
        )
        assert store.paused("nobody") == []


def test_fetch_runs_portable_sql_with_question_marks(open_at: OpenStore) -> None:
    with open_at() as store:
        sent_rows(store, ["+12015550001", "+12015550002"], ["SM1", "SM2"])
        assert store.fetch(
            "SELECT recipient, state FROM deliveries WHERE channel=? AND provider_id<>?"
            " ORDER BY recipient",
            ("sms", "SM1"),
        ) == [("+12015550002", "sent")]
        assert store.fetch("SELECT COUNT(*) FROM deliveries") == [(2,)]


def test_skip_marks_unsent_rows_with_the_reason(open_at: OpenStore) -> None:
    with open_at() as store:
        sent_rows(store, ["+12015550001"], ["SM1"])
        store.add_pending(KEY, INCIDENT, "sms", ["+12015550002"])
        store.skip(
            KEY,
            "sms",
            [("+12015550001", "suppressed (STOP)"), ("+12015550002", "suppressed (STOP)")],
        )
        rows = {r.recipient: r for r in store.rows()}
        assert rows["+12015550001"].state == "sent"
        assert (rows["+12015550002"].state, rows["+12015550002"].error) == (
            "skipped",
            "suppressed (STOP)",
        )


def test_defer_keeps_unsent_rows_pending_with_the_reason(open_at: OpenStore) -> None:
    with open_at() as store:
        sent_rows(store, ["+12015550001"], ["SM1"])
        store.add_pending(KEY, INCIDENT, "sms", ["+12015550002", "+12015550003"])
        assert store.claim(KEY, "sms", ["+12015550003"]) == ["+12015550003"]
        store.finish(KEY, "sms", [("+12015550003", Outcome.failed("boom", code=500))])
        why = "quiet hours until 2026-11-30T08:00:00-05:00"
        store.defer(
            KEY, "sms", [(r, why) for r in ("+12015550001", "+12015550002", "+12015550003")]
        )
        rows = {r.recipient: (r.state, r.error) for r in store.rows()}
        assert rows == {
            "+12015550001": ("sent", None),
            "+12015550002": ("pending", why),
            "+12015550003": ("pending", why),
        }
        # Deferred rows are claimed as any pending row once the time is right.
        assert store.claim(KEY, "sms", ["+12015550002"]) == ["+12015550002"]
