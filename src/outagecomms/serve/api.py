"""``/api/status.json`` and ``/banner.js``: the status for machines and for other sites.

Both may be read from any origin (``Access-Control-Allow-Origin: *``): the
banner runs on the company's own site and fetches the JSON from this server.
The JSON keys are fixed by DESIGN §12.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .board import Board, IncidentView
from .context import CONTEXT
from .templating import rfc3339

#: Browsers and proxies may reuse an answer this long, in seconds ("shows within seconds").
MAX_AGE = 10
CORS = {"Access-Control-Allow-Origin": "*", "Cache-Control": f"public, max-age={MAX_AGE}"}


def status_document(board: Board, *, name: str, base_url: str) -> dict[str, Any]:
    """The status JSON: the page, the overall state and the open incidents."""
    return {
        "page": {"name": name, "url": base_url, "updated_at": rfc3339(board.updated_at)},
        "status": {"indicator": board.indicator, "description": board.description},
        "incidents": [_incident(i, f"{base_url}/incidents/{i.id}") for i in board.open],
    }


def _incident(incident: IncidentView, url: str) -> dict[str, Any]:
    latest = incident.latest
    return {
        "id": incident.id,
        "title": latest.title,
        "status": latest.status,
        "severity": latest.severity,
        "summary": latest.summary,
        "started_at": rfc3339(incident.started_at),
        "eta": rfc3339(latest.eta),
        "updated_at": rfc3339(incident.updated_at),
        "url": url,
        "updates": [
            {"status": u.status, "update": u.update, "summary": u.summary, "at": rfc3339(u.at)}
            for u in incident.updates
        ],
    }


async def status_json(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    board = await context.reader.board()
    document = status_document(
        board, name=context.config.organization.name, base_url=context.base_url(request)
    )
    return web.json_response(document, headers=CORS)


async def banner_js(request: web.Request) -> web.Response:
    """The embeddable banner script, with this server's status address written in."""
    context = request.app[CONTEXT]
    script = context.pages.get_template("banner.js.j2").render(
        status_url=f"{context.base_url(request)}/api/status.json"
    )
    return web.Response(text=script, content_type="text/javascript", charset="utf-8", headers=CORS)
