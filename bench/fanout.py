"""Fan-out: outagecomms ``send`` against local fake providers, next to the sync-SDK
baseline and the bare-aiohttp limit, in one run.

The fakes (tests/fakes: Twilio, SendGrid, X) run in a process of their own
(``bench.serve``) with a per-request latency; the measured ``outagecomms send`` is
the real command in another process, timed from exec to exit, so start-up,
audience reading, preflight rendering, planning and the ledger are all included.
Every run starts from an empty ledger and is checked afterwards: every row
``sent`` once in the ledger, and exactly as many messages received by the fake.

Besides wall time, each line shows the CPU time per message of the sender (read
with ``getrusage``), which a busy machine disturbs much less, and how busy the fake
process was (it must not be the bottleneck).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import bare, baseline
from .common import (
    Workspace,
    clean_env,
    header,
    line,
    run_cli,
    scratch,
    verdict,
    write_audience,
)
from .serve import FakeProcess

TARGET_SYNC_RATIO = 30.0
TARGET_BARE_RATIO = 0.85
TARGET_BARE_CEILING = 0.9  # the bare client must itself be a fair limit (issue 14)
TARGET_EMAIL_SECONDS = 20.0  # for 100,000 emails


@dataclass
class Options:
    n: int = 20_000
    latency: float = 0.05
    concurrency: int = 50
    email_n: int = 100_000
    email_concurrency: int = 4
    names_n: int = 100_000
    baseline_sample: int = 500
    runs: int = 3
    parts: tuple[str, ...] = ("sms", "email", "email-names")


@dataclass
class Texts:
    sms: str
    subject: str
    text: str
    html: str


@dataclass
class Measured:
    """One timed run of a sender against the fake."""

    wall: float
    #: CPU seconds of the sender (the outagecomms process, or this process for bare aiohttp).
    cpu: float
    #: CPU seconds of the fake process meanwhile.
    fake_cpu: float
    #: outagecomms only: first ledger row planned to last row finished.
    span: float = 0.0
    requests: int = 0


def rendered(workspace: Workspace) -> Texts:
    """What outagecomms renders for this incident, so the references send the same bytes."""
    from outagecomms import Incident, Recipient, load_config
    from outagecomms.render import Renderer

    renderer = Renderer(load_config(workspace.config), Incident.load(workspace.incident))
    sms = renderer.render_parts("sms", "sms")["txt"]
    mail = renderer.render_parts("email", "email", Recipient(email="someone@example.com"))
    return Texts(sms, mail["subject"], mail["txt"], mail["html"])


def send(
    workspace: Workspace, fake: FakeProcess, channel: str, audience: Path, expected: int
) -> Measured:
    """Run ``outagecomms send`` for one channel from an empty ledger, and check it."""
    workspace.fresh_ledger()
    fake.reset()
    args = ["--config", str(workspace.config), "send", str(workspace.incident), "--yes"]
    args += ["--audience", str(audience), "--channel", channel]
    fake_before = fake.cpu()
    timed = run_cli(args, cwd=workspace.root, env=clean_env(fake.env))
    fake_cpu = fake.cpu() - fake_before
    if timed.returncode != 0:
        raise RuntimeError(
            f"outagecomms send exited {timed.returncode}\n{timed.stdout[-3000:]}\n"
            f"{timed.stderr[-3000:]}"
        )
    summary = workspace.ledger_summary(channel)
    stats = fake.stats()
    received = stats["twilio_messages"] if channel == "sms" else stats["sendgrid_recipients"]
    if summary.sent != expected or received != expected or summary.max_attempts != 1:
        raise RuntimeError(
            f"{channel}: expected {expected} messages sent once; ledger {summary.states} "
            f"(max attempts {summary.max_attempts}), fake received {received}"
        )
    requests = stats["twilio_messages"] if channel == "sms" else stats["sendgrid_requests"]
    return Measured(timed.seconds, timed.cpu, fake_cpu, summary.span, requests)


def in_process(fake: FakeProcess, job: Callable[[], Any]) -> Measured:
    """Time ``job`` (a bare-aiohttp or sync-SDK run in this process) with its CPU."""
    fake.reset()
    fake_before, cpu_before = fake.cpu(), time.process_time()
    started = time.perf_counter()
    answer = job()
    wall = time.perf_counter() - started
    cpu, fake_cpu = time.process_time() - cpu_before, fake.cpu() - fake_before
    # bare.* return (seconds from first request to last, [requests]): the clock that counts.
    if isinstance(answer, tuple):
        return Measured(answer[0], cpu, fake_cpu, requests=answer[1])
    return Measured(answer if isinstance(answer, float) else wall, cpu, fake_cpu)


def fake_capacity(fake: FakeProcess, text: str, n: int, concurrency: int = 64) -> Measured:
    """The fake Twilio with no latency under a bare client: how far the fake is from
    being the bottleneck (a lower bound: the client, on the other core, limits it)."""
    info = fake.info
    fake.set_latency(0)
    try:
        return in_process(
            fake,
            lambda: bare.sms(
                info["twilio"], info["account_sid"], info["auth_token"], n, text, concurrency
            ),
        )
    finally:
        fake.set_latency(fake.latency)


def _median(runs: list[Measured]) -> Measured:
    """The run with the median rate (odd run counts keep a real run)."""
    ranked = sorted(runs, key=lambda m: m.wall)
    return ranked[(len(ranked) - 1) // 2]


def _show(label: str, m: Measured, n: int, every: list[Measured] | None = None) -> None:
    rates = ""
    if every and len(every) > 1:
        rates = " [runs: " + ", ".join(f"{n / r.wall:,.0f}" for r in every) + "]"
    line(label, f"{m.wall:7.2f} s  {n / m.wall:7,.0f} msg/s{rates}")
    line(
        "    CPU per message: sender / fake",
        f"{m.cpu / n * 1e6:5.0f} µs / {m.fake_cpu / n * 1e6:4.0f} µs "
        f"(fake busy {m.fake_cpu / m.wall:.0%} of a core)",
    )


def run(options: Options) -> dict[str, dict[str, float]]:
    header(
        f"fan-out: {options.n:,} sms, {options.email_n:,} email, "
        f"latency {options.latency * 1000:g} ms, concurrency {options.concurrency} (sms), "
        f"{options.email_concurrency} (email), {options.runs} run(s) each"
    )
    results: dict[str, dict[str, float]] = {}
    with scratch("fanout") as folder, FakeProcess(options.latency) as fake:
        workspace = Workspace(folder / "shop").write(
            sms_concurrency=options.concurrency, email_concurrency=options.email_concurrency
        )
        texts = rendered(workspace)
        probe = min(options.n, 20_000)
        alone = fake_capacity(fake, texts.sms, probe)
        line(
            "fake Twilio alone (no latency, 64 in flight)",
            f"{probe / alone.wall:,.0f} req/s, the fake busy {alone.fake_cpu / alone.wall:.0%} "
            f"of a core ({alone.fake_cpu / probe * 1e6:.0f} µs a request)",
        )
        results["fake"] = {
            "rate": probe / alone.wall,
            "busy": alone.fake_cpu / alone.wall,
            "cpu_us": alone.fake_cpu / probe * 1e6,
        }
        if "sms" in options.parts:
            results["sms"] = _sms(options, workspace, fake, texts, folder)
        if "email" in options.parts:
            results["email"] = _email(options, workspace, fake, texts, folder)
        if "email-names" in options.parts:
            results["email-names"] = _email_names(options, workspace, fake, texts, folder)
    return results


def _sms(
    options: Options, workspace: Workspace, fake: FakeProcess, texts: Texts, folder: Path
) -> dict[str, float]:
    n, c, latency, info = options.n, options.concurrency, options.latency, fake.info
    audience = write_audience(folder / f"audience-{n}.csv", n, names=False)
    print(f"\n-- SMS: {n:,} messages, {latency * 1000:g} ms latency, concurrency {c} --")

    def bare_run() -> float:
        return bare.sms(info["twilio"], info["account_sid"], info["auth_token"], n, texts.sms, c)

    ours_runs, bare_runs = [], []
    for _ in range(options.runs):  # interleaved, so drifting load hits both alike
        bare_runs.append(in_process(fake, bare_run))
        ours_runs.append(send(workspace, fake, "sms", audience, n))
    ours, limit = _median(ours_runs), _median(bare_runs)
    sample = min(n, options.baseline_sample)
    sync = in_process(
        fake,
        lambda: baseline.sms(
            info["twilio"], info["account_sid"], info["auth_token"], sample, texts.sms
        ),
    )

    ceiling = c / latency
    ours_rate, bare_rate, sync_rate = n / ours.wall, n / limit.wall, sample / sync.wall
    line("ceiling (concurrency / latency)", f"{ceiling:,.0f} msg/s")
    _show("bare aiohttp (same requests, same concurrency)", limit, n, bare_runs)
    _show("outagecomms send (end to end, ledger included)", ours, n, ours_runs)
    line("    of which delivery (first to last ledger row)", f"{ours.span:7.2f} s")
    line(
        f"sync twilio SDK loop (timed on {sample}, extrapolated)",
        f"{n / sync_rate:7.2f} s  {sync_rate:7,.1f} msg/s",
    )
    sync_ratio, bare_ratio = ours_rate / sync_rate, ours_rate / bare_rate
    line(
        "outagecomms / sync loop",
        f"{sync_ratio:.1f}x (target >= {TARGET_SYNC_RATIO:g}x: "
        f"{verdict(sync_ratio >= TARGET_SYNC_RATIO)})",
    )
    line(
        "outagecomms / bare aiohttp",
        f"{bare_ratio:.0%} (target >= {TARGET_BARE_RATIO:.0%}: "
        f"{verdict(bare_ratio >= TARGET_BARE_RATIO)})",
    )
    line(
        "bare aiohttp / ceiling",
        f"{bare_rate / ceiling:.0%} (target >= {TARGET_BARE_CEILING:.0%}: "
        f"{verdict(bare_rate / ceiling >= TARGET_BARE_CEILING)})",
    )
    return {
        "n": n,
        "latency_ms": latency * 1000,
        "concurrency": c,
        "ceiling": ceiling,
        "bare_s": limit.wall,
        "bare_rate": bare_rate,
        "bare_cpu_us": limit.cpu / n * 1e6,
        "wall_s": ours.wall,
        "rate": ours_rate,
        "rates": [n / r.wall for r in ours_runs],
        "span_s": ours.span,
        "cpu_us": ours.cpu / n * 1e6,
        "fake_busy": ours.fake_cpu / ours.wall,
        "baseline_sample": sample,
        "baseline_rate": sync_rate,
        "ratio_baseline": sync_ratio,
        "ratio_bare": bare_ratio,
    }


def _email(
    options: Options, workspace: Workspace, fake: FakeProcess, texts: Texts, folder: Path
) -> dict[str, float]:
    n, c, latency, info = options.email_n, options.email_concurrency, options.latency, fake.info
    audience = write_audience(folder / f"audience-{n}.csv", n, names=False)
    print(
        f"\n-- email: {n:,} emails, the same content for all (no names in the audience), "
        f"{latency * 1000:g} ms latency, concurrency {c} --"
    )

    def bare_run() -> tuple[float, int]:
        key = info["sendgrid_api_key"]
        return bare.email_batches(
            info["sendgrid"], key, n, texts.subject, texts.text, texts.html, c
        )

    ours_runs, bare_runs = [], []
    for _ in range(options.runs):
        bare_runs.append(in_process(fake, bare_run))
        ours_runs.append(send(workspace, fake, "email", audience, n))
    ours = _median(ours_runs)
    sample = min(n, options.baseline_sample)
    sync = in_process(
        fake,
        lambda: baseline.emails(
            info["sendgrid"],
            info["sendgrid_api_key"],
            sample,
            texts.subject,
            texts.text,
            texts.html,
        ),
    )
    sync_rate = sample / sync.wall
    numbers = _email_summary(n, c, ours_runs, bare_runs)
    line(
        f"sync loop, 1 request/email (timed on {sample}, extrapolated)",
        f"{n / sync_rate:7.2f} s  {sync_rate:7,.1f} msg/s",
    )
    line("outagecomms / sync loop", f"{n / ours.wall / sync_rate:.0f}x")
    return numbers | {"baseline_rate": sync_rate, "ratio_baseline": n / ours.wall / sync_rate}


def _email_summary(
    n: int, c: int, ours_runs: list[Measured], bare_runs: list[Measured]
) -> dict[str, float]:
    """Print what both email fan-outs report; their numbers, for the JSON."""
    ours, limit = _median(ours_runs), _median(bare_runs)
    line("SendGrid requests (outagecomms / bare)", f"{ours.requests} / {limit.requests}")
    _show("bare aiohttp (1000 a request, same concurrency)", limit, n, bare_runs)
    _show("outagecomms send (end to end, ledger included)", ours, n, ours_runs)
    line("    of which delivery (first to last ledger row)", f"{ours.span:7.2f} s")
    line("outagecomms / bare aiohttp", f"{limit.wall / ours.wall:.0%}")
    target = TARGET_EMAIL_SECONDS * n / 100_000
    line(
        f"{n:,} emails end to end",
        f"{ours.wall:.1f} s (target < {target:g} s: {verdict(ours.wall < target)})",
    )
    return {
        "n": n,
        "concurrency": c,
        "requests": ours.requests,
        "bare_s": limit.wall,
        "bare_rate": n / limit.wall,
        "wall_s": ours.wall,
        "rate": n / ours.wall,
        "span_s": ours.span,
        "cpu_us": ours.cpu / n * 1e6,
        "ratio_bare": limit.wall / ours.wall,
    }


def _email_names(
    options: Options, workspace: Workspace, fake: FakeProcess, texts: Texts, folder: Path
) -> dict[str, float]:
    n, c, latency, info = options.names_n, options.email_concurrency, options.latency, fake.info
    audience = write_audience(folder / f"audience-names-{n}.csv", n, names=True)
    print(
        f"\n-- email: {n:,} emails, a greeting by name in each (the default templates), "
        f"{latency * 1000:g} ms latency, concurrency {c} --"
    )

    def bare_run() -> tuple[float, int]:
        key = info["sendgrid_api_key"]
        return bare.email_batches(
            info["sendgrid"], key, n, texts.subject, texts.text, texts.html, c, names=True
        )

    ours_runs, bare_runs = [], []
    for _ in range(options.runs):
        bare_runs.append(in_process(fake, bare_run))
        ours_runs.append(send(workspace, fake, "email", audience, n))
    return _email_summary(n, c, ours_runs, bare_runs)
