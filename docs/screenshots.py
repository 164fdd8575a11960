"""Make the README's pictures of ``outagecomms serve``: ``python docs/screenshots.py``.

The status page over the example incidents (with the times of a real morning, not
all "now") and a shop page that embeds the banner, both served on 127.0.0.1 by the
real application and photographed by Debian's Chromium through Playwright.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web

from outagecomms.config import load_config
from outagecomms.models import Incident
from outagecomms.run.planning import announcement_record
from outagecomms.serve import create_app
from outagecomms.serve.server import serve
from outagecomms.store import AnnouncementRecord

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
CHROMIUM = "/usr/bin/chromium"


def stamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def sent(incident: Incident, at: datetime) -> AnnouncementRecord:
    record = announcement_record(incident, sandbox=False)
    return dataclasses.replace(record, first_sent_at=stamp(at))


def announcements() -> list[AnnouncementRecord]:
    """The example outage at its second update, and a checkout incident of three days ago."""
    first = Incident.load(EXAMPLES / "incident-investigating.yaml")
    start = first.started_at
    second = Incident.load(EXAMPLES / "incident-identified.yaml")
    past = Incident(
        id="2026-11-19-checkout-errors",
        title="Some card payments failed at checkout",
        status="investigating",
        severity="critical",
        started_at=start - timedelta(days=3, hours=2),
        summary="Some card payments are declined. Please try again in a few minutes.",
    )
    fixed = past.model_copy(
        update={
            "status": "resolved",
            "summary": "Payments work again. Declined attempts were never charged.",
        }
    )
    return [
        sent(past, past.started_at + timedelta(minutes=6)),
        sent(fixed, past.started_at + timedelta(minutes=48)),
        sent(first, start + timedelta(minutes=12)),
        sent(second, start + timedelta(minutes=55)),
    ]


class Examples:
    def announcements(self, incident: str | None = None) -> list[AnnouncementRecord]:
        return announcements()


SHOP = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme Shop</title>
<style>
body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1b2430;background:#fff}
header{display:flex;justify-content:space-between;align-items:center;padding:18px 40px;
border-bottom:1px solid #eee}.logo{font-weight:800;font-size:22px;color:#2f4b7c}
nav a{margin-left:24px;color:#1b2430;text-decoration:none}
.hero{margin:28px 40px;padding:48px;border-radius:16px;color:#fff;
background:linear-gradient(120deg,#2f4b7c,#665191)}.hero h1{margin:0 0 8px;font-size:38px}
.grid{display:grid;grid-template-columns:repeat(4,1fr);gap:20px;margin:0 40px 40px}
.item{border:1px solid #eee;border-radius:12px;padding:14px}.img{height:120px;border-radius:8px;
margin-bottom:10px}.price{font-weight:700}
</style></head><body>
<header><span class="logo">Acme Shop</span><nav><a href="#">New</a><a href="#">Sale</a>
<a href="#">Account</a><a href="#">Cart (2)</a></nav></header>
<section class="hero"><h1>Winter sale</h1><p>Up to 40% off warm things, until Sunday.</p></section>
<section class="grid">
<div class="item"><div class="img" style="background:#f95d6a"></div>Wool scarf<br>
<span class="price">$24</span></div>
<div class="item"><div class="img" style="background:#ffa600"></div>Mittens<br>
<span class="price">$18</span></div>
<div class="item"><div class="img" style="background:#a05195"></div>Beanie<br>
<span class="price">$15</span></div>
<div class="item"><div class="img" style="background:#2f4b7c"></div>Parka<br>
<span class="price">$129</span></div>
</section>
<script src="STATUS/banner.js" async></script>
</body></html>"""


async def main() -> None:
    from playwright.async_api import async_playwright

    config = load_config(ROOT / "channels.yaml")
    status_app = create_app(config, source=Examples())
    stop = asyncio.Event()
    ready: asyncio.Queue[str] = asyncio.Queue()
    server = asyncio.create_task(
        serve(status_app, "127.0.0.1", 0, stop=stop, ready=ready.put_nowait)
    )
    status_url = await ready.get()

    async def shop(request: web.Request) -> web.Response:
        return web.Response(text=SHOP.replace("STATUS", status_url), content_type="text/html")

    shop_app = web.Application()
    shop_app.router.add_get("/", shop)
    shop_server = asyncio.create_task(
        serve(shop_app, "127.0.0.1", 0, stop=stop, ready=ready.put_nowait)
    )
    shop_url = await ready.get()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(
            viewport={"width": 1000, "height": 900},
            timezone_id="America/New_York",
            device_scale_factor=1,
        )
        await page.goto(status_url + "/")
        await page.screenshot(path=str(ROOT / "docs" / "status-page.png"), full_page=True)
        await page.set_viewport_size({"width": 1100, "height": 560})
        await page.goto(shop_url + "/")
        await page.locator("#outagecomms-banner").wait_for()
        await page.screenshot(path=str(ROOT / "docs" / "banner.png"))
        await browser.close()
    stop.set()
    await asyncio.gather(server, shop_server)


if __name__ == "__main__":
    asyncio.run(main())
