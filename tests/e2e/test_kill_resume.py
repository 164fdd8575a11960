"""Crash-safe resume: ``send`` killed (SIGKILL) or stopped (SIGINT, SIGTERM) at any moment,
then run again. After the resume nobody has two messages at the fake providers, and
every planned message is ``sent`` or, if it was caught mid-flight, ``unknown``.

The SIGKILL loop runs ``KILL_RESUME_RUNS`` times (5 by default); to hammer it::

    KILL_RESUME_RUNS=20 KILL_RESUME_SEED=7 .venv/bin/python -m pytest -q \\
        tests/e2e/test_kill_resume.py -k random_moment
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeProviders

from .conftest import Run
from .test_faults import (
    assert_everyone_reached_once,
    finish,
    ledger,
    once_each,
    prepare,
    start_send,
)
from .test_providers import INCIDENT_ID, INVESTIGATING, ROOT

KILL_RUNS = int(os.environ.get("KILL_RESUME_RUNS", "5"))
SEED = os.environ.get("KILL_RESUME_SEED", "0")
PEOPLE = 140  # about 120 SMS and 125 emails, plus the post, the banner and the team message
SMS_IN_FLIGHT = 20  # the sms channel's concurrency in channels_yaml
# A killed sender's rows stay "sending" until its lease expires: short here, 30 s by default.
LEASE = {"OUTAGECOMMS_LEASE_SECONDS": "1"}


def outlive_the_lease() -> None:
    time.sleep(float(LEASE["OUTAGECOMMS_LEASE_SECONDS"]) + 0.2)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


@pytest.fixture
def fakes() -> Iterator[FakeProviders]:
    with FakeProviders() as providers:
        yield providers


def received(fakes: FakeProviders) -> int:
    return sum(len(fake.requests) for fake in fakes.all)


def wait_until(
    condition: Callable[[], bool], process: subprocess.Popen[str], seconds: float
) -> None:
    """Poll ``condition`` until it holds or the process ended (or time is up)."""
    deadline = time.monotonic() + seconds
    while not condition() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def rows_in(shop: Path, state: str) -> int:
    """Ledger rows in ``state``, read straight from the SQLite file (only to time a signal)."""
    path = shop / ".outagecomms" / "ledger.db"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return int(
                db.execute("SELECT COUNT(*) FROM deliveries WHERE state=?", (state,)).fetchone()[0]
            )
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def check_ledger_against_fakes(
    rows: dict[str, dict[str, dict[str, Any]]],
    fakes: FakeProviders,
    phones: set[str],
    emails: set[str],
    states: set[str],
) -> None:
    """Nobody reached twice; every row in ``states``; ``sent`` rows are exactly what the
    fakes took, give or take the ``unknown`` ones (which the fakes may or may not have)."""
    texts = once_each([m["to"] for m in fakes.twilio.messages])
    mails = once_each([m["to"] for m in fakes.sendgrid.emails])
    assert len(fakes.x.posts) <= 1 and len(fakes.slack.received) <= 1
    assert set(rows["sms"]) == phones and set(rows["email"]) == emails
    assert set(rows) == {"sms", "email", "social", "banner", "team"}
    for channel, got in (
        ("sms", texts),
        ("email", mails),
        ("social", {"-"} if fakes.x.posts else set()),
        ("team", {"-"} if fakes.slack.received else set()),
    ):
        by_state: dict[str, set[str]] = {}
        for recipient, row in rows[channel].items():
            by_state.setdefault(row["state"], set()).add(recipient)
        assert set(by_state) <= states, f"{channel}: {set(by_state)}"
        sent, unknown = by_state.get("sent", set()), by_state.get("unknown", set())
        assert sent <= got, f"{channel}: marked sent but never received"
        assert got <= sent | unknown, f"{channel}: received but not marked sent"
    sids = {m["to"]: m["sid"] for m in fakes.twilio.messages}
    for to, row in rows["sms"].items():
        if row["state"] == "sent":
            assert row["provider_id"] == sids[to]


# --- kill -9 at random moments -------------------------------------------------------------


@pytest.mark.parametrize("iteration", range(KILL_RUNS))
def test_kill_at_a_random_moment_then_resume_sends_the_rest_once(
    run: Run, shop: Path, fakes: FakeProviders, iteration: int
) -> None:
    rng = random.Random(f"{SEED}-{iteration}")
    env, phones, emails = prepare(shop, fakes, people=PEOPLE)
    env |= LEASE
    for fake in fakes.all:
        fake.latency = 0.02
    # Requests of a whole run, at the least: one per SMS, the post, the team message and
    # one or more for the emails (SendGrid batches). The banner is a file.
    total = len(phones) + 3

    sending = start_send(shop, env)
    if rng.random() < 0.2:
        # Anywhere from start-up (imports, preflight, planning) to the first messages.
        delay = rng.uniform(0.05, 1.5)
        moment = f"after {delay:.2f}s"
        time.sleep(delay)
    else:
        # After a random number of messages: in the thick of the sending.
        target = rng.randint(1, total)
        moment = f"after {target} of {total} requests"
        wait_until(lambda: received(fakes) >= target, sending, seconds=30)
    sending.kill()
    finish(sending, 30)
    killed_after = received(fakes)
    outlive_the_lease()

    resumed = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
    where = f"killed {moment} ({killed_after} received):\n{resumed.stdout}{resumed.stderr}"
    assert "Traceback" not in resumed.stderr, where
    rows = ledger(run, shop, env)
    check_ledger_against_fakes(rows, fakes, phones, emails, states={"sent", "unknown"})
    unknown = sum(r["state"] == "unknown" for channel in rows.values() for r in channel.values())
    # Only messages in flight at the kill can be unknown: at most one SMS per slot, at most
    # the one message of each broadcast channel. (An email request in flight makes all
    # its recipients unknown: how many that is depends on how SendGrid batches are built.)
    unknown_sms = sum(r["state"] == "unknown" for r in rows["sms"].values())
    assert unknown_sms <= SMS_IN_FLIGHT, where
    assert resumed.returncode == (1 if unknown else 0), where
    if unknown:
        assert "caught mid-send by an earlier run" in resumed.stdout, where
    status = shop / "public" / "status.json"
    assert rows["banner"]["-"]["state"] != "sent" or INCIDENT_ID in status.read_text()
    print(f"killed {moment} ({killed_after} received): {unknown} unknown after the resume")


# --- SIGINT / SIGTERM: a graceful stop ------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_gracefully_and_the_next_run_completes(
    run: Run, shop: Path, fakes: FakeProviders, signum: int
) -> None:
    env, phones, emails = prepare(shop, fakes, people=PEOPLE)
    fakes.twilio.latency = 0.3  # the SMS take about two seconds in waves of 20

    sending = start_send(shop, env)
    wait_until(lambda: len(fakes.twilio.messages) >= 20, sending, seconds=30)
    sending.send_signal(signum)
    stdout, stderr = finish(sending, 30)
    assert sending.returncode == 130, stdout + stderr
    assert "Interrupted" in stdout and "Traceback" not in stderr

    rows = ledger(run, shop, env)
    # Requests in flight were let finish: nothing is unknown or left "sending".
    check_ledger_against_fakes(rows, fakes, phones, emails, states={"sent", "pending"})
    sms = Counter(r["state"] for r in rows["sms"].values())
    assert sms["sent"] == len(fakes.twilio.messages) >= 20 and sms["pending"] > 0

    fakes.twilio.latency = 0
    resumed = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_everyone_reached_once(fakes, phones, emails)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_before_sending_exits_130_and_sends_nothing(
    run: Run, shop: Path, fakes: FakeProviders, signum: int
) -> None:
    env, _, _ = prepare(shop, fakes, people=PEOPLE)
    sending = start_send(shop, env)
    time.sleep(0.3)  # still starting up: importing, loading the config
    sending.send_signal(signum)
    stdout, stderr = finish(sending, 30)
    assert sending.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert received(fakes) == 0


def test_a_second_signal_stops_at_once_marking_messages_in_flight_unknown(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    env, phones, _ = prepare(shop, fakes, people=PEOPLE)
    fakes.twilio.latency = 30  # requests in flight would outlast the grace period

    sending = start_send(shop, env, "--channel", "sms")
    wait_until(lambda: rows_in(shop, "sending") >= 20, sending, seconds=30)
    sending.send_signal(signal.SIGINT)
    time.sleep(0.2)
    sending.send_signal(signal.SIGINT)
    # At once: well before the 10 s grace period that the first signal alone grants.
    stdout, stderr = finish(sending, 5)
    assert sending.returncode == 130, stdout + stderr
    rows = ledger(run, shop, env)["sms"]
    states = Counter(r["state"] for r in rows.values())
    assert states["unknown"] == 20 and states["pending"] == len(phones) - 20, states
    assert "unknown" in stdout


def test_after_a_kill_only_retry_unknown_resends_the_unknown_ones(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    env, phones, _ = prepare(shop, fakes, people=PEOPLE)
    env |= LEASE
    fakes.twilio.latency = 2.0

    sending = start_send(shop, env, "--channel", "sms")
    wait_until(lambda: rows_in(shop, "sending") >= 20, sending, seconds=30)
    time.sleep(0.5)  # the 20 requests are on their way: the fake answers each after 2 s
    sending.kill()
    finish(sending, 30)
    outlive_the_lease()
    fakes.twilio.latency = 0

    resumed = run("send", INVESTIGATING, "--yes", "--channel", "sms", cwd=shop, env=env)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert "20 message(s) were caught mid-send" in resumed.stdout
    rows = ledger(run, shop, env)["sms"]
    unknown = {to for to, r in rows.items() if r["state"] == "unknown"}
    assert len(unknown) == 20
    assert {to for to, r in rows.items() if r["state"] == "sent"} == phones - unknown
    # The slow fake takes the killed run's 20 only now; the resume did not send them again.
    deadline = time.monotonic() + 10
    while len(fakes.twilio.messages) < len(phones) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert once_each([m["to"] for m in fakes.twilio.messages]) == phones

    again = run("send", INVESTIGATING, "--yes", "--channel", "sms", cwd=shop, env=env)
    assert again.returncode == 1 and "20 with an unknown outcome were not resent" in again.stdout

    fakes.reset()
    asked = run(
        "send", INVESTIGATING, "--yes", "--channel", "sms", "--retry-unknown", cwd=shop, env=env
    )
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert once_each([m["to"] for m in fakes.twilio.messages]) == unknown
    rows = ledger(run, shop, env)["sms"]
    assert {r["state"] for r in rows.values()} == {"sent"}
    assert all(rows[to]["attempts"] == 2 for to in unknown)
