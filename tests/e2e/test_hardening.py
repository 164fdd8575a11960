"""Hardening, end to end, through the real CLI against fakes that receive every request.

* Never twice: a fallback carries only what the primary certainly did not take, a 2xx
  the product cannot read is ``unknown``, and a provider that trickles its answer cannot
  hold a send past its ``timeout``.
* Secrets in the forms a terminal shows them (``--verbose`` logs of rewritten URLs).
"""

from __future__ import annotations

import base64
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.fakes import FakeTwilio, FakeWebhook, closed_port
from tests.fakes._base import json_response
from tests.fakes.trickle import TricklingServer

from .conftest import Run
from .test_faults import ledger, once_each, setting
from .test_providers import INVESTIGATING, ROOT

ORGANIZATION = (
    "organization: {name: Acme Shop, website: https://shop.example,"
    " status_url: https://shop.example/status}\naudience: audience.csv\ndefault_region: US\n"
)
PHONES = ["+12015550101", "+12015550102", "+12015550103"]


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def write_config(shop: Path, channels: str) -> None:
    (shop / "channels.yaml").write_text(ORGANIZATION + "channels:\n" + channels)
    lines = ["email,phone,sms_opt_in"] + [f",{phone},yes" for phone in PHONES]
    (shop / "audience.csv").write_text("\n".join(lines) + "\n")


def twilio_env(channel: str, fake: FakeTwilio, *, fallback: bool = False) -> dict[str, str]:
    prefix = f"{channel}__fallback" if fallback else channel
    return (
        setting(prefix, "account_sid", fake.account_sid)
        | setting(prefix, "auth_token", fake.auth_token)
        | setting(prefix, "base_url", fake.base_url)
    )


def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the fake never got there"
        time.sleep(0.05)


def test_a_twilio_primary_answering_late_is_unknown_and_never_resent_by_its_fallback(
    run: Run, shop: Path
) -> None:
    with FakeTwilio(latency=1.5) as primary, FakeTwilio(account_sid="AC" + "f" * 32) as second:
        write_config(
            shop,
            "  sms: {driver: twilio, from: '+15005550006', timeout: 0.4, max_attempts: 1,"
            " fallback: {driver: twilio}}\n",
        )
        env = twilio_env("sms", primary) | twilio_env("sms", second, fallback=True)
        sent = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
        assert sent.returncode == 1, sent.stdout + sent.stderr
        # The primary takes every message after we stopped waiting for its answer.
        wait_for(lambda: len(primary.messages) == len(PHONES))
        received = [m["to"] for m in primary.messages + second.messages]
        assert once_each(received) == set(PHONES)
        assert second.requests == []
        rows = ledger(run, shop, env)["sms"]
        assert {row["state"] for row in rows.values()} == {"unknown"}


def test_a_twilio_primary_that_is_down_hands_everything_to_the_fallback(
    run: Run, shop: Path
) -> None:
    with FakeTwilio() as second:
        write_config(
            shop,
            "  sms: {driver: twilio, from: '+15005550006', timeout: 2,"
            " fallback: {driver: twilio}}\n",
        )
        env = (
            setting("sms", "account_sid", second.account_sid)
            | setting("sms", "auth_token", second.auth_token)
            | setting("sms", "base_url", f"http://127.0.0.1:{closed_port()}")
            | twilio_env("sms", second, fallback=True)
        )
        sent = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert once_each([m["to"] for m in second.messages]) == set(PHONES)
        rows = ledger(run, shop, env)["sms"]
        assert {row["state"] for row in rows.values()} == {"sent"}


def test_a_slack_primary_answering_late_is_unknown_and_never_resent_by_its_fallback(
    run: Run, shop: Path
) -> None:
    with FakeWebhook(latency=1.5) as primary, FakeWebhook() as second:
        write_config(shop, "  team: {driver: slack, timeout: 0.4, fallback: {driver: slack}}\n")
        env = setting("team", "webhook_url", primary.url) | setting(
            "team__fallback", "webhook_url", second.url
        )
        sent = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
        assert sent.returncode == 1, sent.stdout + sent.stderr
        wait_for(lambda: len(primary.received) == 1)
        time.sleep(0.3)
        assert second.requests == []
        assert len(primary.received) == 1
        assert ledger(run, shop, env)["team"]["-"]["state"] == "unknown"


class OddTwilio(FakeTwilio):
    """Takes the message, then answers 201 with a body that is not a message object."""

    def __init__(self, body: object) -> None:
        super().__init__()
        self.body = body

    async def _create_message(self, request: web.Request) -> web.StreamResponse:
        await super()._create_message(request)
        return json_response(201, self.body)


@pytest.mark.parametrize("body", [[], None, "queued"], ids=["list", "null", "string"])
def test_a_2xx_twilio_cannot_read_is_unknown_not_failed_and_not_resent(
    run: Run, shop: Path, body: object
) -> None:
    with OddTwilio(body) as fake:
        write_config(shop, "  sms: {driver: twilio, from: '+15005550006'}\n")
        env = twilio_env("sms", fake)
        sent = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
        assert sent.returncode == 1, sent.stdout + sent.stderr
        rows = ledger(run, shop, env)["sms"]
        assert {row["state"] for row in rows.values()} == {"unknown"}
        assert all("could not be read" in row["error"] for row in rows.values())
        again = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
        assert again.returncode == 1
        assert once_each([m["to"] for m in fake.messages]) == set(PHONES)


def test_a_provider_trickling_its_answer_cannot_hold_a_send_past_its_timeout(
    run: Run, shop: Path
) -> None:
    with TricklingServer(interval=0.3) as slow:
        write_config(
            shop, "  sms: {driver: twilio, from: '+15005550006', timeout: 1, concurrency: 3}\n"
        )
        env = (
            setting("sms", "account_sid", "AC" + "a" * 32)
            | setting("sms", "auth_token", "b" * 32)
            | setting("sms", "base_url", slow.base_url)
        )
        started = time.monotonic()
        sent = run("send", INVESTIGATING, "--yes", cwd=shop, env=env, timeout=60)
        elapsed = time.monotonic() - started
        assert sent.returncode == 1, sent.stdout + sent.stderr
        # Every request reached the server: each is unknown, none was sent twice.
        assert slow.received == len(PHONES)
        assert elapsed < 15, f"the send took {elapsed:.1f}s"
        rows = ledger(run, shop, env)["sms"]
        assert {row["state"] for row in rows.values()} == {"unknown"}
        assert all("1s timeout" in row["error"] for row in rows.values())


# --- secrets ---------------------------------------------------------------------


def test_verbose_log_never_shows_a_webhook_url_httpx_normalised(run: Run, shop: Path) -> None:
    token = secrets.token_urlsafe(18)
    with FakeWebhook() as slack:
        write_config(shop, "  team: {driver: slack}\n")
        written = f"HTTP://127.0.0.1:{slack.port}/services/./T0AB12CD/B0EF34GH/{token}"
        env = setting("team", "webhook_url", written)
        sent = run("--verbose", "send", INVESTIGATING, "--yes", cwd=shop, env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert len(slack.received) == 1
        # The request went to the normalised path, and the log line names the request.
        assert slack.received[0].path == f"/services/T0AB12CD/B0EF34GH/{token}"
        assert "HTTP Request: POST" in sent.stderr
        shown = sent.stdout + sent.stderr
        assert token not in shown
        assert "B0EF34GH" not in shown
        assert base64.b64encode(token.encode()).decode()[:12] not in shown


# --- .env --------------------------------------------------------------------------


def test_only_the_env_file_next_to_channels_yaml_is_read(run: Run, shop: Path) -> None:
    with FakeWebhook() as trusted, FakeWebhook() as stray:
        write_config(shop, "  team: {driver: slack}\n")
        (shop / ".env").write_text(f"OUTAGECOMMS_CHANNELS__TEAM__WEBHOOK_URL={trusted.url}\n")
        # A .env in the folder the command runs in, e.g. an untrusted download folder.
        elsewhere = shop / "downloads"
        elsewhere.mkdir()
        (elsewhere / ".env").write_text(
            f"OUTAGECOMMS_CHANNELS__TEAM__WEBHOOK_URL={stray.url}\n"
            f"OUTAGECOMMS_CHANNELS__TEAM__TIMEOUT=1\n"
        )
        config = str(shop / "channels.yaml")
        sent = run("--config", config, "send", str(shop / INVESTIGATING), "--yes", cwd=elsewhere)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert len(trusted.received) == 1
        assert stray.requests == []


def test_the_environment_wins_over_the_env_file(run: Run, shop: Path) -> None:
    with FakeWebhook() as from_file, FakeWebhook() as from_environment:
        write_config(shop, "  team: {driver: slack}\n")
        (shop / ".env").write_text(f"OUTAGECOMMS_CHANNELS__TEAM__WEBHOOK_URL={from_file.url}\n")
        env = setting("team", "webhook_url", from_environment.url)
        sent = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert len(from_environment.received) == 1
        assert from_file.requests == []


# --- Rich markup ---------------------------------------------------------------------


def test_folder_names_that_look_like_markup_are_printed_as_written(
    run: Run, tmp_path: Path
) -> None:
    made = run("init", "[/]shop [bold]")
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Created [/]shop [bold]/channels.yaml" in made.stdout
    # Run as ``python -m outagecomms`` (as the tests run it), the next step names that.
    assert f"cd [/]shop [bold] && {sys.executable} -m outagecomms send" in made.stdout
    checked = run("--config", "[/]shop [bold]/channels.yaml", "check", cwd=tmp_path)
    assert "Traceback" not in checked.stderr
    assert "Config [/]shop [bold]/channels.yaml: OK" in checked.stdout
