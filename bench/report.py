"""Report: ``outagecomms report`` on a 1,000,000-row incident, in seconds and bounded memory.

The ledger is filled directly (a million rows through ``send`` would take the
fanout benchmark's time): two announcements, email and SMS rows in every state
with skip reasons, send times spread over ten minutes, people reachable on both
channels. Then the real command runs once per format; a wrapper process reads
its wall time and peak RSS. The report must sum it all up in the database:
its memory must not grow with the rows.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from outagecomms.models import Incident
from outagecomms.run.planning import announcement_record
from outagecomms.store import open_store

from .common import (
    INCIDENT_ID,
    OUTAGECOMMS,
    Workspace,
    clean_env,
    header,
    line,
    scratch,
    verdict,
)

TARGET_SECONDS = 10.0
# Runs the command and reports its wall time, CPU time and peak RSS (the wrapper's only child).
_WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, capture_output=True, text=True)
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
tail = (done.stdout + done.stderr)[-2000:]
print(json.dumps({"code": done.returncode, "seconds": seconds, "peak_kb": usage.ru_maxrss,
                  "cpu": usage.ru_utime + usage.ru_stime, "tail": tail}))
"""
TARGET_MB = 250
_START = datetime(2026, 11, 22, 9, 40, tzinfo=UTC)
#: (state, skip reason) cycled through the rows: mostly delivered, a little of everything.
_MIX = (
    *(("delivered", None),) * 14,
    *(("sent", None),) * 3,
    ("undelivered", None),
    ("failed", None),
    ("skipped", None),  # the channel's own reason: see _SKIPPED
    ("skipped", "suppressed (one-click)"),
    ("unknown", None),
    ("pending", None),
)


_SKIPPED = {"sms": "no sms opt-in", "email": "opted out"}
#: When each announcement's sending started.
_WAVES = (("investigating", _START), ("resolved", _START + timedelta(hours=3)))


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _rows(n: int) -> Iterator[tuple[object, ...]]:
    """``n`` delivery rows: per announcement, email to everyone and SMS to 2 in 3."""
    waves = [(f"{INCIDENT_ID}/{status}", started) for status, started in _WAVES]
    made = 0
    person = 0
    while made < n:
        for key, started in waves:
            for channel, recipient in (
                ("email", f"person{person}@example.com"),
                ("sms", f"+1201{person:07d}"),
            ):
                if made >= n or (channel == "sms" and person % 3 == 2):
                    continue
                state, reason = _MIX[made % len(_MIX)]
                if state == "skipped" and reason is None:
                    reason = _SKIPPED[channel]
                sent = state in ("delivered", "sent", "undelivered")
                # SMS go out within 3 minutes, email within 10 (SendGrid's fewer requests).
                spread = 180_000 if channel == "sms" else 600_000
                offset = timedelta(milliseconds=made * 7919 % spread) if sent else None
                planned = _stamp(started)
                yield (
                    "live",
                    key,
                    INCIDENT_ID,
                    channel,
                    recipient,
                    state,
                    reason,
                    1,
                    planned,
                    planned,
                    _stamp(started + offset) if offset is not None else None,
                    f"person{person}@example.com",
                )
                made += 1
        person += 1


def _opt_outs(n: int) -> Iterator[tuple[object, ...]]:
    """One opt-out per thousand rows, in the days after the incident, from every source."""
    sources = ("one-click", "sms-stop", "sendgrid-unsubscribe", "one-click", "sendgrid-spamreport")
    for i in range(max(n // 1000, 1)):
        kind = "sms" if sources[i % len(sources)] == "sms-stop" else "email"
        address = f"+1201{i:07d}" if kind == "sms" else f"person{i}@example.com"
        when = _stamp(_START + timedelta(minutes=5 + i * 37 % 4000))
        yield (address, kind, sources[i % len(sources)], None, when)


def fill(workspace: Workspace, n: int) -> None:
    """Create the store and its announcements through the API, then insert ``n`` rows."""
    with open_store(f"sqlite:///{workspace.ledger}", base_dir=workspace.root) as store:
        for status, started in _WAVES:
            incident = Incident(
                id=INCIDENT_ID,
                title="Email delivery is delayed",
                status=status,  # type: ignore[arg-type]
                summary="Our mail server is down.",
                started_at=_START,
            )
            store.record_announcement(announcement_record(incident, sandbox=False))
            store.mark_announcement_sent(incident.key, _stamp(started))
    db = sqlite3.connect(workspace.ledger)
    try:
        with db:
            db.executemany(
                "INSERT INTO suppressions (address, kind, source, reason, created_at)"
                " VALUES (?,?,?,?,?)",
                _opt_outs(n),
            )
            db.executemany(
                "INSERT INTO deliveries (mode, announcement, incident, channel, recipient, state,"
                " error, attempts, created_at, updated_at, sent_at, person)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                _rows(n),
            )
    finally:
        db.close()


def run(n: int = 1_000_000) -> dict[str, object]:
    header(f"report: {n:,}-row incident, each format, wall time and peak RSS")
    results: dict[str, object] = {"n": n}
    with scratch("report") as folder:
        workspace = Workspace(folder / "shop").write()
        started = datetime.now(UTC)
        fill(workspace, n)
        seconds = (datetime.now(UTC) - started).total_seconds()
        size = workspace.ledger.stat().st_size / 1e6
        line("ledger filled", f"{n:,} rows, {size:.0f} MB in {seconds:.1f} s")
        for fmt in ("json", "table", "html"):
            args = [OUTAGECOMMS, "--config", str(workspace.config), "report", INCIDENT_ID]
            args += ["--format", fmt, "--output", str(folder / f"report.{fmt}")]
            done = subprocess.run(
                [sys.executable, "-c", _WRAPPER, *args],
                cwd=workspace.root,
                env=clean_env(),
                capture_output=True,
                text=True,
                check=True,
            )
            measured = json.loads(done.stdout)
            if measured["code"] != 0:
                raise RuntimeError(f"report exited {measured['code']}:\n{measured['tail']}")
            peak_mb = measured["peak_kb"] / 1024
            # CPU time is the verdict's measure: on a shared machine wall time mostly waits.
            ok = measured["cpu"] < TARGET_SECONDS and peak_mb < TARGET_MB
            line(
                f"--format {fmt}",
                f"{measured['seconds']:.1f} s wall, {measured['cpu']:.1f} s CPU, peak RSS "
                f"{peak_mb:.0f} MB (targets < {TARGET_SECONDS:.0f} s CPU, < {TARGET_MB} MB: "
                f"{verdict(ok)})",
            )
            results[fmt] = {
                "seconds": measured["seconds"],
                "cpu": measured["cpu"],
                "peak_mb": peak_mb,
            }
        report = json.loads((folder / "report.json").read_text())
        planned = sum(
            c["planned"] + sum(c["skipped"].values()) for c in report["channels"].values()
        )
        if planned != n:
            raise RuntimeError(f"the report counts {planned:,} rows, the ledger holds {n:,}")
        line("rows counted by the report", f"{planned:,}; reach {report['reach']:,} people")
    return results
