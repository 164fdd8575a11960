"""Fan-out: outagecomms ``send`` against local fake providers, next to the sync-SDK
baseline and the bare-aiohttp limit, in one run.

The fakes (tests/fakes: Twilio, SendGrid, X) run in a process of their own
(``bench.serve``) with a per-request latency; the measured ``outagecomms send`` is
the real command in another process, timed from exec to exit, so start-up,
audience reading, preflight rendering, planning and the ledger are all included.
Every run starts from an empty ledger and is checked afterwards: every row
``sent`` once in the ledger, and exactly as many messages received by the fake.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from . import bare, baseline
from .common import (
    INCIDENT_ID,
    Workspace,
    clean_env,
    header,
    line,
    rate,
    run_cli,
    scratch,
    verdict,
    write_audience,
)
from .serve import FakeProcess


@dataclass
class Options:
    n: int = 20_000
    latency: float = 0.05
    concurrency: int = 50
    email_n: int = 100_000
    email_concurrency: int = 4
    names_n: int = 2_000
    baseline_sample: int = 500
    parts: tuple[str, ...] = ("sms", "email", "email-names")


@dataclass
class Texts:
    sms: str
    subject: str
    text: str
    html: str


@dataclass
class Outcome:
    """What one part of the fan-out measured (for the summary and RESULTS.md)."""

    name: str
    numbers: dict[str, float] = field(default_factory=dict)


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
) -> tuple[float, float]:
    """Run ``outagecomms send`` for one channel; wall seconds and the ledger's delivery span."""
    workspace.fresh_ledger()
    fake.reset()
    args = ["--config", str(workspace.config), "send", str(workspace.incident), "--yes"]
    args += ["--audience", str(audience), "--channel", channel]
    timed = run_cli(args, cwd=workspace.root, env=clean_env(fake.env))
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
    return timed.seconds, summary.span


def fake_capacity(fake: FakeProcess, texts: Texts, n: int, concurrency: int = 64) -> float:
    """Requests/s the fake Twilio serves with no latency to a bare client: how far the
    fake is from being the bottleneck (a lower bound: the client shares the machine)."""
    info = fake.info
    fake.set_latency(0)
    fake.reset()
    try:
        seconds = bare.sms(
            info["twilio"], info["account_sid"], info["auth_token"], n, texts.sms, concurrency
        )
    finally:
        fake.set_latency(fake.latency)
    return n / seconds


def run(options: Options) -> list[Outcome]:
    header(
        f"fan-out: n={options.n:,} sms, {options.email_n:,} email, "
        f"latency {options.latency * 1000:g} ms, concurrency {options.concurrency} (sms), "
        f"{options.email_concurrency} (email)"
    )
    outcomes: list[Outcome] = []
    with scratch("fanout") as folder, FakeProcess(options.latency) as fake:
        workspace = Workspace(folder / "shop").write(
            sms_concurrency=options.concurrency, email_concurrency=options.email_concurrency
        )
        texts = rendered(workspace)
        info = fake.info
        capacity = fake_capacity(fake, texts, min(options.n, 20_000))
        line("fake Twilio alone (no latency, 64 in flight)", f"{capacity:,.0f} req/s")

        if "sms" in options.parts:
            outcomes.append(_sms(options, workspace, fake, texts, info, folder, capacity))
        if "email" in options.parts:
            outcomes.append(_email(options, workspace, fake, texts, info, folder))
        if "email-names" in options.parts:
            outcomes.append(_email_names(options, workspace, fake, texts, info, folder))
    return outcomes


def _sms(
    options: Options,
    workspace: Workspace,
    fake: FakeProcess,
    texts: Texts,
    info: dict[str, str],
    folder: Path,
    capacity: float,
) -> Outcome:
    n, c, latency = options.n, options.concurrency, options.latency
    audience = write_audience(folder / f"audience-{n}.csv", n, names=False)
    print(f"\n-- SMS fan-out: {n:,} messages, {latency * 1000:g} ms latency, concurrency {c} --")

    fake.reset()
    bare_s = bare.sms(info["twilio"], info["account_sid"], info["auth_token"], n, texts.sms, c)
    wall, span = send(workspace, fake, "sms", audience, n)
    sample = min(n, options.baseline_sample)
    fake.reset()
    base_s = baseline.sms(info["twilio"], info["account_sid"], info["auth_token"], sample, texts.sms)

    ceiling = c / latency
    ours, limit, base = n / wall, n / bare_s, sample / base_s
    line("ceiling (concurrency / latency)", f"{ceiling:,.0f} msg/s")
    line("bare aiohttp (same requests, same concurrency)", f"{bare_s:7.2f} s  {rate(n, bare_s)}")
    line("outagecomms send (end to end, ledger included)", f"{wall:7.2f} s  {rate(n, wall)}")
    line("  of which delivery (first to last ledger row)", f"{span:7.2f} s  {rate(n, span)}")
    line(
        f"sync twilio SDK loop (timed on {sample}, extrapolated)",
        f"{n / base:7.2f} s  {base:,.1f} msg/s",
    )
    line("outagecomms / sync loop", f"{ours / base:.1f}x (target >= 30x: {verdict(ours / base >= 30)})")
    line(
        "outagecomms / bare aiohttp",
        f"{ours / limit:.0%} (target >= 80%: {verdict(ours / limit >= 0.8)})",
    )
    line("bare aiohttp / ceiling", f"{limit / ceiling:.0%}")
    if capacity < limit * 1.5:
        print("  WARNING: the fake alone is not far above the measured rates")
    return Outcome(
        "sms",
        {
            "n": n,
            "latency_ms": latency * 1000,
            "concurrency": c,
            "ceiling": ceiling,
            "fake_capacity": capacity,
            "bare_s": bare_s,
            "bare_rate": limit,
            "wall_s": wall,
            "rate": ours,
            "span_s": span,
            "baseline_sample": sample,
            "baseline_rate": base,
            "ratio_baseline": ours / base,
            "ratio_bare": ours / limit,
        },
    )


def _email(
    options: Options,
    workspace: Workspace,
    fake: FakeProcess,
    texts: Texts,
    info: dict[str, str],
    folder: Path,
) -> Outcome:
    n, c, latency = options.email_n, options.email_concurrency, options.latency
    audience = write_audience(folder / f"audience-{n}.csv", n, names=False)
    print(
        f"\n-- email fan-out: {n:,} emails, same content for all (no names in the audience), "
        f"{latency * 1000:g} ms latency, concurrency {c} --"
    )
    fake.reset()
    bare_s, requests = bare.email_batches(
        info["sendgrid"], info["sendgrid_api_key"], n, texts.subject, texts.text, texts.html, c
    )
    wall, span = send(workspace, fake, "email", audience, n)
    requests_made = fake.stats()["sendgrid_requests"]
    sample = min(n, options.baseline_sample)
    fake.reset()
    base_s = baseline.emails(
        info["sendgrid"], info["sendgrid_api_key"], sample, texts.subject, texts.text, texts.html
    )
    ours, limit, base = n / wall, n / bare_s, sample / base_s
    line("SendGrid requests (outagecomms / bare)", f"{requests_made} / {requests}")
    line("bare aiohttp (1000 a request, same concurrency)", f"{bare_s:7.2f} s  {rate(n, bare_s)}")
    line("outagecomms send (end to end, ledger included)", f"{wall:7.2f} s  {rate(n, wall)}")
    line("  of which delivery (first to last ledger row)", f"{span:7.2f} s  {rate(n, span)}")
    line(
        f"sync loop, 1 request/email (timed on {sample}, extrapolated)",
        f"{n / base:7.2f} s  {base:,.1f} msg/s",
    )
    line("outagecomms / sync loop", f"{ours / base:.1f}x")
    line("outagecomms / bare aiohttp", f"{ours / limit:.0%}")
    target = 20.0 if n >= 100_000 else 20.0 * n / 100_000
    line(f"{n:,} emails end to end", f"{wall:.1f} s (target < {target:g} s: {verdict(wall < target)})")
    return Outcome(
        "email",
        {
            "n": n,
            "concurrency": c,
            "requests": requests_made,
            "bare_s": bare_s,
            "wall_s": wall,
            "rate": ours,
            "span_s": span,
            "baseline_rate": base,
            "ratio_baseline": ours / base,
            "ratio_bare": ours / limit,
        },
    )


def _email_names(
    options: Options,
    workspace: Workspace,
    fake: FakeProcess,
    texts: Texts,
    info: dict[str, str],
    folder: Path,
) -> Outcome:
    n, c, latency = options.names_n, options.email_concurrency, options.latency
    audience = write_audience(folder / f"audience-names-{n}.csv", n, names=True)
    print(
        f"\n-- email fan-out: {n:,} emails, a different greeting each (names in the audience), "
        f"{latency * 1000:g} ms latency, concurrency {c} --"
    )
    fake.reset()
    bare_s, _ = bare.email_batches(
        info["sendgrid"], info["sendgrid_api_key"], n, texts.subject, texts.text, texts.html, c, 1
    )
    started = time.perf_counter()
    wall, span = send(workspace, fake, "email", audience, n)
    del started
    requests_made = fake.stats()["sendgrid_requests"]
    ours, limit = n / wall, n / bare_s
    line("SendGrid requests (outagecomms)", f"{requests_made}")
    line("bare aiohttp (1 a request, same concurrency)", f"{bare_s:7.2f} s  {rate(n, bare_s)}")
    line("outagecomms send (end to end, ledger included)", f"{wall:7.2f} s  {rate(n, wall)}")
    line("  of which delivery (first to last ledger row)", f"{span:7.2f} s  {rate(n, span)}")
    line("outagecomms / bare aiohttp", f"{ours / limit:.0%}")
    line("100,000 such emails at this rate", f"{100_000 / ours:,.0f} s")
    return Outcome(
        "email-names",
        {"n": n, "concurrency": c, "requests": requests_made, "wall_s": wall, "rate": ours},
    )


__all__ = ["INCIDENT_ID", "Options", "run"]
