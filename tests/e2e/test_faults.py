"""Faults end to end: the real CLI against fake providers that rate-limit, fail, go down,
answer ambiguously, leak credentials, or are used by two ``send`` processes at once.

Every test asserts on what a customer or an operator would see: the messages the
fakes accepted (never two for one person), the ledger, the exit code and the summary.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.fakes import FakeProviders, FakeSendGrid, FakeTwilio, FakeWebhook, FakeX, closed_port
from tests.fakes.sendgrid import errors_response
from tests.fakes.twilio import twilio_error
from tests.fakes.x import problem

from .conftest import CLI, Run
from .test_providers import INCIDENT_ID, INVESTIGATING, ROOT, channels_yaml, write_audience

PREFIX = "OUTAGECOMMS_CHANNELS"
PEOPLE = 60


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


@pytest.fixture
def fakes() -> Iterator[FakeProviders]:
    with FakeProviders() as providers:
        yield providers


def setting(channel: str, key: str, value: object) -> dict[str, str]:
    return {f"{PREFIX}__{channel.upper()}__{key.upper()}": str(value)}


def prepare(
    shop: Path, fakes: FakeProviders, people: int = PEOPLE
) -> tuple[dict[str, str], set[str], set[str]]:
    """channels.yaml with every channel on the fakes (own SMTP down, so SendGrid carries
    the email), an audience, and the environment; returns env, phones and emails."""
    (shop / "channels.yaml").write_text(channels_yaml(closed_port()))
    phones, emails = write_audience(shop / "audience.csv", people)
    return fakes.env(email_fallback=True), phones, emails


def ledger(run: Run, shop: Path, env: dict[str, str]) -> dict[str, dict[str, dict[str, Any]]]:
    """The incident's ledger rows of planned messages as {channel: {recipient: row}}
    (the ``skipped`` rows of audience rows a channel does not address are left out)."""
    shown = run("ledger", INCIDENT_ID, "--format", "json", cwd=shop, env=env)
    assert shown.returncode == 0, shown.stderr
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for row in json.loads(shown.stdout):
        if row["state"] != "skipped":
            rows.setdefault(row["channel"], {})[row["recipient"]] = row
    return rows


def once_each(received: list[str]) -> set[str]:
    """The recipients of ``received``, after checking that nobody appears twice."""
    twice = [to for to, n in Counter(received).items() if n > 1]
    assert not twice, f"sent twice to {twice[:5]}"
    return set(received)


def assert_everyone_reached_once(fakes: FakeProviders, phones: set[str], emails: set[str]) -> None:
    assert once_each([m["to"] for m in fakes.twilio.messages]) == phones
    assert once_each([m["to"] for m in fakes.sendgrid.emails]) == emails
    assert len(fakes.x.posts) == 1
    assert len(fakes.slack.received) == 1


def prime(fake: Any, requests: int) -> None:
    """Make ``requests`` throw-away requests, so that with ``fail_every`` the fake's next
    request is the one that fails (for the broadcast channels, which make one request)."""
    for _ in range(requests):
        httpx.get(fake.base_url + "/prime")


# --- rate limits and server errors ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after"), [(429, 0.3), (500, None)], ids=["429-retry-after", "500"]
)
def test_every_fifth_request_refused_everyone_still_reached_once(
    run: Run, shop: Path, fakes: FakeProviders, status: int, retry_after: float | None
) -> None:
    env, phones, emails = prepare(shop, fakes)
    for fake in fakes.all:
        fake.fail_every, fake.fail_status, fake.retry_after = 5, status, retry_after
    # X and Slack get one request each, SendGrid one per batch or a few: make their
    # first request the fifth, so it fails.
    for fake in (fakes.x, fakes.slack, fakes.sendgrid):
        prime(fake, 4)

    sent = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "every message was delivered" in sent.stdout
    assert_everyone_reached_once(fakes, phones, emails)
    assert fakes.twilio.faulted >= len(phones) // 5 and fakes.sendgrid.faulted >= 1
    assert fakes.x.faulted == 1 and fakes.slack.faulted == 1

    rows = ledger(run, shop, env)
    assert all(r["state"] == "sent" for channel in rows.values() for r in channel.values())
    # Every message of a refused request was tried again once, and the ledger counted it.
    assert sum(r["attempts"] for r in rows["sms"].values()) == len(phones) + fakes.twilio.faulted
    refused_emails = sum(
        len(r.json["personalizations"]) for r in fakes.sendgrid.faulted_requests if r.json
    )
    assert sum(r["attempts"] for r in rows["email"].values()) == len(emails) + refused_emails
    assert rows["social"]["-"]["attempts"] == 2 and rows["team"]["-"]["attempts"] == 2

    # No retry came sooner than Retry-After asked (or than the smallest backoff).
    least = retry_after if retry_after is not None else 0.25
    accepted = {r.form["To"]: r.received_at for r in fakes.twilio.requests if r.form}
    for refused in fakes.twilio.faulted_requests:
        assert accepted[refused.form["To"]] - refused.received_at >= least * 0.95


def test_x_rate_limit_reset_is_honoured_without_retry_after(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    env, _, _ = prepare(shop, fakes)
    # A 429 with only x-rate-limit-reset (the current epoch second, rounded up).
    fakes.x.fail_every, fakes.x.fail_status, fakes.x.retry_after = 2, 429, None
    prime(fakes.x, 1)
    sent = run("send", INVESTIGATING, "--yes", "--channel", "social", cwd=shop, env=env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    (refused,) = fakes.x.faulted_requests
    (post,) = [r for r in fakes.x.requests if r.path == "/2/tweets"]
    assert len(fakes.x.posts) == 1
    # The reset header named the next whole second: the retry did not come before it.
    assert int(post.received_at) > int(refused.received_at)


class CountingTwilio(FakeTwilio):
    """Holds each message ``hold`` seconds and counts how many it holds at once (``most``)."""

    hold = 0.1
    active = most = 0

    async def _create_message(self, request: web.Request) -> web.Response:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            await asyncio.sleep(self.hold)
            return await super()._create_message(request)
        finally:
            self.active -= 1


def test_concurrency_and_rate_from_channels_yaml_are_kept(run: Run, shop: Path) -> None:
    providers = FakeProviders()
    counting = providers.twilio = CountingTwilio()
    with providers as fakes:
        env, phones, _ = prepare(shop, fakes, people=30)
        config = (shop / "channels.yaml").read_text()
        assert "concurrency: 20}" in config

        (shop / "channels.yaml").write_text(config.replace("concurrency: 20}", "concurrency: 3}"))
        sent = run("send", INVESTIGATING, "--yes", "-c", "sms", cwd=shop, env=env)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert once_each([m["to"] for m in fakes.twilio.messages]) == phones
        assert counting.most <= 3

        fakes.reset()
        counting.hold = 0
        paced = config.replace("concurrency: 20}", "concurrency: 20, rate_per_second: 25}")
        (shop / "channels.yaml").write_text(paced)
        update = run(
            "send", "examples/incident-identified.yaml", "--yes", "-c", "sms", cwd=shop, env=env
        )
        assert update.returncode == 0, update.stdout + update.stderr
        times = sorted(r.received_at for r in fakes.twilio.requests)
        assert len(times) == len(phones)
        # 25 a second, evenly spaced: never faster.
        assert times[-1] - times[0] >= (len(times) - 1) / 25 * 0.95


# --- a provider down -------------------------------------------------------------------


def test_x_down_the_others_complete_and_a_later_run_sends_only_the_post(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    env, phones, emails = prepare(shop, fakes)
    env |= setting("social", "max_attempts", 3)
    fakes.x.down = True

    sent = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "Some messages were not delivered" in sent.stdout
    assert "failed social -" in sent.stdout and "503" in sent.stdout
    assert fakes.x.posts == [] and fakes.x.faulted == 3
    assert once_each([m["to"] for m in fakes.twilio.messages]) == phones
    assert once_each([m["to"] for m in fakes.sendgrid.emails]) == emails
    assert len(fakes.slack.received) == 1
    assert json.loads((shop / "public" / "status.json").read_text())["id"] == INCIDENT_ID
    social = ledger(run, shop, env)["social"]["-"]
    assert social["state"] == "failed" and social["attempts"] == 3 and "503" in social["error"]

    fakes.x.down = False
    fakes.reset()
    again = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(fakes.x.posts) == 1
    assert not fakes.twilio.requests and not fakes.sendgrid.requests and not fakes.slack.requests
    assert ledger(run, shop, env)["social"]["-"]["state"] == "sent"


def test_a_wait_longer_than_max_retry_seconds_fails_now_and_says_why(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    env, _, _ = prepare(shop, fakes)
    fakes.x.down, fakes.x.retry_after = True, 600  # "come back in ten minutes"
    sent = run("send", INVESTIGATING, "--yes", "-c", "social", cwd=shop, env=env)
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "asks to wait 600s, beyond max_retry_seconds (120s)" in sent.stdout
    assert fakes.x.faulted == 1
    social = ledger(run, shop, env)["social"]["-"]
    assert social["state"] == "failed" and social["attempts"] == 1


def test_breaker_pauses_a_failing_channel_and_leaves_its_rows_pending(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    env, phones, emails = prepare(shop, fakes)
    env |= setting("sms", "breaker_threshold", 5)
    fakes.twilio.down = True

    sent = run("send", INVESTIGATING, "--yes", "-c", "sms", "-c", "email", cwd=shop, env=env)
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "sms: paused after" in sent.stdout and "stays pending" in sent.stdout
    # The breaker stopped the flood: far fewer requests than messages, each tried at most twice.
    assert fakes.twilio.faulted < 2 * 20 < len(phones) and fakes.twilio.messages == []
    rows = ledger(run, shop, env)
    assert {r["state"] for r in rows["sms"].values()} == {"pending"}
    assert set(rows["sms"]) == phones
    assert once_each([m["to"] for m in fakes.sendgrid.emails]) == emails

    still_down = run("send", INVESTIGATING, "--yes", "-c", "sms", cwd=shop, env=env)
    assert still_down.returncode == 1, still_down.stdout + still_down.stderr
    assert "sms: paused after" in still_down.stdout and "Nothing new" not in still_down.stdout
    assert "Some messages were not delivered" in still_down.stdout

    fakes.twilio.down = False
    fakes.reset()
    again = run("send", INVESTIGATING, "--yes", "-c", "sms", "-c", "email", cwd=shop, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert once_each([m["to"] for m in fakes.twilio.messages]) == phones
    assert fakes.sendgrid.requests == []


def test_a_base_url_that_is_not_http_stops_preflight_and_nothing_is_sent(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    env, phones, _ = prepare(shop, fakes, people=12)
    broken = env | setting("social", "base_url", "ftp://x.example")
    sent = run("send", INVESTIGATING, "--yes", "-c", "social", "-c", "sms", cwd=shop, env=broken)
    assert sent.returncode == 2, sent.stdout + sent.stderr
    assert "'channels.social.base_url' must be an http:// or https:// URL" in sent.stderr
    assert "Traceback" not in sent.stderr
    assert fakes.twilio.requests == [] and fakes.x.requests == []

    again = run("send", INVESTIGATING, "--yes", "-c", "social", "-c", "sms", cwd=shop, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(fakes.x.posts) == 1 and len(fakes.twilio.messages) == len(phones)


# --- answers that leave a message's fate unknown ----------------------------------------


class DroppingTwilio(FakeTwilio):
    """Takes the message, then (while ``drop``) closes the connection instead of answering."""

    drop = True

    async def _create_message(self, request: web.Request) -> web.Response:
        response = await super()._create_message(request)
        if self.drop and request.transport is not None:
            request.transport.close()
        return response


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the fake never got there"
        time.sleep(0.05)


@pytest.mark.parametrize("fault", ["slow", "dropped"])
def test_an_ambiguous_answer_is_unknown_and_never_resent_without_asking(
    run: Run, shop: Path, fault: str
) -> None:
    providers = FakeProviders()
    dropping = providers.twilio = DroppingTwilio()
    dropping.drop = fault == "dropped"
    with providers as fakes:
        env, phones, _ = prepare(shop, fakes, people=12)
        if fault == "slow":
            # The provider takes each message but answers after our timeout.
            fakes.twilio.latency = 1.5
            env |= setting("sms", "timeout", 0.3)
        sent = run("send", INVESTIGATING, "--yes", "-c", "sms", cwd=shop, env=env)
        assert sent.returncode == 1, sent.stdout + sent.stderr
        assert "unknown sms" in sent.stdout
        # The slow fake still finishes taking the messages after we stopped waiting.
        wait_for(lambda: len(fakes.twilio.messages) == len(phones))
        fakes.twilio.latency = 0
        # The fake has every message once: retrying on our own would have sent it twice.
        assert once_each([m["to"] for m in fakes.twilio.messages]) == phones
        rows = ledger(run, shop, env)["sms"]
        assert {r["state"] for r in rows.values()} == {"unknown"}
        assert all(r["attempts"] == 1 for r in rows.values())

        fakes.reset()
        again = run("send", INVESTIGATING, "--yes", "-c", "sms", cwd=shop, env=env)
        assert again.returncode == 1, again.stdout + again.stderr
        assert f"{len(phones)} with an unknown outcome were not resent" in again.stdout
        assert fakes.twilio.requests == []

        dropping.drop = False
        asked = run(
            "send", INVESTIGATING, "--yes", "-c", "sms", "--retry-unknown", cwd=shop, env=env
        )
        assert asked.returncode == 0, asked.stdout + asked.stderr
        assert once_each([m["to"] for m in fakes.twilio.messages]) == phones
        assert {r["state"] for r in ledger(run, shop, env)["sms"].values()} == {"sent"}


def test_a_refused_connection_is_retried_then_failed_and_a_later_run_sends_it(
    run: Run, shop: Path, fakes: FakeProviders
) -> None:
    env, phones, _ = prepare(shop, fakes, people=12)
    dead = env | setting("sms", "base_url", f"http://127.0.0.1:{closed_port()}")
    dead |= setting("sms", "max_attempts", 2) | setting("sms", "breaker_threshold", 100)
    sent = run("send", INVESTIGATING, "--yes", "-c", "sms", cwd=shop, env=dead)
    assert sent.returncode == 1, sent.stdout + sent.stderr
    rows = ledger(run, shop, env)["sms"]
    assert {r["state"] for r in rows.values()} == {"failed"}
    assert all(r["attempts"] == 2 and "connect" in r["error"] for r in rows.values())

    again = run("send", INVESTIGATING, "--yes", "-c", "sms", cwd=shop, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert once_each([m["to"] for m in fakes.twilio.messages]) == phones


# --- two marketers pressing the button ---------------------------------------------------


def start_send(shop: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("OUTAGECOMMS_")}
    clean |= {"COLUMNS": "200", "NO_COLOR": "1", **env}
    return subprocess.Popen(
        [*CLI, "send", INVESTIGATING, "--yes", *extra],
        cwd=shop,
        env=clean,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """The output of a process once it ends; killed (failing the test) after ``timeout``."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(f"still running after {timeout}s:\n{stdout}{stderr}") from None


def test_two_sends_at_once_reach_everyone_once(run: Run, shop: Path, fakes: FakeProviders) -> None:
    env, phones, emails = prepare(shop, fakes, people=140)
    for fake in fakes.all:
        fake.latency = 0.01
    first, second = start_send(shop, env), start_send(shop, env)
    outputs = [finish(p, timeout=120) for p in (first, second)]
    for process, (stdout, stderr) in zip((first, second), outputs, strict=True):
        assert process.returncode in (0, 1), stdout + stderr
        assert "Traceback" not in stderr

    assert_everyone_reached_once(fakes, phones, emails)
    rows = ledger(run, shop, env)
    assert all(r["state"] == "sent" for channel in rows.values() for r in channel.values())
    assert all(r["attempts"] == 1 for channel in rows.values() for r in channel.values())

    fakes.reset()
    third = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
    assert third.returncode == 0 and "Nothing new to send" in third.stdout
    assert all(not fake.requests for fake in fakes.all)


# --- secrets ------------------------------------------------------------------------------


class LeakyTwilio(FakeTwilio):
    def _fault_body(self, status: int) -> web.Response:
        basic = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return twilio_error(
            status, 20500, f"internal error, token {self.auth_token}, Authorization: Basic {basic}"
        )


class LeakyX(FakeX):
    def _fault_body(self, status: int) -> web.Response:
        return problem(
            status,
            f"forbidden for consumer secret {self.consumer_secret} and token {self.access_token}",
        )


class LeakySendGrid(FakeSendGrid):
    def _fault_body(self, status: int) -> web.Response:
        return errors_response(
            status, [{"message": f"key {self.api_key} is not allowed", "field": None}]
        )


class LeakyWebhook(FakeWebhook):
    def _fault_body(self, status: int) -> web.Response:
        return web.Response(status=status, text=f"no such hook {self.url}")


def test_credentials_echoed_by_providers_never_show(run: Run, shop: Path) -> None:
    providers = FakeProviders()
    providers.twilio = LeakyTwilio(fail_every=4, fail_status=500)
    providers.x = LeakyX(fail_every=1, fail_status=403)
    providers.sendgrid = LeakySendGrid(fail_every=3, fail_status=400)
    providers.slack = LeakyWebhook(require_text=True, path=providers.slack.path, fail_every=1)
    with providers as fakes:
        env, phones, _ = prepare(shop, fakes, people=30)
        prime(fakes.sendgrid, 2)  # its first request (maybe its only one) is refused
        stopped = sorted(phones)[0]
        fakes.twilio.errors_for[stopped] = (400, 21211, f"bad To; token {fakes.twilio.auth_token}")
        env |= setting("sms", "max_attempts", 2) | setting("team", "max_attempts", 2)
        secrets = {
            "twilio auth token": fakes.twilio.auth_token,
            "twilio basic auth": base64.b64encode(
                f"{fakes.twilio.account_sid}:{fakes.twilio.auth_token}".encode()
            ).decode(),
            "x consumer secret": fakes.x.consumer_secret,
            "x access token": fakes.x.access_token,
            "sendgrid key": fakes.sendgrid.api_key,
            "slack webhook": fakes.slack.url,
        }

        outputs = {}
        sent = run("send", INVESTIGATING, "--yes", cwd=shop, env=env)
        assert sent.returncode == 1, sent.stdout + sent.stderr
        outputs["send"] = sent.stdout + sent.stderr
        # The failures are shown, with the provider's text, only without the secrets.
        assert "[redacted]" in sent.stdout and "21211" in sent.stdout
        verbose = run("--verbose", "send", INVESTIGATING, "--yes", cwd=shop, env=env)
        assert verbose.returncode == 1, verbose.stdout + verbose.stderr
        assert "DEBUG" in verbose.stderr and "[redacted]" in verbose.stderr
        outputs["send --verbose"] = verbose.stdout + verbose.stderr
        for view in (("ledger", "--format", "json"), ("ledger",), ("report", INCIDENT_ID)):
            shown = run(*view, cwd=shop, env=env)
            assert shown.returncode == 0, shown.stderr
            outputs[" ".join(view)] = shown.stdout + shown.stderr
        assert fakes.twilio.faulted and fakes.x.faulted and fakes.sendgrid.faulted
        assert fakes.slack.faulted

    files = {str(p): p.read_bytes() for p in (shop / ".outagecomms").rglob("*") if p.is_file()}
    assert any(name.endswith("ledger.db") for name in files)
    for label, secret in secrets.items():
        for where, text in outputs.items():
            assert secret not in text, f"{label} shown by {where}"
        for name, data in files.items():
            assert secret.encode() not in data, f"{label} written to {name}"
