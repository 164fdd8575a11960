"""Several ``send`` processes on one announcement against one PostgreSQL ledger (DESIGN §17):
every message delivered exactly once (counted at the fakes), the work shared; a sender
killed mid-run leaves its in-flight rows ``sending`` only until its lease expires, and
``--retry-unknown`` completes them. And ``ledger --format json`` has one shape on both
engines."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import FakeProviders
from tests.pg import PostgresServer

from .conftest import Run
from .test_faults import assert_everyone_reached_once, finish, ledger, prepare, start_send
from .test_kill_resume import wait_until
from .test_providers import INVESTIGATING, ROOT

PEOPLE = 400
LEASE_SECONDS = 2.0


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


@pytest.fixture
def fakes() -> Iterator[FakeProviders]:
    with FakeProviders() as providers:
        yield providers


def sent_now(stdout: str, channel: str) -> int:
    """The "Sent now" cell of a channel in a send's summary table."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│")]
        if len(cells) > 3 and cells[1] == channel:
            return int(cells[3])
    raise AssertionError(f"no summary row for {channel}:\n{stdout}")


def in_flight(url: str, pid: int) -> int:
    """Rows the sender with process id ``pid`` holds in ``sending`` right now."""
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM deliveries JOIN leases USING (owner)"
                " WHERE leases.pid = %s AND state = 'sending'",
                (pid,),
            ).fetchone()
    except psycopg.errors.UndefinedTable:  # not created yet
        return 0
    return int(row[0]) if row else 0


def test_three_senders_share_the_work_and_reach_everyone_once(
    run: Run, shop: Path, fakes: FakeProviders, postgres: PostgresServer
) -> None:
    env, phones, emails = prepare(shop, fakes, people=PEOPLE)
    env["OUTAGECOMMS_LEDGER"] = postgres.new_database()
    fakes.twilio.latency = 0.2
    senders = [start_send(shop, env) for _ in range(3)]
    outputs = [finish(p, timeout=180) for p in senders]
    for process, (stdout, stderr) in zip(senders, outputs, strict=True):
        assert process.returncode in (0, 1), stdout + stderr
        assert "Traceback" not in stderr

    assert_everyone_reached_once(fakes, phones, emails)
    shares = [sent_now(stdout, "sms") for stdout, _ in outputs]
    assert sum(shares) == len(phones)
    assert all(share > 0 for share in shares), f"work not shared: {shares}"
    rows = ledger(run, shop, env)
    assert {r["state"] for channel in rows.values() for r in channel.values()} == {"sent"}
    assert all(r["attempts"] == 1 for channel in rows.values() for r in channel.values())

    fakes.reset()
    again = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
    assert again.returncode == 0 and "Nothing new to send" in again.stdout, again.stdout
    assert all(not fake.requests for fake in fakes.all)


def test_a_killed_sender_leaves_unknown_rows_after_its_lease_and_retry_unknown_completes(
    run: Run, shop: Path, fakes: FakeProviders, postgres: PostgresServer
) -> None:
    env, phones, _ = prepare(shop, fakes, people=PEOPLE)
    env["OUTAGECOMMS_LEDGER"] = postgres.new_database()
    env["OUTAGECOMMS_LEASE_SECONDS"] = str(LEASE_SECONDS)
    fakes.twilio.latency = 0.3
    senders = [start_send(shop, env, "--channel", "sms") for _ in range(3)]
    # Killed while it has messages in flight (its own, found through its lease).
    victim = senders[0]
    wait_until(lambda: in_flight(env["OUTAGECOMMS_LEDGER"], victim.pid) >= 5, victim, 60)
    victim.kill()
    finish(senders[0], 30)
    for process in senders[1:]:
        stdout, stderr = finish(process, timeout=180)
        assert process.returncode in (0, 1), stdout + stderr
        assert "Traceback" not in stderr

    # The survivors sent everything but the killed sender's rows in flight: still
    # "sending" (its lease may still be fresh), never sent twice.
    received = Counter(m["to"] for m in fakes.twilio.messages)
    assert max(received.values()) == 1
    time.sleep(LEASE_SECONDS + 0.5)
    rows = ledger(run, shop, env)["sms"]
    unknown = {to for to, r in rows.items() if r["state"] == "unknown"}
    assert 5 <= len(unknown) <= 20, "its messages in flight, at most 20"
    assert {to for to, r in rows.items() if r["state"] == "sent"} == phones - unknown
    assert all("may or may not" in rows[to]["error"] for to in unknown)

    fakes.reset()
    asked = run(
        "send", INVESTIGATING, "--yes", "--channel", "sms", "--retry-unknown", cwd=shop, env=env
    )
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert sorted(m["to"] for m in fakes.twilio.messages) == sorted(unknown)
    rows = ledger(run, shop, env)["sms"]
    assert {r["state"] for r in rows.values()} == {"sent"}


def test_ledger_json_has_one_shape_on_both_engines(
    run: Run, shop: Path, fakes: FakeProviders, postgres: PostgresServer
) -> None:
    env, _, _ = prepare(shop, fakes, people=20)
    shapes = []
    for url in (f"sqlite:///{shop / 'ledger.db'}", postgres.new_database()):
        engine = {**env, "OUTAGECOMMS_LEDGER": url}
        fakes.reset()  # the fake X refuses a second post with the same text
        sent = run("send", INVESTIGATING, "--yes", cwd=shop, env=engine)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        shown = run("ledger", "--format", "json", cwd=shop, env=engine)
        rows = json.loads(shown.stdout)
        shapes.append(
            (
                len(rows),
                [sorted(row) for row in rows],
                [{k: type(v).__name__ for k, v in row.items()} for row in rows],
                [(r["channel"], r["recipient"], r["state"], r["attempts"]) for r in rows],
            )
        )
        for row in rows:
            assert row["updated_at"].endswith("Z") and row["created_at"].endswith("Z")
    assert shapes[0] == shapes[1]


def test_losing_the_database_mid_run_stops_it_and_a_re_run_resumes(
    run: Run, shop: Path, fakes: FakeProviders, postgres: PostgresServer
) -> None:
    postgres.add_role("lossy", "lossy-pass-42")
    url = postgres.new_database(user="lossy:lossy-pass-42")
    database = url.rsplit("/", 1)[1]
    postgres.admin(f"ALTER DATABASE {database} OWNER TO lossy")
    env, phones, _ = prepare(shop, fakes, people=PEOPLE)
    env |= {"OUTAGECOMMS_LEDGER": url, "OUTAGECOMMS_LEASE_SECONDS": str(LEASE_SECONDS)}
    fakes.twilio.latency = 0.3
    sending = start_send(shop, env, "--channel", "sms")
    wait_until(lambda: len(fakes.twilio.messages) >= 40, sending, seconds=60)
    # The database goes away: no new connection, and the sender's are cut.
    postgres.admin(f"ALTER DATABASE {database} CONNECTION LIMIT 0")
    postgres.admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )
    stdout, stderr = finish(sending, 90)
    assert sending.returncode == 1, stdout + stderr
    assert "Traceback" not in stderr and "lossy-pass-42" not in stdout + stderr
    assert "ledger postgresql://lossy:***@" in stderr
    lost_at = len(fakes.twilio.messages)
    assert lost_at < len(phones), "it stopped taking new messages"

    postgres.admin(f"ALTER DATABASE {database} CONNECTION LIMIT -1")
    time.sleep(LEASE_SECONDS + 0.5)
    resumed = run("send", INVESTIGATING, "--yes", "--channel", "sms", cwd=shop, env=env)
    assert resumed.returncode in (0, 1), resumed.stdout + resumed.stderr
    received = Counter(m["to"] for m in fakes.twilio.messages)
    assert max(received.values()) == 1, "nobody twice"
    rows = ledger(run, shop, env)["sms"]
    assert {r["state"] for r in rows.values()} <= {"sent", "unknown"}
    sent = {to for to, r in rows.items() if r["state"] == "sent"}
    assert sent <= set(received) and set(received) <= set(rows)
    assert len(sent) >= len(phones) - 20, "only messages in flight at the loss are unknown"
