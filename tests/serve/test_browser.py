"""The pages and the banner in a real browser: Debian's Chromium driven by Playwright.

No browser is downloaded: Playwright drives /usr/bin/chromium (``.ci/run`` installs it).
Locally a machine without it skips these tests; in CI (CI=true) they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from .conftest import MakeClient
from .records import NOW, record

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
XSS = '<img src=x onerror="window.pwned=1;alert(1)">'


def _browser_or_skip() -> None:
    problem = None
    if not os.path.exists(CHROMIUM):
        problem = "Chromium is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "Playwright is not installed (pip install -e '.[dev]')"
    if problem and os.environ.get("CI") == "true":
        pytest.fail(problem + ": browser tests must run in CI")
    if problem:
        pytest.skip(problem)


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    _browser_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        await chromium.close()


@pytest.fixture
async def watched_page(browser):
    """A page that records every dialog (an alert would mean injected code ran)."""
    context = await browser.new_context(timezone_id="Europe/Paris", locale="en-GB")
    page = await context.new_page()
    page.dialogs = []

    async def dismiss(dialog):
        page.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    yield page
    await context.close()


async def host_site(status: TestClient) -> TestClient:
    """Another site, on another port, that embeds the banner with one script tag."""
    html = (
        "<!doctype html><html><head><title>Acme Shop</title></head><body>"
        "<header id='site-header'>Acme Shop</header><main><p>Welcome to our shop.</p></main>"
        f"<script src='http://{status.host}:{status.port}/banner.js' async></script>"
        "</body></html>"
    )

    async def home(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", home)
    site = TestClient(TestServer(app))
    await site.start_server()
    return site


def url(client: TestClient, path: str = "/") -> str:
    return f"http://{client.host}:{client.port}{path}"


async def test_status_page_shows_the_open_incident_with_local_times(
    make_client: MakeClient, watched_page
):
    status = await make_client(
        [
            record("mail", sent=NOW - timedelta(hours=1), summary="We are looking into it."),
            record("mail", "identified", sent=NOW, summary="A disk is full."),
        ]
    )
    page = watched_page
    await page.goto(url(status))
    card = page.locator("article.card").first
    assert "Email delivery is delayed" in await card.locator("h3").inner_text()
    assert "A disk is full." in await card.inner_text()
    assert "Partial service outage" in await page.locator("h1").inner_text()
    # Paris is not UTC: the reader's time is added after the UTC time ("Updated" = NOW).
    paris = NOW.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M")
    assert paris in await page.locator(".state .local").inner_text()
    await card.locator("h3 a").click()
    await page.wait_for_url(url(status, "/incidents/mail"))
    assert "We are looking into it." in await page.locator("main").inner_text()


async def test_status_page_works_without_javascript(make_client: MakeClient, browser):
    status = await make_client([record("mail")])
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(url(status))
    assert "Email delivery is delayed" in await page.locator("main").inner_text()
    assert await page.locator(".local").count() == 0
    await context.close()


async def test_status_page_fits_a_phone(make_client: MakeClient, browser):
    status = await make_client([record("mail", title="A rather long title " * 4)])
    context = await browser.new_context(viewport={"width": 360, "height": 740})
    page = await context.new_page()
    await page.goto(url(status))
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360
    await context.close()


async def test_banner_on_another_site_shows_title_status_and_a_working_link(
    make_client: MakeClient, watched_page
):
    status = await make_client([record("mail", "identified", severity="critical")])
    site = await host_site(status)
    page = watched_page
    await page.goto(url(site))
    banner = page.locator("#outagecomms-banner")
    await banner.wait_for()
    assert await banner.get_attribute("role") == "status"
    text = await banner.inner_text()
    assert "Email delivery is delayed" in text and "Identified" in text
    first = await page.evaluate("document.body.firstElementChild.id")
    assert first == "outagecomms-banner"  # at the top of the page
    link = banner.locator("a")
    assert await link.get_attribute("href") == url(status, "/incidents/mail")
    await link.click()
    await page.wait_for_url(url(status, "/incidents/mail"))
    assert "Email delivery is delayed" in await page.locator("h1").inner_text()
    await site.close()


async def test_banner_shows_nothing_when_all_is_well(make_client: MakeClient, watched_page):
    status = await make_client([record("old", "resolved", sent=NOW - timedelta(days=1))])
    site = await host_site(status)
    page = watched_page
    async with page.expect_response(lambda r: r.url.endswith("/api/status.json")) as answer:
        await page.goto(url(site))
    assert (await (await answer.value).json())["incidents"] == []
    await page.wait_for_load_state("networkidle")
    assert await page.locator("#outagecomms-banner").count() == 0
    assert await page.evaluate("document.body.firstElementChild.id") == "site-header"
    await site.close()


async def test_a_hostile_title_is_text_everywhere_and_runs_nothing(
    make_client: MakeClient, watched_page
):
    status = await make_client([record("xss", title=XSS, summary=XSS)])
    site = await host_site(status)
    page = watched_page
    for address in (url(status), url(status, "/incidents/xss")):
        await page.goto(address)
        assert XSS in await page.locator("main").inner_text()
        assert await page.locator("img").count() == 0
    await page.goto(url(site))
    banner = page.locator("#outagecomms-banner")
    await banner.wait_for()
    assert XSS in await banner.inner_text()
    assert await page.locator("img").count() == 0
    await page.wait_for_load_state("networkidle")
    assert await page.evaluate("window.pwned") is None
    assert page.dialogs == []
    await site.close()
