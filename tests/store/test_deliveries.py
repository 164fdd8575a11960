"""Deliveries: planning, claiming, recording, crash recovery by lease, on every engine."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from outagecomms import Outcome

from .conftest import OpenStore

KEY, INCIDENT = "mail-down/investigating", "mail-down"
PEOPLE = [f"+1201555{n:04d}" for n in range(50)]


def test_rows_start_pending_and_are_claimed_once(open_at: OpenStore) -> None:
    with open_at() as ledger:
        ledger.add_pending(KEY, INCIDENT, "sms", PEOPLE)
        ledger.add_pending(KEY, INCIDENT, "sms", PEOPLE)  # planning twice changes nothing
        assert ledger.counts(KEY, "sms")["pending"] == 50
        assert ledger.claim(KEY, "sms", PEOPLE[:10]) == PEOPLE[:10]
        assert ledger.claim(KEY, "sms", PEOPLE[:20]) == PEOPLE[10:20]  # sending rows are held
        assert ledger.counts(KEY, "sms")["sending"] == 20


def test_sent_rows_are_never_claimed_again(open_at: OpenStore) -> None:
    with open_at() as ledger:
        ledger.add_pending(KEY, INCIDENT, "sms", PEOPLE[:3])
        claimed = ledger.claim(KEY, "sms", PEOPLE[:3])
        failed = Outcome.failed("Attempt to send to unsubscribed recipient", code=21610)
        failed.provider = "twilio"
        ledger.finish(
            KEY,
            "sms",
            [(claimed[0], Outcome.sent("SM1")), (claimed[1], failed), (claimed[2], Outcome.sent())],
        )
        counts = ledger.counts(KEY, "sms")
        assert (counts["sent"], counts["failed"], counts["sending"]) == (2, 1, 0)
        # A re-run may retry the failed row, never the sent ones.
        assert ledger.claim(KEY, "sms", PEOPLE[:3]) == [PEOPLE[1]]
        row = next(r for r in ledger.rows(INCIDENT) if r.recipient == PEOPLE[1])
        assert row.attempts == 2
        assert row.error == "21610: Attempt to send to unsubscribed recipient"
        assert row.provider == "twilio"


def test_announcements_and_modes_are_separate(open_at: OpenStore) -> None:
    with open_at("sandbox") as sandbox:
        sandbox.add_pending(KEY, INCIDENT, "sms", PEOPLE[:1])
        sandbox.finish(
            KEY, "sms", [(c, Outcome.sent()) for c in sandbox.claim(KEY, "sms", PEOPLE[:1])]
        )
    with open_at() as live:
        # A rehearsal in the sandbox never counts as a real delivery.
        live.add_pending(KEY, INCIDENT, "sms", PEOPLE[:1])
        assert live.claim(KEY, "sms", PEOPLE[:1]) == PEOPLE[:1]
        live.add_pending(f"{INCIDENT}/resolved", INCIDENT, "sms", PEOPLE[:1])
        assert live.claim(f"{INCIDENT}/resolved", "sms", PEOPLE[:1]) == PEOPLE[:1]
        rows = list(live.rows(INCIDENT))
    assert sorted((r.announcement, r.sandbox) for r in rows) == [
        (KEY, False),
        (KEY, True),
        (f"{INCIDENT}/resolved", False),
    ]


def test_latest_post_for_threads(open_at: OpenStore) -> None:
    with open_at() as ledger:
        assert ledger.latest_post(INCIDENT, "social") is None
        for key, post in ((KEY, "100"), (f"{INCIDENT}/identified", "200")):
            ledger.add_pending(key, INCIDENT, "social", ["-"])
            ledger.finish(
                key, "social", [(c, Outcome.sent(post)) for c in ledger.claim(key, "social", ["-"])]
            )
        assert ledger.latest_post(INCIDENT, "social") == "200"
        assert ledger.latest_post("other", "social") is None


CRASHER = """
import os, sys
from outagecomms.store import open_store
ledger = open_store(sys.argv[1])
people = sys.argv[2:]
ledger.add_pending("mail-down/investigating", "mail-down", "sms", people)
print(len(ledger.claim("mail-down/investigating", "sms", people)), flush=True)
os.kill(os.getpid(), 9)  # a crash right after marking the rows 'sending'
"""


def crash_while_sending(url: str) -> None:
    """A sender killed right after claiming five rows."""
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER, url, *PEOPLE[:5]], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL and proc.stdout.strip() == "5", proc.stderr


def test_a_crashed_senders_rows_become_unknown_once_its_lease_expires(
    url: str, open_at: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTAGECOMMS_LEASE_SECONDS", "0.5")
    crash_while_sending(url)
    with open_at() as ledger:
        # Within the lease the sender may be alive: its rows are in flight.
        assert ledger.recovered == 0 and ledger.counts(KEY, "sms")["sending"] == 5
        time.sleep(0.6)
        assert ledger.recover_crashed() == 5
        assert ledger.counts(KEY, "sms")["unknown"] == 5
        # Unknown rows are not sent again unless the operator asks.
        assert ledger.claim(KEY, "sms", PEOPLE[:5]) == []
        assert ledger.claim(KEY, "sms", PEOPLE[:5], retry_unknown=True) == PEOPLE[:5]


def test_opening_the_store_after_the_lease_recovers_crashed_rows(
    url: str, open_at: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTAGECOMMS_LEASE_SECONDS", "0.3")
    crash_while_sending(url)
    time.sleep(0.4)
    with open_at() as ledger:
        assert ledger.recovered == 5
        row = next(iter(ledger.rows()))
        assert row.state == "unknown" and "may or may not" in (row.error or "")


def test_a_reused_pid_or_a_new_hostname_does_not_keep_rows_sending(
    url: str, open_at: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crashed sender's pid now belongs to us (pid 1 in a container), and the machine
    was renamed: neither matters, only the lease does."""
    monkeypatch.setenv("OUTAGECOMMS_LEASE_SECONDS", "0.3")
    crash_while_sending(url)
    with open_at() as reader:
        pid = reader.fetch("SELECT pid FROM leases")
    assert len(pid) == 1
    monkeypatch.setattr(os, "getpid", lambda: int(pid[0][0]))
    monkeypatch.setattr(socket, "gethostname", lambda: "renamed-host")
    time.sleep(0.4)
    with open_at() as ledger:
        assert ledger.recovered == 5
        assert ledger.counts(KEY, "sms")["sending"] == 0


def test_a_live_sender_keeps_its_rows_past_the_lease_age(
    open_at: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTAGECOMMS_LEASE_SECONDS", "0.3")
    with open_at() as mine, open_at() as other:
        mine.add_pending(KEY, INCIDENT, "sms", PEOPLE[:2])
        mine.claim(KEY, "sms", PEOPLE[:2])
        time.sleep(0.8)  # the heartbeat keeps the lease fresh
        assert other.recover_crashed() == 0
        assert other.counts(KEY, "sms")["sending"] == 2


def test_a_sender_that_closes_gives_its_lease_back(open_at: OpenStore) -> None:
    with open_at() as ledger:
        ledger.add_pending(KEY, INCIDENT, "sms", PEOPLE[:1])
        ledger.claim(KEY, "sms", PEOPLE[:1])
        assert len(ledger.fetch("SELECT owner FROM leases")) == 1
    with open_at() as reader:
        assert reader.fetch("SELECT owner FROM leases") == []


CLAIMER = """
import json, sys
from outagecomms import Outcome
from outagecomms.store import open_store
ledger = open_store(sys.argv[1])
people = json.loads(sys.argv[2])
got = []
for start in range(0, len(people), 7):
    chunk = people[start:start + 7]
    ledger.add_pending("k/investigating", "k", "sms", chunk)
    claimed = ledger.claim("k/investigating", "sms", chunk)
    ledger.finish("k/investigating", "sms", [(c, Outcome.sent()) for c in claimed])
    got += claimed
print(json.dumps(got))
"""


def test_two_processes_never_claim_the_same_row(url: str, open_at: OpenStore) -> None:
    people = [f"p{n}@example.com" for n in range(400)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, url, json.dumps(people)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    claimed = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(claimed[0] + claimed[1]) == sorted(people)
    with open_at() as ledger:
        assert ledger.fetch("SELECT COUNT(*), SUM(attempts) FROM deliveries") == [(400, 400)]


def test_a_transaction_commits_its_calls_together_or_not_at_all(open_at: OpenStore) -> None:
    with open_at() as ledger, open_at() as other:
        ledger.add_pending(KEY, INCIDENT, "sms", PEOPLE[:3])
        with ledger.transaction():
            ledger.claim(KEY, "sms", PEOPLE[:1])
            ledger.finish(KEY, "sms", [(PEOPLE[0], Outcome.sent("SM1"))])
            ledger.claim(KEY, "sms", PEOPLE[1:2])  # nested calls join the outer transaction
            assert other.counts(KEY, "sms")["pending"] == 3, "nothing visible before the commit"
        counts = other.counts(KEY, "sms")
        assert (counts["pending"], counts["sending"], counts["sent"]) == (1, 1, 1)
        with pytest.raises(RuntimeError), ledger.transaction():
            ledger.finish(KEY, "sms", [(PEOPLE[1], Outcome.sent("SM2"))])
            raise RuntimeError("crash between two writes")
        assert other.counts(KEY, "sms")["sending"] == 1, "rolled back"
