"""The HTML pages: the status page (``/``), one incident (``/incidents/{id}``), not found.

Server-rendered from the page templates, so they work without JavaScript. A
small inline script (allowed by a per-response nonce in the Content-Security-
Policy, which forbids every other script) adds the reader's local time.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web

from .context import CONTEXT

INCIDENT_ID = re.compile(r"[a-z0-9-]{1,120}")


def render_page(
    request: web.Request, template: str, *, status: int = 200, **values: Any
) -> web.Response:
    """A page rendered with what every page needs, and headers that allow only its script."""
    context = request.app[CONTEXT]
    nonce = secrets.token_urlsafe(16)
    base = context.base_url(request)
    html = context.pages.get_template(template).render(
        organization=context.config.organization,
        sandbox=context.sandbox,
        base_url=base,
        feed_url=f"{base}/feed.atom",
        api_url=f"{base}/api/status.json",
        banner_url=f"{base}/banner.js",
        history_days=context.config.serve.history_days,
        nonce=nonce,
        **values,
    )
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = (
        f"script-src 'nonce-{nonce}'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"
    )
    response.headers["Cache-Control"] = "no-cache"
    return response


async def index(request: web.Request) -> web.Response:
    """The overall state, the open incidents with their timelines, then the recent ones."""
    board = await request.app[CONTEXT].reader.board()
    return render_page(request, "index.html.j2", board=board)


async def incident(request: web.Request) -> web.Response:
    """One incident and its whole timeline, whenever it was resolved; 404 when unknown."""
    incident_id = request.match_info["id"]
    board = await request.app[CONTEXT].reader.board()
    found = board.incidents.get(incident_id) if INCIDENT_ID.fullmatch(incident_id) else None
    if found is None:
        return not_found(request, f"There is no incident “{incident_id}”.")
    return render_page(request, "incident.html.j2", board=board, incident=found)


def not_found(request: web.Request, message: str = "There is no such page.") -> web.Response:
    return render_page(request, "not_found.html.j2", status=404, message=message)
