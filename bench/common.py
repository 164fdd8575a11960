"""What every benchmark shares: the machine, the command line, workspaces, audiences, output."""

from __future__ import annotations

import csv
import os
import platform
import resource
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: The installed console script, as a newcomer runs it.
OUTAGECOMMS = str(BIN / "outagecomms") if (BIN / "outagecomms").exists() else "outagecomms"

SENDER = "+15005550006"
EMAIL_FROM = "outage@shop.example"
INCIDENT_ID = "2026-11-22-email-outage"

# US area codes phonenumbers accepts; with exchanges 200-999 and 10,000 lines each they
# give far more distinct valid numbers than any benchmark needs.
_AREA_CODES = (
    "201 202 203 205 206 207 208 209 210 212 213 214 215 216 217 218 219 224 225 228 229 231 234"
    " 239 240 248 251 252 253 254 256 260 262 267 269 270 272 276 281 301 302 303 304 305 307 308"
    " 309 310 312 313 314 315 316 317 318 319 320 321 323 325 330 331 334 336 337 339 347 351 352"
    " 360 361 385 386 401 402 404 405 406 407 408 409 410 412 413 414 415 417 419 423 424 425 430"
    " 432 434 435 440 442 443 458 469 470 475 478 479 480 484 501 502 503 504 505 507 508 509 510"
    " 512 513 515 516 517 518 520 530 531 534 539 540 541 551 559 561 562 563 567 570 571 573 574"
    " 575 580 585 586 601 602 603 605 606 607 608 609 610 612 614 615 616 617 618 619 620 623 626"
    " 630 631 636 641 646 650 651 657 660 661 662 667 669 678 681 682 701 702 703 704 706 707 708"
    " 712 713 714 715 716 717 718 719 720 724 725 727 731 732 734 737 740 747 754 757 760 762 763"
)
_AREAS = tuple(_AREA_CODES.split())


def command_line() -> str:
    """How this benchmark was started, to print next to its numbers."""
    python = os.path.relpath(sys.executable, Path.cwd())
    return shlex.join([python, "-m", "bench", *sys.argv[1:]])


def machine() -> dict[str, str]:
    """The facts about this machine that the numbers depend on."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "cpu model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load average (1, 5, 15 min)": load,
    }


def header(title: str) -> None:
    print(f"\n== {title} ==")
    print(f"command: {command_line()}")
    facts = machine()
    print(
        f"machine: {facts['cpus']} CPUs, {facts['cpu model']}, Python {facts['python']}, "
        f"load {facts['load average (1, 5, 15 min)']}, {facts['date']}"
    )


def line(label: str, value: str) -> None:
    print(f"  {label:<44} {value}")


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} msg/s" if seconds > 0 else "-"


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def phone(i: int) -> str:
    """The i-th distinct valid US number, as an audience would write it."""
    area = _AREAS[i % len(_AREAS)]
    rest = i // len(_AREAS)
    exchange, number = 200 + rest % 800, (rest // 800) % 10_000
    return f"({area}) {exchange:03d}-{number:04d}"


def e164(i: int) -> str:
    """``phone(i)`` in E.164, as outagecomms sends it."""
    area = _AREAS[i % len(_AREAS)]
    rest = i // len(_AREAS)
    return f"+1{area}{200 + rest % 800:03d}{(rest // 800) % 10_000:04d}"


def email(i: int) -> str:
    return f"customer{i}@example.com"


def write_audience(path: Path, n: int, *, names: bool) -> Path:
    """An audience CSV of ``n`` people, all opted in to SMS and email, all distinct.

    ``names=False`` leaves the name column empty, so the default email template
    greets everyone the same way ("Hi there") and SendGrid batches 1000 a request;
    with names every email differs and each one costs a request.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "phone", "name", "locale", "sms_opt_in", "email_opt_in"])
        for i in range(n):
            name = f"Customer {i}" if names else ""
            writer.writerow([email(i), phone(i), name, "en-US", "yes", "yes"])
    return path


INCIDENT_YAML = f"""\
id: {INCIDENT_ID}
title: Email delivery is delayed
status: investigating
severity: major
started_at: 2026-11-22T09:40:00Z
eta: 2026-11-22T12:00:00Z
affected: [newsletter, order confirmations]
summary: Our mail server crashed. Orders are safe; confirmations are delayed.
details: |
  Our own mail server stopped answering at 09:40 UTC. Your orders are recorded
  and will ship as usual; only the confirmation emails are waiting.
"""


def config_yaml(*, sms_concurrency: int, email_concurrency: int) -> str:
    """A channels.yaml with a Twilio SMS and a SendGrid email channel; secrets and
    base_url come from the environment, as in production."""
    return f"""\
organization: {{name: Acme Shop, website: https://shop.example, status_url: https://shop.example/status}}
default_region: US
ledger: sqlite:///.outagecomms/ledger.db
channels:
  sms:
    driver: twilio
    from: "{SENDER}"
    max_segments: 2
    concurrency: {sms_concurrency}
  email:
    driver: sendgrid
    from: {EMAIL_FROM}
    from_name: Acme Shop
    concurrency: {email_concurrency}
"""


@dataclass
class Workspace:
    """A folder with channels.yaml, an incident and a ledger, like a user's."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "channels.yaml"

    @property
    def incident(self) -> Path:
        return self.root / "incident.yaml"

    @property
    def ledger(self) -> Path:
        return self.root / ".outagecomms" / "ledger.db"

    def write(self, *, sms_concurrency: int = 20, email_concurrency: int = 4) -> Workspace:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            config_yaml(sms_concurrency=sms_concurrency, email_concurrency=email_concurrency)
        )
        self.incident.write_text(INCIDENT_YAML)
        return self

    def fresh_ledger(self) -> None:
        """Forget earlier runs, so every message is sent again."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.ledger}{suffix}").unlink(missing_ok=True)

    def ledger_summary(self, channel: str) -> LedgerSummary:
        db = sqlite3.connect(self.ledger)
        try:
            states = dict(
                db.execute(
                    "SELECT state, COUNT(*) FROM deliveries WHERE channel=? GROUP BY state",
                    (channel,),
                ).fetchall()
            )
            first, last = db.execute(
                "SELECT MIN(created_at), MAX(updated_at) FROM deliveries WHERE channel=?",
                (channel,),
            ).fetchone()
            attempts = db.execute(
                "SELECT MAX(attempts) FROM deliveries WHERE channel=?", (channel,)
            ).fetchone()[0]
        finally:
            db.close()
        span = 0.0
        if first and last:
            span = (_parse_stamp(last) - _parse_stamp(first)).total_seconds()
        return LedgerSummary(states=states, span=span, max_attempts=attempts or 0)


@dataclass
class LedgerSummary:
    states: dict[str, int]
    #: From the first row planned to the last row finished: the delivery phase.
    span: float
    max_attempts: int

    @property
    def sent(self) -> int:
        return self.states.get("sent", 0)


def _parse_stamp(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@contextmanager
def scratch(name: str) -> Iterator[Path]:
    """A temporary folder for one benchmark, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"outagecomms-bench-{name}-") as folder:
        yield Path(folder)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without any OUTAGECOMMS_* of the caller, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OUTAGECOMMS_")}
    env.update({"COLUMNS": "120", "NO_COLOR": "1", **(extra or {})})
    return env


@dataclass
class Timed:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    #: CPU time (user + system) the command used: less noisy than wall time on a busy machine.
    cpu: float


def children_cpu() -> float:
    """CPU seconds of every child process reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(args: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float = 3600) -> Timed:
    """Run the real ``outagecomms`` command and time it from exec to exit."""
    command = [OUTAGECOMMS, *args]
    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        # py-spy's collapsed stacks of each run (sampling distorts its timing a little):
        # where the time goes. `py-spy` makes a flame graph of them, or read them as text.
        Path(profile).mkdir(parents=True, exist_ok=True)
        stacks = Path(profile) / f"{args[0]}-{time.strftime('%H%M%S')}.txt"
        if not (BIN / "py-spy").exists():
            raise RuntimeError("BENCH_PROFILE needs py-spy: pip install -e '.[profile]'")
        spy = [str(BIN / "py-spy"), "record", "--rate", "250", "--format", "raw", "-o", str(stacks)]
        command = [*spy, "--", *command]
    cpu = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.perf_counter() - started
    return Timed(seconds, done.returncode, done.stdout, done.stderr, children_cpu() - cpu)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
