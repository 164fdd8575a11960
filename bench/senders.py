"""Several senders, one PostgreSQL ledger: ``python -m bench senders``.

1, 2 and 4 ``outagecomms send`` processes are started together on one announcement
against one PostgreSQL ledger (a throwaway server started here, as the tests do) and
a latency-bound fake Twilio (each request answered after ``--latency``, 200 ms by
default; each sender keeps ``--concurrency`` requests in flight, 16 by default). With
the latency as the bound, one sender delivers at most concurrency / latency messages a
second, and N senders should deliver N times that: the scaling ratio is what they
reach. Every run is checked: every ledger row ``sent`` with one attempt, and exactly
one message per phone number at the fake (no duplicate).

Throughput is the aggregate delivery rate, from the first row planned to the last row
finished (read from the ledger), so the process start-ups around it do not count;
wall time from the first exec to the last exit is shown next to it.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .common import (
    OUTAGECOMMS,
    Workspace,
    children_cpu,
    clean_env,
    header,
    line,
    scratch,
    verdict,
    write_audience,
)
from .serve import FakeProcess

TARGET_SCALING = 3.5  # at 4 senders


@dataclass
class Options:
    n: int = 4000
    latency: float = 0.2
    concurrency: int = 16
    senders: tuple[int, ...] = (1, 2, 4)


@dataclass
class Measured:
    senders: int
    span: float
    wall: float
    #: Messages each sender delivered (its "Sent now"), to show the work was shared.
    shares: list[int]
    #: CPU seconds of all senders together (start-up and preflight included).
    cpu: float


def run(options: Options) -> dict[str, float]:
    from tests.pg import postgres_server

    header(
        f"several senders, one PostgreSQL ledger: {options.n:,} SMS, latency "
        f"{options.latency * 1000:g} ms, {options.concurrency} in flight per sender"
    )
    ceiling = options.concurrency / options.latency
    results: dict[str, float] = {}
    with (
        scratch("senders") as folder,
        FakeProcess(options.latency) as fake,
        postgres_server() as server,
    ):
        workspace = Workspace(folder / "shop").write(sms_concurrency=options.concurrency)
        audience = write_audience(folder / "audience.csv", options.n, names=False)
        base = None
        for count in options.senders:
            measured = _once(workspace, fake, server.new_database(), audience, count, options.n)
            rate = options.n / measured.span
            base = base or rate
            results[f"rate_{count}"] = rate
            results[f"scaling_{count}"] = rate / base
            line(
                f"{count} sender(s)",
                f"{rate:6,.0f} msg/s (ceiling {ceiling * count:,.0f}), x{rate / base:.2f}; "
                f"delivery {measured.span:5.1f} s, wall {measured.wall:5.1f} s; "
                f"senders' CPU {measured.cpu / options.n * 1e3:.2f} ms/msg; "
                f"shares {measured.shares}",
            )
    top = max(options.senders)
    scaling = results[f"scaling_{top}"]
    line(
        f"scaling at {top} senders (target >= {TARGET_SCALING})",
        f"x{scaling:.2f}  {verdict(scaling >= TARGET_SCALING)}",
    )
    line("duplicates", "0 (checked at the fake and in the ledger for every run)")
    return results


def _once(
    workspace: Workspace, fake: FakeProcess, url: str, audience: Path, count: int, n: int
) -> Measured:
    """``count`` senders at once on an empty ledger; checked afterwards."""
    fake.reset()
    args = [OUTAGECOMMS, "--config", str(workspace.config), "send", str(workspace.incident)]
    args += ["--yes", "--audience", str(audience), "--channel", "sms"]
    env = clean_env({**fake.env, "OUTAGECOMMS_LEDGER": url})
    cpu = children_cpu()
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            args,
            cwd=workspace.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    outputs = [p.communicate(timeout=3600) for p in procs]
    wall = time.perf_counter() - started
    cpu = children_cpu() - cpu
    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        if proc.returncode not in (0, 1) or "Traceback" in stderr:
            raise RuntimeError(
                f"a sender exited {proc.returncode}\n{stdout[-2000:]}{stderr[-2000:]}"
            )
    stats = fake.stats()
    states, attempts, first, last = _ledger(url)
    if stats["twilio_messages"] != n or stats["twilio_unique"] != n:
        raise RuntimeError(f"the fake received {stats} for {n} numbers: lost or duplicated")
    if states != {"sent": n} or attempts != 1:
        raise RuntimeError(f"ledger {states}, max attempts {attempts}; expected {n} sent once")
    shares = [_sent_now(o) for o, _ in outputs]
    return Measured(count, (last - first).total_seconds(), wall, shares, cpu)


def _ledger(url: str) -> tuple[dict[str, int], int, datetime, datetime]:
    import psycopg

    with psycopg.connect(url) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state"))
        attempts, first, last = conn.execute(
            "SELECT MAX(attempts), MIN(created_at), MAX(updated_at) FROM deliveries"
        ).fetchone()  # type: ignore[misc]
    return states, attempts, _stamp(first), _stamp(last)


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _sent_now(stdout: str) -> int:
    for row in stdout.splitlines():
        cells = [c.strip() for c in row.split("│")]
        if len(cells) > 3 and cells[1] == "sms":
            return int(cells[3])
    return -1
