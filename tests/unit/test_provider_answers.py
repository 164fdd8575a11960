"""Provider answers that leave a message's fate open, for every HTTP driver.

* A success answer (2xx) the product cannot read is ``unknown``, never ``failed``: the
  provider accepted the request, so the message may exist, and ``failed`` is resent.
* An answer trickling in a byte at a time cannot hold a send past ``timeout``: the
  deadline covers the whole exchange, and the request it cut short is ``unknown``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import respx

from outagecomms.channels import build_channel
from outagecomms.channels.base import Channel, network_failure
from outagecomms.config import DRIVERS, Config
from outagecomms.models import Incident, Message
from tests.fakes.trickle import TricklingServer

INCIDENT = Incident(id="mail-down", title="T", summary="S")
BASE = "http://provider.test"


def channels(base: str) -> dict[str, tuple[dict[str, Any], tuple[str, str], str]]:
    """driver -> (settings, the route it calls, the message kind), all on ``base``."""
    sid = "AC" + "1" * 32
    return {
        "twilio": (
            {"from": "+15005550006", "account_sid": sid, "auth_token": "t" * 32},
            ("POST", f"{base}/2010-04-01/Accounts/{sid}/Messages.json"),
            "sms",
        ),
        "x": ({"bearer_token": "user-token-123"}, ("POST", f"{base}/2/tweets"), "social"),
        "sendgrid": (
            {"from": "outage@shop.example", "api_key": "SG.key-123456"},
            ("POST", f"{base}/v3/mail/send"),
            "email",
        ),
        "slack": (
            {"webhook_url": f"{base}/services/T0/B0/hook-123456"},
            ("POST", f"{base}/services/T0/B0/hook-123456"),
            "team",
        ),
        "http": ({"url": f"{base}/status.json"}, ("PUT", f"{base}/status.json"), "banner"),
    }


def channel_for(driver: str, base: str, tmp_path: Path, **extra: Any) -> tuple[Channel, str]:
    values, _, kind = channels(base)[driver]
    if driver not in ("slack", "http"):
        values = values | {"base_url": base}
    settings = DRIVERS[driver].model_validate({"driver": driver, **values, **extra})
    config = Config.model_validate({"path": tmp_path / "channels.yaml"})
    return build_channel(kind, kind, settings, config), kind  # type: ignore[arg-type]


DRIVER_NAMES = list(channels(BASE))
BODIES = {"list": b"[]", "null": b"null", "string": b'"queued"', "truncated": b'{"sid": "SM'}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(using="httpx", assert_all_called=False) as mock:
        yield mock


def message(kind: str) -> Message:
    recipient = {"sms": "+12015550123", "email": "ada@example.com"}.get(kind, "-")
    return Message(
        channel=kind,
        kind=kind,  # type: ignore[arg-type]
        recipient=recipient,
        text="Our mail server is down.",
        incident=INCIDENT,
        subject="Email is down" if kind == "email" else None,
        html="<p>Our mail server is down.</p>" if kind == "email" else None,
    )


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
@pytest.mark.parametrize("driver", DRIVER_NAMES)
async def test_a_2xx_that_is_not_a_json_object_is_unknown(
    router: respx.MockRouter, tmp_path: Path, driver: str, body: bytes
) -> None:
    _, (method, url), _ = channels(BASE)[driver]
    router.route(method=method, url=url).respond(
        201, content=body, headers={"Content-Type": "application/json"}
    )
    channel, kind = channel_for(driver, BASE, tmp_path)
    async with channel:
        [outcome] = await channel.send([message(kind)])
    assert outcome.state == "unknown", outcome
    assert outcome.code in ("bad-answer", "no-id")
    assert not outcome.retryable


@pytest.mark.parametrize("driver", DRIVER_NAMES)
async def test_a_trickling_answer_cannot_hold_a_send_past_its_timeout(
    tmp_path: Path, driver: str
) -> None:
    with TricklingServer(interval=0.2) as slow:
        channel, kind = channel_for(driver, slow.base_url, tmp_path, timeout=1)
        async with channel:
            started = time.monotonic()
            try:
                outcomes = await channel.send([message(kind)])
            except Exception as exc:  # the announcer classifies transport errors
                outcomes = [network_failure(exc)]
            elapsed = time.monotonic() - started
        received = slow.received
    assert received == 1
    assert elapsed < 2.5, f"{driver} waited {elapsed:.1f}s"
    assert outcomes[0].state == "unknown", outcomes[0]
    assert "1s timeout" in (outcomes[0].error or "")
