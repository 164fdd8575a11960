"""Ledger + rendering overhead: the fan-out through an in-process transport that answers
at once (no server, no socket), so only outagecomms' own work is timed: reading the
audience, preflight rendering and limits, planning, the adapter (the Twilio SDK or the
SendGrid payload and its parsing) and the ledger.

The HTTP channels build their client through ``outagecomms.channels.base.make_http_client``;
here (in this process only) it returns the product's ``ApiClient`` on an
``InstantTransport``: the product's ``ApiTransport`` with the network replaced, at the
same seam in both of its paths (``exchange``, which the Twilio adapter uses, and
``handle_async_request``, through which httpx sends SendGrid's requests). It answers
like the provider: 201 with a Twilio message JSON (a fresh ``SM...`` sid each time), or
202 with an ``X-Message-Id`` for SendGrid. The run is the CLI's: ``preflight``, then
``send_async`` with the plan.

One more SMS case replaces the Twilio adapter itself by one that answers "sent" at
once, without the SDK or httpx: what remains is exactly audience reading,
rendering, planning and the ledger, and the difference is the adapter's cost.
Each case shows wall time and the CPU time of this process (less noisy).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx

from .common import Workspace, header, line, rate, scratch, verdict, write_audience

TARGET = 5_000  # messages/s
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
_SECRETS = {
    "OUTAGECOMMS_CHANNELS__SMS__ACCOUNT_SID": ACCOUNT_SID,
    "OUTAGECOMMS_CHANNELS__SMS__AUTH_TOKEN": "bench-auth-token-0123456789",
    "OUTAGECOMMS_CHANNELS__SMS__BASE_URL": "http://twilio.bench.invalid",
    "OUTAGECOMMS_CHANNELS__EMAIL__API_KEY": "SG.bench-key.bench-secret",
    "OUTAGECOMMS_CHANNELS__EMAIL__BASE_URL": "http://sendgrid.bench.invalid",
}


class InstantProviders:
    """Answers Twilio and SendGrid requests at once, counting what it was asked."""

    def __init__(self) -> None:
        self.sms = 0
        self.email_requests = 0
        self.email_recipients = 0
        self._ids = itertools.count(1)
        answer = {
            "account_sid": ACCOUNT_SID,
            "api_version": "2010-04-01",
            "body": "",
            "date_created": "Sun, 22 Nov 2026 09:41:00 +0000",
            "date_sent": None,
            "date_updated": "Sun, 22 Nov 2026 09:41:00 +0000",
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": "+15005550006",
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": "@SID@",
            "status": "queued",
            "subresource_uris": {"media": "/Media.json"},
            "to": "+12015550123",
            "uri": "/2010-04-01/Accounts/AC/Messages/@SID@.json",
        }
        self._twilio_parts = json.dumps(answer, separators=(",", ":")).encode().split(b"@SID@")

    def twilio_created(self) -> bytes:
        """The body of Twilio's 201 for one more message."""
        self.sms += 1
        return (b"SM%032x" % next(self._ids)).join(self._twilio_parts)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/Messages.json"):
            body = self.twilio_created()
            return httpx.Response(201, content=body, headers={"Content-Type": "application/json"})
        if path == "/v3/mail/send":
            self.email_requests += 1
            # Counting recipients means parsing what the adapter built: a fair check.
            self.email_recipients += len(json.loads(request.content)["personalizations"])
            return httpx.Response(202, headers={"X-Message-Id": f"bench{next(self._ids)}"})
        return httpx.Response(404, json={"message": f"no route {path}"})


@contextmanager
def no_adapter(providers: InstantProviders) -> Iterator[None]:
    """Replace the Twilio adapter's ``send`` by an immediate "sent" (this process only)."""
    from outagecomms.channels.twilio_sms import TwilioSms
    from outagecomms.models import Message, Outcome

    original = TwilioSms.send

    async def send(self: TwilioSms, messages: Sequence[Message]) -> list[Outcome]:
        providers.sms += len(messages)
        return [Outcome.sent(f"SM{providers.sms:032x}") for _ in messages]

    TwilioSms.send = send  # type: ignore[method-assign]
    try:
        yield
    finally:
        TwilioSms.send = original  # type: ignore[method-assign]


def instant_transport_class(providers: InstantProviders) -> type[httpx.AsyncBaseTransport]:
    """The product's ``ApiTransport`` answering from ``providers`` instead of the network."""
    from multidict import CIMultiDict, CIMultiDictProxy

    from outagecomms.channels.http import Answer, ApiTransport, Endpoint

    json_headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))

    class InstantTransport(ApiTransport):
        async def exchange(self, endpoint: Endpoint, body: bytes) -> Answer:
            if not endpoint.url.path.endswith("/Messages.json"):
                raise RuntimeError(f"no instant answer for {endpoint.url}")
            return Answer(201, json_headers, providers.twilio_created())

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return providers.handle(request)

    return InstantTransport


@contextmanager
def instant_transport(providers: InstantProviders) -> Iterator[None]:
    """Swap ``make_http_client`` for one on the in-process transport (this process only)."""
    from outagecomms.channels import base

    original = base.make_http_client
    transport = instant_transport_class(providers)

    def make_http_client(*, timeout: float, connections: int, **options: Any) -> httpx.AsyncClient:
        headers = {"User-Agent": "outagecomms", **options.pop("headers", {})}
        return base.ApiClient(
            deadline=timeout,
            transport=transport(),
            timeout=httpx.Timeout(timeout),
            headers=headers,
            **options,
        )

    base.make_http_client = make_http_client  # type: ignore[assignment]
    saved = {key: os.environ.get(key) for key in _SECRETS}
    os.environ.update(_SECRETS)
    try:
        yield
    finally:
        base.make_http_client = original  # type: ignore[assignment]
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def measure(
    workspace: Workspace, channel: str, audience: Path, n: int, *, adapter: bool = True
) -> dict[str, float]:
    """Preflight then deliver one channel, as the CLI does; seconds of each."""
    from outagecomms import Announcer, Incident

    workspace.fresh_ledger()
    providers = InstantProviders()
    with instant_transport(providers), nullcontext() if adapter else no_adapter(providers):
        cpu = time.process_time()
        started = time.perf_counter()
        announcer = Announcer.from_config(workspace.config)
        incident = Incident.load(workspace.incident)
        plan = announcer.preflight(incident, [channel], audience=audience, credentials=True)
        planned = time.perf_counter()
        result = asyncio.run(
            announcer.send_async(incident, [channel], audience=audience, plan=plan)
        )
        done = time.perf_counter()
        cpu = time.process_time() - cpu
    sent = result.counts[channel]["sent"]
    received = providers.sms if channel == "sms" else providers.email_recipients
    if sent != n or received != n or not result.ok:
        raise RuntimeError(f"{channel}: expected {n} sent, ledger {sent}, transport {received}")
    return {
        "preflight_s": planned - started,
        "deliver_s": done - planned,
        "total_s": done - started,
        "cpu_s": cpu,
        "rate": n / (done - started),
        "cpu_us": cpu / n * 1e6,
        "requests": providers.sms if channel == "sms" else providers.email_requests,
    }


def run(n: int = 20_000, concurrency: int = 50) -> dict[str, dict[str, float]]:
    header(f"ledger + rendering overhead: n={n:,}, in-process transport answering at once")
    results: dict[str, dict[str, float]] = {}
    with scratch("overhead") as folder:
        workspace = Workspace(folder / "shop").write(
            sms_concurrency=concurrency, email_concurrency=4
        )
        plain = write_audience(folder / "audience.csv", n, names=False)
        named = write_audience(folder / "audience-names.csv", n, names=True)
        cases = [
            ("sms", "sms", plain, True, f"SMS (concurrency {concurrency})"),
            ("sms-no-adapter", "sms", plain, False, "SMS, Twilio adapter replaced by a no-op"),
            ("email", "email", plain, True, "email, no names: the same content for all"),
            ("email-names", "email", named, True, "email, a greeting by name in each"),
        ]
        for key, channel, audience, adapter, label in cases:
            numbers = measure(workspace, channel, audience, n, adapter=adapter)
            results[key] = numbers
            total = numbers["total_s"]
            print(f"\n-- {label}: {n:,} messages, {numbers['requests']:,.0f} requests --")
            line("preflight (read, render, check limits)", f"{numbers['preflight_s']:7.2f} s")
            line("deliver (plan, claim, adapter, ledger)", f"{numbers['deliver_s']:7.2f} s")
            line(
                "total",
                f"{total:7.2f} s  {rate(n, total)} "
                f"(target >= {TARGET:,}: {verdict(n / total >= TARGET)})",
            )
            line("CPU per message", f"{numbers['cpu_us']:7.0f} µs")
    return results
