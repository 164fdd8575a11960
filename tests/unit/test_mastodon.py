"""MastodonPosts: the /api/v1/statuses request on the shared httpx client, the Idempotency-Key
that makes retries safe, threads, rate limits, refused tokens and secrets that never leak."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from outagecomms.channels.mastodon import MastodonPosts, idempotency_key
from outagecomms.config import Config, MastodonSettings
from outagecomms.errors import ConfigError
from outagecomms.models import Incident, Message

BASE = "https://mastodon.test"
STATUSES = f"{BASE}/api/v1/statuses"
VERIFY = f"{BASE}/api/v1/accounts/verify_credentials"
TOKEN = "mastodon-token-0123456789"
INCIDENT = Incident(id="mail-down", title="T", summary="S")


def settings(**values: Any) -> MastodonSettings:
    return MastodonSettings.model_validate(
        {"driver": "mastodon", "base_url": BASE, "access_token": TOKEN} | values
    )


def message(
    text: str = "Email is delayed. Orders are safe.",
    reply_to: str | None = None,
    incident: Incident = INCIDENT,
    locale: str | None = "en",
) -> Message:
    return Message(
        channel="social",
        kind="social",
        recipient="-",
        text=text,
        incident=incident,
        reply_to=reply_to,
        locale=locale,
    )


def status(status_id: str = "113500000000000001") -> dict[str, Any]:
    return {"id": status_id, "url": f"{BASE}/@acme/{status_id}", "content": "<p>t</p>"}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(using="httpx", assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate({"path": tmp_path / "channels.yaml"})


@pytest.fixture
async def masto(config: Config) -> AsyncIterator[MastodonPosts]:
    async with MastodonPosts("social", "social", settings(), config) as channel:
        yield channel


async def test_posts_a_status_with_bearer_token_and_form(
    router: respx.MockRouter, masto: MastodonPosts
) -> None:
    route = router.post(STATUSES).respond(200, json=status())
    [outcome] = await masto.send([message(locale="fr-CA")])
    assert outcome.state == "sent" and outcome.provider_id == "113500000000000001"
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {
        "status": "Email is delayed. Orders are safe.",
        "visibility": "public",
        "language": "fr",
    }


async def test_visibility_and_language_from_settings(
    router: respx.MockRouter, config: Config
) -> None:
    route = router.post(STATUSES).respond(200, json=status())
    chosen = settings(visibility="unlisted", language="DE")
    async with MastodonPosts("social", "social", chosen, config) as channel:
        await channel.send([message(locale="fr")])
    form = dict(httpx.QueryParams(route.calls.last.request.content.decode()))
    assert form["visibility"] == "unlisted" and form["language"] == "de"


async def test_idempotency_key_is_stable_per_announcement_and_channel(
    router: respx.MockRouter, masto: MastodonPosts
) -> None:
    route = router.post(STATUSES).respond(200, json=status())
    await masto.send([message()])
    await masto.send([message()])
    resolved = INCIDENT.model_copy(update={"status": "resolved"})
    await masto.send([message(incident=resolved)])
    keys = [call.request.headers["idempotency-key"] for call in route.calls]
    assert keys[0] == keys[1] == idempotency_key("mail-down/investigating", "social")
    assert keys[2] == idempotency_key("mail-down/resolved", "social") != keys[0]
    assert idempotency_key("mail-down/investigating", "other") != keys[0]


async def test_a_replayed_key_answers_the_first_status(
    router: respx.MockRouter, masto: MastodonPosts
) -> None:
    """The instance answers a repeated key with the status already made: the retry after a
    lost answer records that one post, whatever the attempt."""
    made: dict[str, dict[str, Any]] = {}

    def instance(request: httpx.Request) -> httpx.Response:
        key = request.headers["idempotency-key"]
        first = key not in made
        made.setdefault(key, status(str(113500000000000001 + len(made))))
        if first:
            return httpx.Response(502, text="Bad Gateway")  # made, but the answer was lost
        return httpx.Response(200, json=made[key])

    router.post(STATUSES).mock(side_effect=instance)
    [first] = await masto.send([message()])
    assert first.state == "failed" and first.retryable and first.code == "502"
    [retry] = await masto.send([message()])
    assert retry.state == "sent" and retry.provider_id == "113500000000000001"
    assert len(made) == 1


async def test_thread_replies_to_the_latest_post(
    router: respx.MockRouter, masto: MastodonPosts
) -> None:
    route = router.post(STATUSES).respond(200, json=status("2"))
    await masto.send([message(reply_to="113500000000000001")])
    form = dict(httpx.QueryParams(route.calls.last.request.content.decode()))
    assert form["in_reply_to_id"] == "113500000000000001"


async def test_a_deleted_post_to_reply_to_posts_on_its_own(
    router: respx.MockRouter, masto: MastodonPosts
) -> None:
    def instance(request: httpx.Request) -> httpx.Response:
        if b"in_reply_to_id" in request.content:
            return httpx.Response(404, json={"error": "Record not found"})
        return httpx.Response(200, json=status("3"))

    route = router.post(STATUSES).mock(side_effect=instance)
    [outcome] = await masto.send([message(reply_to="gone")])
    assert outcome.state == "sent" and outcome.provider_id == "3"
    assert len(route.calls) == 2


async def test_rate_limit_waits_until_the_iso_reset(
    router: respx.MockRouter, masto: MastodonPosts
) -> None:
    reset = datetime.now(UTC) + timedelta(seconds=40)
    router.post(STATUSES).respond(
        429,
        json={"error": "Too many requests"},
        headers={"X-RateLimit-Reset": reset.isoformat(timespec="milliseconds")},
    )
    [outcome] = await masto.send([message()])
    assert outcome.state == "failed" and outcome.retryable and not outcome.fatal
    assert outcome.retry_after is not None and 35 < outcome.retry_after <= 40


@pytest.mark.parametrize("status_code", [500, 503])
async def test_server_errors_are_retried(
    router: respx.MockRouter, masto: MastodonPosts, status_code: int
) -> None:
    router.post(STATUSES).respond(status_code, text="oops")
    [outcome] = await masto.send([message()])
    assert outcome.retryable and outcome.code == str(status_code)


async def test_over_length_text_fails_without_retry(
    router: respx.MockRouter, masto: MastodonPosts
) -> None:
    router.post(STATUSES).respond(
        422, json={"error": "Validation failed: Text character limit of 500 exceeded"}
    )
    [outcome] = await masto.send([message("x" * 600)])
    assert outcome.state == "failed" and not outcome.retryable and not outcome.fatal
    assert "character limit of 500 exceeded" in (outcome.error or "")


@pytest.mark.parametrize("status_code", [401, 403])
async def test_refused_token_stops_the_channel_without_leaking_it(
    router: respx.MockRouter, masto: MastodonPosts, status_code: int
) -> None:
    router.post(STATUSES).respond(
        status_code, json={"error": f"The access token {TOKEN} is invalid"}
    )
    [outcome] = await masto.send([message()])
    assert outcome.state == "failed" and outcome.fatal
    assert TOKEN not in (outcome.error or "")
    assert "OUTAGECOMMS_CHANNELS__SOCIAL__ACCESS_TOKEN" in (outcome.error or "")


async def test_a_success_without_id_is_unknown(
    router: respx.MockRouter, masto: MastodonPosts
) -> None:
    router.post(STATUSES).respond(200, text="<html>maintenance</html>")
    [outcome] = await masto.send([message()])
    assert outcome.state == "unknown"


async def test_network_errors_reach_the_announcer(
    router: respx.MockRouter, masto: MastodonPosts
) -> None:
    router.post(STATUSES).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(httpx.ReadTimeout):
        await masto.send([message()])


async def test_check_verifies_credentials(router: respx.MockRouter, masto: MastodonPosts) -> None:
    route = router.get(VERIFY).respond(200, json={"id": "1", "username": "acme", "acct": "acme"})
    result = await masto.check()
    assert result.status == "accepted" and "@acme@mastodon.test" in result.detail
    assert route.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_check_reports_a_refused_token(
    router: respx.MockRouter, masto: MastodonPosts
) -> None:
    router.get(VERIFY).respond(401, json={"error": "The access token is invalid"})
    result = await masto.check()
    assert result.status == "refused" and "access token is invalid" in result.detail
    assert TOKEN not in result.detail


async def test_check_reports_an_unreachable_instance(
    router: respx.MockRouter, masto: MastodonPosts
) -> None:
    router.get(VERIFY).mock(side_effect=httpx.ConnectError("refused"))
    result = await masto.check()
    assert result.status == "error" and "cannot reach" in result.detail


async def test_missing_token_is_a_config_error(config: Config) -> None:
    channel = MastodonPosts("social", "social", settings(access_token=None), config)
    with pytest.raises(ConfigError, match="OUTAGECOMMS_CHANNELS__SOCIAL__ACCESS_TOKEN"):
        await channel.open()


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http:// or https:// URL"):
        settings(base_url="mastodon.test")


def test_base_url_is_required() -> None:
    with pytest.raises(ValueError, match="base_url"):
        MastodonSettings.model_validate({"driver": "mastodon"})


def test_reset_time_in_the_past_means_now() -> None:
    from outagecomms.channels.base import retry_after

    past = datetime.fromtimestamp(time.time() - 60, UTC).isoformat()
    assert retry_after({"x-ratelimit-reset": past}) == 0.0
    assert retry_after({"x-ratelimit-reset": "not a time"}) is None
