"""One-click unsubscribe over HTTP (RFC 8058): GET shows a button and changes nothing,
POST suppresses (source one-click) with 200 and no redirect, a bad token is 400."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from outagecomms.consent.tokens import make_token
from outagecomms.secret import serve_secret
from outagecomms.serve.app import create_app

from .consent_shop import ADA_EMAIL, make_shop, suppressions


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return make_shop(tmp_path, monkeypatch)


@pytest.fixture
async def client(config: Any) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(create_app(config)))
    await client.start_server()
    yield client
    await client.close()


def link(config: Any, address: str = ADA_EMAIL) -> str:
    return f"/unsubscribe/{make_token(serve_secret(config), address)}"


async def test_get_shows_a_button_and_changes_nothing(client: TestClient, config: Any) -> None:
    response = await client.get(link(config), allow_redirects=False)
    assert response.status == 200
    page = await response.text()
    assert '<form method="post">' in page and "<button" in page
    assert "a***@example.com" in page and ADA_EMAIL not in page
    assert suppressions(config) == {}


@pytest.mark.parametrize("how", ["urlencoded", "multipart", "button"])
async def test_post_unsubscribes_with_200_and_no_redirect(
    client: TestClient, config: Any, how: str
) -> None:
    if how == "urlencoded":
        data: Any = {"List-Unsubscribe": "One-Click"}
    elif how == "multipart":
        data = aiohttp.FormData()
        data.add_field("List-Unsubscribe", "One-Click")
        data.add_field("extra", b"x", filename="x.txt")  # forces multipart/form-data
    else:
        data = {"List-Unsubscribe": "One-Click"}  # what the page's form sends
    response = await client.post(link(config), data=data, allow_redirects=False)
    assert response.status == 200 and "Location" not in response.headers
    assert "You are unsubscribed" in await response.text()
    assert suppressions(config) == {ADA_EMAIL: ("email", "one-click")}


async def test_repeating_is_harmless(client: TestClient, config: Any) -> None:
    for _ in range(3):
        response = await client.post(link(config), data={"List-Unsubscribe": "One-Click"})
        assert response.status == 200
    assert suppressions(config) == {ADA_EMAIL: ("email", "one-click")}


async def test_bad_tokens_are_400_and_change_nothing(
    client: TestClient, config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good = link(config).rsplit("/", 1)[1]
    flipped = good[:5] + ("A" if good[5] != "A" else "B") + good[6:]
    other_secret = make_token("a-different-serve-secret-000", ADA_EMAIL)
    for token in (flipped, good[:-1], good + "A", other_secret, "x", "%00"):
        for method in ("GET", "POST"):
            response = await client.request(
                method, f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
            )
            assert response.status == 400, (method, token)
            assert "not valid" in await response.text()
    assert suppressions(config) == {}
    assert good not in caplog.text and flipped not in caplog.text


async def test_the_link_names_only_its_own_address(client: TestClient, config: Any) -> None:
    await client.post(link(config, "bob@example.com"), data={"List-Unsubscribe": "One-Click"})
    assert suppressions(config) == {"bob@example.com": ("email", "one-click")}


async def test_logs_never_hold_the_token(
    client: TestClient, config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = link(config)
    await client.get(path)
    await client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert path.rsplit("/", 1)[1] not in caplog.text
