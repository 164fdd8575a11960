"""A SQLite ledger locked by another process: the run waits for it without freezing, and a
SIGTERM or Ctrl-C still stops it within seconds (exit 130); a re-run then sends it all."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import CLI, Run
from .test_faults import finish
from .test_ledger_errors import LEDGER

RESOLVED = "examples/incident-resolved.yaml"
CLI_SEND = ("send", RESOLVED, "--sandbox", "--yes")


@pytest.fixture
def ledger_in_use(run: Run, shop: Path) -> Iterator[sqlite3.Connection]:
    """A ledger with one announcement, whose write lock another process holds."""
    first = run("send", "examples/incident-investigating.yaml", "--sandbox", "--yes", cwd=shop)
    assert first.returncode == 0, first.stdout + first.stderr
    other = sqlite3.connect(shop / LEDGER, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    yield other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def start(shop: Path) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("OUTAGECOMMS_")}
    return subprocess.Popen(
        [*CLI, *CLI_SEND],
        cwd=shop,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean, "COLUMNS": "200", "NO_COLOR": "1"},
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_a_run_waiting_for_a_locked_ledger_within_seconds(
    run: Run,
    shop: Path,
    ledger_in_use: sqlite3.Connection,
    signum: int,
) -> None:
    sending = start(shop)
    time.sleep(3.0)  # started, planned on screen, waiting for the ledger
    assert sending.poll() is None, "it waits for the lock rather than failing"
    signalled = time.monotonic()
    sending.send_signal(signum)
    stdout, stderr = finish(sending, 30)
    took = time.monotonic() - signalled
    assert sending.returncode == 130, stdout + stderr
    assert took < 5.0, f"took {took:.1f}s to stop"
    assert "Traceback" not in stderr
    assert not list((shop / ".outagecomms" / "outbox").rglob("*resolved*"))

    ledger_in_use.execute("ROLLBACK")
    again = run(*CLI_SEND, cwd=shop)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "every message was delivered" in again.stdout


def test_a_run_waits_for_a_lock_released_soon_and_completes(
    run: Run,
    shop: Path,
    ledger_in_use: sqlite3.Connection,
) -> None:
    releaser = threading.Timer(2.0, lambda: ledger_in_use.execute("COMMIT"))
    releaser.start()
    try:
        done = run(*CLI_SEND, cwd=shop)
    finally:
        releaser.join()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every message was delivered" in done.stdout
