"""BlueskyPosts: atproto's client on the shared httpx client, one session per run, link facets
with UTF-8 byte offsets, threads (root and parent), rate limits, refused app passwords, and
session tokens that never leak."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from outagecomms.channels.bluesky import BlueskyPosts, PostRef
from outagecomms.config import BlueskySettings, Config
from outagecomms.errors import ConfigError
from outagecomms.models import Incident, Message
from outagecomms.redact import redact
from tests.fakes.bluesky import fake_jwt

BASE = "https://pds.test"
SESSION = f"{BASE}/xrpc/com.atproto.server.createSession"
CREATE = f"{BASE}/xrpc/com.atproto.repo.createRecord"
HANDLE = "acme.bsky.social"
PASSWORD = "abcd-efgh-ijkl-mnop"
DID = "did:plc:z72i7hdynmk6r22z27h6tvur"
ACCESS = fake_jwt(DID, "com.atproto.appPass", 1)
REFRESH = fake_jwt(DID, "com.atproto.refresh", 1)
INCIDENT = Incident(id="mail-down", title="T", summary="S")
URI1 = f"at://{DID}/app.bsky.feed.post/3l00000000001"
CID1 = "bafyreia" + "a" * 51
URI2 = f"at://{DID}/app.bsky.feed.post/3l00000000002"
CID2 = "bafyreib" + "b" * 51


def settings(**values: Any) -> BlueskySettings:
    return BlueskySettings.model_validate(
        {"driver": "bluesky", "base_url": BASE, "handle": HANDLE, "app_password": PASSWORD} | values
    )


def message(text: str = "Email is delayed.", reply_to: str | None = None) -> Message:
    return Message(
        channel="social",
        kind="social",
        recipient="-",
        text=text,
        incident=INCIDENT,
        reply_to=reply_to,
        locale="fr-CA",
    )


def session_body() -> dict[str, Any]:
    return {"did": DID, "handle": HANDLE, "accessJwt": ACCESS, "refreshJwt": REFRESH}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(using="httpx", assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate({"path": tmp_path / "channels.yaml"})


@pytest.fixture
async def sky(config: Config) -> AsyncIterator[BlueskyPosts]:
    async with BlueskyPosts("social", "social", settings(), config) as channel:
        yield channel


def refs(reply: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {part: (reply[part]["uri"], reply[part]["cid"]) for part in ("root", "parent")}


def record_of(route: respx.Route, n: int = -1) -> dict[str, Any]:
    body = json.loads(route.calls[n].request.content)
    assert body["repo"] == DID and body["collection"] == "app.bsky.feed.post"
    return body["record"]


async def test_one_session_then_posts_with_its_token(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    login = router.post(SESSION).respond(200, json=session_body())
    create = router.post(CREATE).respond(200, json={"uri": URI1, "cid": CID1})
    outcomes = await sky.send([message("one")])
    outcomes += await sky.send([message("two")])
    assert [o.state for o in outcomes] == ["sent", "sent"]
    assert outcomes[0].provider_id == f"{URI1}|{CID1}"
    assert len(login.calls) == 1
    assert json.loads(login.calls.last.request.content) == {
        "identifier": HANDLE,
        "password": PASSWORD,
    }
    assert create.calls.last.request.headers["authorization"] == f"Bearer {ACCESS}"
    record = record_of(create)
    assert record["$type"] == "app.bsky.feed.post" and record["text"] == "two"
    assert record["langs"] == ["fr-CA"] and "reply" not in record


async def test_link_facets_count_utf8_bytes_after_non_ascii_text(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    router.post(SESSION).respond(200, json=session_body())
    create = router.post(CREATE).respond(200, json={"uri": URI1, "cid": CID1})
    prefix = "Störung behoben ✅ — Détails : "
    url = "https://shop.example/status"
    await sky.send([message(f"{prefix}{url} merci")])
    [facet] = record_of(create)["facets"]
    start = len(prefix.encode())
    index = facet["index"]
    assert (index["byteStart"], index["byteEnd"]) == (start, start + len(url.encode()))
    assert start != len(prefix)  # characters and bytes differ here
    [feature] = facet["features"]
    assert feature["$type"] == "app.bsky.richtext.facet#link" and feature["uri"] == url


async def test_a_post_without_links_has_no_facets(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    router.post(SESSION).respond(200, json=session_body())
    create = router.post(CREATE).respond(200, json={"uri": URI1, "cid": CID1})
    await sky.send([message("no link here")])
    assert "facets" not in record_of(create)


async def test_replies_name_the_first_post_as_root_and_the_latest_as_parent(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    router.post(SESSION).respond(200, json=session_body())
    uri3, cid3 = f"at://{DID}/app.bsky.feed.post/3l00000000003", "bafyreic" + "c" * 51
    create = router.post(CREATE).mock(
        side_effect=[
            httpx.Response(200, json={"uri": URI2, "cid": CID2}),
            httpx.Response(200, json={"uri": uri3, "cid": cid3}),
        ]
    )
    [second] = await sky.send([message("update", reply_to=f"{URI1}|{CID1}")])
    assert refs(record_of(create)["reply"]) == {"root": (URI1, CID1), "parent": (URI1, CID1)}
    assert second.provider_id == f"{URI2}|{CID2}|{URI1}|{CID1}"
    [third] = await sky.send([message("resolved", reply_to=second.provider_id)])
    assert refs(record_of(create)["reply"]) == {"root": (URI1, CID1), "parent": (URI2, CID2)}
    assert PostRef.parse(third.provider_id) == PostRef(uri3, cid3, URI1, CID1)


def test_an_unknown_reply_reference_starts_a_new_thread() -> None:
    assert PostRef.parse("1860000000000000001") is None
    assert PostRef.parse(None) is None
    assert PostRef.parse("a||b") is None


async def test_refused_app_password_is_fatal_and_never_shown(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    router.post(SESSION).respond(
        401, json={"error": "AuthenticationRequired", "message": "Invalid identifier or password"}
    )
    create = router.post(CREATE).respond(200, json={"uri": URI1, "cid": CID1})
    [outcome] = await sky.send([message()])
    assert outcome.state == "failed" and outcome.fatal
    assert "Invalid identifier or password" in (outcome.error or "")
    assert "OUTAGECOMMS_CHANNELS__SOCIAL__APP_PASSWORD" in (outcome.error or "")
    assert PASSWORD not in (outcome.error or "")
    assert not create.called


async def test_rate_limit_honours_the_reset_time(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    import time

    router.post(SESSION).respond(200, json=session_body())
    router.post(CREATE).respond(
        429,
        json={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        headers={"ratelimit-reset": str(int(time.time()) + 30), "ratelimit-remaining": "0"},
    )
    [outcome] = await sky.send([message()])
    assert outcome.state == "failed" and outcome.retryable and outcome.code == "429"
    assert outcome.retry_after is not None and 25 < outcome.retry_after <= 30


async def test_rate_limited_session_is_retried_later(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    login = router.post(SESSION).mock(
        side_effect=[
            httpx.Response(429, json={"error": "RateLimitExceeded"}, headers={"retry-after": "12"}),
            httpx.Response(200, json=session_body()),
        ]
    )
    router.post(CREATE).respond(200, json={"uri": URI1, "cid": CID1})
    [first] = await sky.send([message()])
    assert first.retryable and first.retry_after == 12
    [second] = await sky.send([message()])
    assert second.state == "sent" and len(login.calls) == 2


async def test_bad_request_fails_without_retry(router: respx.MockRouter, sky: BlueskyPosts) -> None:
    router.post(SESSION).respond(200, json=session_body())
    router.post(CREATE).respond(
        400, json={"error": "InvalidRequest", "message": "Record/text must not be longer"}
    )
    [outcome] = await sky.send([message()])
    assert outcome.state == "failed" and not outcome.retryable and not outcome.fatal
    assert "Record/text must not be longer" in (outcome.error or "")


@pytest.mark.parametrize(
    ("status", "retried"), [(503, True), (502, True), (409, True), (413, False)]
)
async def test_which_errors_are_retried(
    router: respx.MockRouter, sky: BlueskyPosts, status: int, retried: bool
) -> None:
    router.post(SESSION).respond(200, json=session_body())
    router.post(CREATE).respond(status, json={"error": "Oops", "message": "no"})
    [outcome] = await sky.send([message()])
    assert outcome.state == "failed" and outcome.retryable is retried
    assert outcome.code == str(status) and not outcome.fatal


async def test_a_post_caught_mid_flight_reaches_the_announcer_as_httpx_error(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    """No idempotency key exists: the announcer must see the read timeout itself, which
    makes the post ``unknown`` instead of retrying it."""
    router.post(SESSION).respond(200, json=session_body())
    router.post(CREATE).mock(side_effect=httpx.ReadTimeout("no answer"))
    with pytest.raises(httpx.ReadTimeout):
        await sky.send([message()])


async def test_a_login_that_got_no_answer_is_retried(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    """Logging in again posts nothing, so unlike a post it is never ``unknown``."""
    login = router.post(SESSION).mock(
        side_effect=[httpx.ReadTimeout("no answer"), httpx.Response(200, json=session_body())]
    )
    router.post(CREATE).respond(200, json={"uri": URI1, "cid": CID1})
    [first] = await sky.send([message()])
    assert first.state == "failed" and first.retryable and "to log in" in (first.error or "")
    [second] = await sky.send([message()])
    assert second.state == "sent" and len(login.calls) == 2


async def test_session_tokens_are_redacted_once_received(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    router.post(SESSION).respond(200, json=session_body())
    router.post(CREATE).respond(
        500, json={"error": "InternalServerError", "message": f"bad token {ACCESS}"}
    )
    [outcome] = await sky.send([message()])
    assert ACCESS not in (outcome.error or "")
    assert ACCESS not in redact(f"log line {ACCESS} {REFRESH}")
    assert REFRESH not in redact(f"log line {REFRESH}")


async def test_check_creates_a_session(router: respx.MockRouter, sky: BlueskyPosts) -> None:
    router.post(SESSION).respond(200, json=session_body())
    result = await sky.check()
    assert result.status == "accepted" and HANDLE in result.detail and DID in result.detail


async def test_check_reports_a_refused_password(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    router.post(SESSION).respond(
        401, json={"error": "AuthenticationRequired", "message": "Invalid identifier or password"}
    )
    result = await sky.check()
    assert result.status == "refused" and PASSWORD not in result.detail


async def test_check_reports_an_unreachable_pds(
    router: respx.MockRouter, sky: BlueskyPosts
) -> None:
    router.post(SESSION).mock(side_effect=httpx.ConnectError("refused"))
    result = await sky.check()
    assert result.status == "error" and "cannot reach" in result.detail


async def test_missing_app_password_is_a_config_error(config: Config) -> None:
    channel = BlueskyPosts("social", "social", settings(app_password=None), config)
    with pytest.raises(ConfigError, match="OUTAGECOMMS_CHANNELS__SOCIAL__APP_PASSWORD"):
        await channel.open()


def test_default_pds_is_bsky_social() -> None:
    chosen = BlueskySettings.model_validate({"driver": "bluesky", "handle": HANDLE})
    assert chosen.effective_base_url == "https://bsky.social"
