"""XPosts: tweepy's requests bridged onto httpx, the /2/tweets request, and how answers
become outcomes (threads, rate limits, duplicates, credentials that never leak)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import respx
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature
from pydantic import ValidationError

from outagecomms.channels.x import XPosts
from outagecomms.config import Config, XSettings
from outagecomms.errors import ConfigError
from outagecomms.models import Incident, Message
from tests.fakes.x import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_ACCESS_TOKEN_SECRET,
    DEFAULT_BEARER_TOKEN,
    DEFAULT_CONSUMER_KEY,
    DEFAULT_CONSUMER_SECRET,
    FakeX,
)

BASE = "http://x.test/regional"
POSTS = f"{BASE}/2/tweets"
ME = f"{BASE}/2/users/me"
OAUTH1 = {
    "consumer_key": "ck-consumer-key-1",
    "consumer_secret": "cs-consumer-secret-2",
    "access_token": "at-access-token-3",
    "access_token_secret": "ats-token-secret-4",
}
BEARER = "oauth2-user-token-5"
INCIDENT = Incident(id="mail-down", title="T", summary="S")
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
_OAUTH_PARAM = re.compile(r'([A-Za-z0-9_]+)="([^"]*)"')


def settings(**values: Any) -> XSettings:
    return XSettings.model_validate({"driver": "x", "base_url": BASE} | values)


def message(
    text: str = "Email is delayed. Orders are safe.", reply_to: str | None = None
) -> Message:
    return Message(
        channel="social",
        kind="social",
        recipient="-",
        text=text,
        incident=INCIDENT,
        reply_to=reply_to,
    )


def problem(status: int, detail: str, title: str = "Forbidden") -> dict[str, Any]:
    return {"detail": detail, "type": "about:blank", "title": title, "status": status}


def created(post_id: str = "1860000000000000001", text: str = "t") -> dict[str, Any]:
    return {"data": {"id": post_id, "edit_history_tweet_ids": [post_id], "text": text}}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    # using="httpx": respx patches httpx clients, which is where the bridge sends tweepy's calls.
    with respx.mock(using="httpx", assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate({"path": tmp_path / "channels.yaml"})


@pytest.fixture
async def x(config: Config) -> AsyncIterator[XPosts]:
    async with XPosts("social", "social", settings(**OAUTH1), config) as channel:
        yield channel


@pytest.fixture
async def x_bearer(config: Config) -> AsyncIterator[XPosts]:
    async with XPosts("social", "social", settings(bearer_token=BEARER), config) as channel:
        yield channel


def oauth_params(request: httpx.Request) -> dict[str, str]:
    header = request.headers["authorization"]
    assert header.startswith("OAuth ")
    return {k: unquote(v) for k, v in _OAUTH_PARAM.findall(header)}


# --- the request -------------------------------------------------------------------


async def test_posts_to_base_url_signed_over_the_url_sent(
    router: respx.MockRouter, x: XPosts
) -> None:
    route = router.post(POSTS).respond(201, json=created("1860000000000000001"))
    [outcome] = await x.send([message()])
    assert (outcome.state, outcome.provider_id) == ("sent", "1860000000000000001")
    request = route.calls.last.request
    assert str(request.url) == POSTS
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"text": "Email is delayed. Orders are safe."}
    params = oauth_params(request)
    assert params["oauth_consumer_key"] == OAUTH1["consumer_key"]
    assert params["oauth_token"] == OAUTH1["access_token"]
    assert params["oauth_signature_method"] == "HMAC-SHA1"
    # The signature covers base_url, not tweepy's hard-coded host: a real server accepts it.
    signed = OAuthRequest(str(request.url), "POST")
    signed.params = [(k, v) for k, v in params.items() if k not in ("oauth_signature", "realm")]
    signed.signature = params["oauth_signature"]
    assert signature.verify_hmac_sha1(
        signed, OAUTH1["consumer_secret"], OAUTH1["access_token_secret"]
    )
    signed.uri = "https://api.twitter.com/2/tweets"
    assert not signature.verify_hmac_sha1(
        signed, OAUTH1["consumer_secret"], OAUTH1["access_token_secret"]
    )


async def test_a_later_announcement_replies_to_the_latest_post(
    router: respx.MockRouter, x: XPosts
) -> None:
    route = router.post(POSTS).respond(201, json=created("1860000000000000002"))
    [outcome] = await x.send([message("Fixed.", reply_to="1860000000000000001")])
    assert outcome.provider_id == "1860000000000000002"
    assert json.loads(route.calls.last.request.content) == {
        "text": "Fixed.",
        "reply": {"in_reply_to_tweet_id": "1860000000000000001"},
    }


async def test_an_oauth2_user_token_is_sent_as_bearer(
    router: respx.MockRouter, x_bearer: XPosts
) -> None:
    route = router.post(POSTS).respond(201, json=created())
    [outcome] = await x_bearer.send([message()])
    assert outcome.state == "sent"
    assert route.calls.last.request.headers["authorization"] == f"Bearer {BEARER}"


async def test_oauth1_is_preferred_when_both_forms_are_set(
    router: respx.MockRouter, config: Config
) -> None:
    route = router.post(POSTS).respond(201, json=created())
    async with XPosts("social", "social", settings(**OAUTH1, bearer_token=BEARER), config) as x:
        await x.send([message()])
    assert route.calls.last.request.headers["authorization"].startswith("OAuth ")


async def test_tweepy_runs_off_the_event_loop_thread(router: respx.MockRouter, x: XPosts) -> None:
    threads: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        threads.append(threading.get_ident())
        return httpx.Response(201, json=created())

    router.post(POSTS).mock(side_effect=answer)
    await x.send([message()])
    assert threads and threads[0] != threading.get_ident()


# --- answers -------------------------------------------------------------------------


async def test_rate_limit_waits_until_the_reset_epoch(router: respx.MockRouter, x: XPosts) -> None:
    reset = int(time.time()) + 30
    headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
    router.post(POSTS).respond(
        429, json=problem(429, "Too Many Requests", "Too Many Requests"), headers=headers
    )
    [outcome] = await x.send([message()])
    assert (outcome.state, outcome.retryable, outcome.fatal, outcome.code) == (
        "failed",
        True,
        False,
        "429",
    )
    assert outcome.retry_after is not None and 27 <= outcome.retry_after <= 30


async def test_rate_limit_honours_retry_after(router: respx.MockRouter, x: XPosts) -> None:
    router.post(POSTS).respond(429, text="slow down", headers={"Retry-After": "7"})
    [outcome] = await x.send([message()])
    assert (outcome.retryable, outcome.retry_after) == (True, 7.0)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(
    router: respx.MockRouter, x: XPosts, status: int
) -> None:
    router.post(POSTS).respond(status, json=problem(status, "Service Unavailable", "Unavailable"))
    [outcome] = await x.send([message()])
    assert (outcome.state, outcome.retryable, outcome.fatal) == ("failed", True, False)
    assert outcome.code == str(status)


async def test_unauthorized_stops_the_channel(router: respx.MockRouter, x: XPosts) -> None:
    router.post(POSTS).respond(401, json=problem(401, "Unauthorized", "Unauthorized"))
    [outcome] = await x.send([message()])
    assert (outcome.state, outcome.retryable, outcome.fatal, outcome.code) == (
        "failed",
        False,
        True,
        "401",
    )
    assert "HTTP 401: Unauthorized" in (outcome.error or "")
    assert "OUTAGECOMMS_CHANNELS__SOCIAL__*" in (outcome.error or "")


async def test_an_expired_oauth2_token_names_its_variable(
    router: respx.MockRouter, x_bearer: XPosts
) -> None:
    router.post(POSTS).respond(401, json=problem(401, "Unauthorized", "Unauthorized"))
    [outcome] = await x_bearer.send([message()])
    assert outcome.fatal
    assert "OUTAGECOMMS_CHANNELS__SOCIAL__BEARER_TOKEN" in (outcome.error or "")


async def test_a_duplicate_is_a_permanent_failure_that_says_so(
    router: respx.MockRouter, x: XPosts
) -> None:
    router.post(POSTS).respond(403, json=problem(403, DUPLICATE))
    [outcome] = await x.send([message()])
    assert (outcome.state, outcome.retryable, outcome.fatal, outcome.code) == (
        "failed",
        False,
        False,
        "duplicate",
    )
    error = outcome.error or ""
    assert "duplicate of an earlier post" in error
    assert DUPLICATE in error


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            403,
            problem(403, "You are not permitted to perform this action."),
            "HTTP 403: You are not permitted to perform this action.",
        ),
        (
            400,
            {
                "errors": [{"parameters": {"text": []}, "message": "text is required"}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
            },
            "HTTP 400: One or more parameters to your request was invalid.; text is required",
        ),
        (404, "<html>not here</html>", "HTTP 404: <html>not here</html>"),
    ],
)
async def test_other_refusals_are_permanent_with_x_detail(
    router: respx.MockRouter, x: XPosts, status: int, body: Any, expected: str
) -> None:
    answer = {"json": body} if isinstance(body, dict) else {"text": body}
    router.post(POSTS).respond(status, **answer)
    [outcome] = await x.send([message()])
    assert (outcome.state, outcome.retryable, outcome.fatal) == ("failed", False, False)
    assert (outcome.code, outcome.error) == (str(status), expected)


async def test_no_secret_appears_in_an_outcome(router: respx.MockRouter, x: XPosts) -> None:
    echoed = " ".join(OAUTH1.values())
    router.post(POSTS).respond(401, json=problem(401, f"bad credentials: {echoed}"))
    [outcome] = await x.send([message()])
    text = outcome.error_text or ""
    assert "[redacted]" in text
    for secret in OAUTH1.values():
        assert secret not in text


async def test_no_bearer_token_appears_in_an_outcome(
    router: respx.MockRouter, x_bearer: XPosts
) -> None:
    router.post(POSTS).respond(400, text=f"Authorization: Bearer {BEARER} is malformed")
    [outcome] = await x_bearer.send([message()])
    assert BEARER not in (outcome.error_text or "")
    assert "[redacted]" in (outcome.error or "")


async def test_a_success_without_an_id_is_unknown_not_sent(
    router: respx.MockRouter, x: XPosts
) -> None:
    router.post(POSTS).respond(200, text="<html>captive portal</html>")
    [outcome] = await x.send([message()])
    assert (outcome.state, outcome.provider_id, outcome.retryable) == ("unknown", None, False)


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadTimeout])
async def test_network_errors_propagate_as_httpx_errors(
    router: respx.MockRouter, x: XPosts, error: type[httpx.TransportError]
) -> None:
    # The announcer classifies httpx errors (connect: retry; no answer: unknown).
    router.post(POSTS).mock(side_effect=error("boom"))
    with pytest.raises(error):
        await x.send([message()])


# --- check ---------------------------------------------------------------------------


async def test_check_reads_the_authenticated_user(router: respx.MockRouter, x: XPosts) -> None:
    posts = router.post(POSTS).respond(201, json=created())
    me = router.get(ME).respond(
        200, json={"data": {"id": "1", "name": "Acme Shop", "username": "acmeshop"}}
    )
    result = await x.check()
    assert (result.status, result.detail) == ("accepted", "authenticated as @acmeshop")
    assert oauth_params(me.calls.last.request)["oauth_consumer_key"] == OAUTH1["consumer_key"]
    assert not posts.called


async def test_check_with_an_oauth2_token(router: respx.MockRouter, x_bearer: XPosts) -> None:
    me = router.get(ME).respond(200, json={"data": {"id": "1", "username": "acmeshop"}})
    assert (await x_bearer.check()).status == "accepted"
    assert me.calls.last.request.headers["authorization"] == f"Bearer {BEARER}"


@pytest.mark.parametrize(
    ("status", "expected"), [(401, "refused"), (403, "refused"), (500, "error")]
)
async def test_check_refused_or_error(
    router: respx.MockRouter, x: XPosts, status: int, expected: str
) -> None:
    router.get(ME).respond(status, json=problem(status, f"nope {OAUTH1['access_token']}"))
    result = await x.check()
    assert result.status == expected
    assert f"HTTP {status}" in result.detail
    assert OAUTH1["access_token"] not in result.detail


async def test_check_cannot_reach_x(router: respx.MockRouter, x: XPosts) -> None:
    router.get(ME).mock(side_effect=httpx.ConnectError("connection refused"))
    result = await x.check()
    assert result.status == "error" and "cannot reach X" in result.detail


# --- configuration -------------------------------------------------------------------


async def test_missing_credentials_name_the_variables(config: Config) -> None:
    channel = XPosts("social", "social", settings(consumer_key="only-the-key"), config)
    with pytest.raises(ConfigError) as raised:
        await channel.open()
    text = str(raised.value)
    assert "OUTAGECOMMS_CHANNELS__SOCIAL__ACCESS_TOKEN_SECRET" in text
    assert "OUTAGECOMMS_CHANNELS__SOCIAL__BEARER_TOKEN" in text
    assert "OUTAGECOMMS_CHANNELS__SOCIAL__CONSUMER_KEY " not in text


def test_a_base_url_without_a_scheme_is_refused_with_the_settings() -> None:
    with pytest.raises(ValidationError, match="http:// or https://"):
        settings(bearer_token=BEARER, base_url="x.test")


# --- against the fake X server ---------------------------------------------------


@pytest.fixture
def fake_x() -> Iterator[FakeX]:
    with FakeX() as fake:
        yield fake


def fake_settings(fake: FakeX, **values: Any) -> XSettings:
    oauth1 = {
        "consumer_key": DEFAULT_CONSUMER_KEY,
        "consumer_secret": DEFAULT_CONSUMER_SECRET,
        "access_token": DEFAULT_ACCESS_TOKEN,
        "access_token_secret": DEFAULT_ACCESS_TOKEN_SECRET,
    }
    return settings(base_url=fake.base_url, **(values or oauth1))


async def test_a_thread_on_the_fake_server(fake_x: FakeX, config: Config) -> None:
    async with XPosts("social", "social", fake_settings(fake_x), config) as x:
        [first] = await x.send([message("Email is delayed.")])
        assert first.state == "sent" and first.provider_id
        [second] = await x.send([message("Email works again.", reply_to=first.provider_id)])
        [again] = await x.send([message("Email works again.")])
        check = await x.check()
    assert second.state == "sent"
    assert fake_x.posts == [
        {"id": first.provider_id, "text": "Email is delayed.", "in_reply_to": None},
        {"id": second.provider_id, "text": "Email works again.", "in_reply_to": first.provider_id},
    ]
    assert (again.state, again.code) == ("failed", "duplicate")
    assert (check.status, check.detail) == ("accepted", "authenticated as @acmeshop")


async def test_the_fake_server_refuses_a_wrong_token(fake_x: FakeX, config: Config) -> None:
    wrong = fake_settings(fake_x, bearer_token="not-" + DEFAULT_BEARER_TOKEN)
    async with XPosts("social", "social", wrong, config) as x:
        [outcome] = await x.send([message()])
        check = await x.check()
    assert (outcome.state, outcome.fatal) == ("failed", True)
    assert check.status == "refused"
    assert fake_x.posts == []


async def test_the_timeout_setting_applies(fake_x: FakeX, config: Config) -> None:
    fake_x.latency = 1.0
    async with XPosts(
        "social",
        "social",
        fake_settings(fake_x, timeout=0.2, bearer_token=DEFAULT_BEARER_TOKEN),
        config,
    ) as x:
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpx.ReadTimeout):
            await x.send([message()])
    assert asyncio.get_running_loop().time() - started < 0.9
