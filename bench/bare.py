"""The limit of this machine: a bare aiohttp client posting the same requests at the same
concurrency with nothing else to do (no audience, no rendering, no ledger, bodies built
before the clock starts)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from .common import EMAIL_FROM, SENDER, e164, email


async def _post_all(
    url: str, bodies: Sequence[bytes], headers: dict[str, str], concurrency: int, expect: int
) -> float:
    """POST every body with ``concurrency`` requests in flight; seconds from first to last.

    Made as fast as aiohttp goes, so that it is a fair limit: one session and one
    connector sized to the concurrency (every connection kept alive and reused), no
    cookie jar, the URL parsed once, headers set once on the session, bodies built
    before the clock starts, and each answer only read and its status checked.
    """
    connector = aiohttp.TCPConnector(
        limit=concurrency, limit_per_host=concurrency, keepalive_timeout=60
    )
    target = URL(url, encoded=True)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        work = iter(bodies)
        failures = 0

        async def worker() -> None:
            nonlocal failures
            for body in work:
                async with session.post(target, data=body) as response:
                    await response.read()
                    if response.status != expect:
                        failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"bare aiohttp: {failures} requests were not answered {expect}")
    return seconds


def sms(
    base_url: str, account_sid: str, auth_token: str, n: int, text: str, concurrency: int
) -> tuple[float, int]:
    """Seconds to post ``n`` Twilio messages (the same form fields outagecomms sends),
    and the number of requests."""
    url = f"{base_url}/2010-04-01/Accounts/{account_sid}/Messages.json"
    token = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
    headers = {
        "Authorization": f"Basic {token}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    bodies = [urlencode({"To": e164(i), "From": SENDER, "Body": text}).encode() for i in range(n)]
    return asyncio.run(_post_all(url, bodies, headers, concurrency, 201)), n


def email_batches(
    base_url: str,
    api_key: str,
    n: int,
    subject: str,
    text: str,
    html: str,
    concurrency: int,
    batch: int = 1000,
    names: bool = False,
) -> tuple[float, int]:
    """Seconds to post ``n`` emails as SendGrid requests of ``batch`` recipients, and the
    number of requests. ``names``: each personalization carries the recipient's name and
    the substitutions that put it into the shared content, as outagecomms sends it."""
    url = f"{base_url}/v3/mail/send"
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    bodies = []
    for start in range(0, n, batch):
        payload = {
            "from": {"email": EMAIL_FROM, "name": "Acme Shop"},
            "subject": subject,
            "personalizations": [
                _personalization(i, names) for i in range(start, min(start + batch, n))
            ],
            "content": [
                {"type": "text/plain", "value": text},
                {"type": "text/html", "value": html},
            ],
            "categories": ["outagecomms", "bench"],
            "custom_args": {"announcement": "bench/investigating"},
        }
        bodies.append(json.dumps(payload).encode())
    return asyncio.run(_post_all(url, bodies, headers, concurrency, 202)), len(bodies)


def _personalization(i: int, names: bool) -> dict[str, Any]:
    if not names:
        return {"to": [{"email": email(i)}]}
    name = f"Customer {i}"
    return {
        "to": [{"email": email(i), "name": name}],
        "substitutions": {"[oc-name-txt]": name, "[oc-name-html]": name},
    }
