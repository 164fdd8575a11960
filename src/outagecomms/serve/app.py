"""The aiohttp application of ``outagecomms serve``: the route table of DESIGN §12.

``create_app(config, sandbox=...)`` is all a caller needs: the CLI runs it with
``server.serve``, tests drive it with aiohttp's test client. The server only
reads the ledger; the webhook and unsubscribe routes (§13) are the only ones
that write, and only to the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..config import Config
from . import api, feed, hooks, pages, unsubscribe
from .context import CONTEXT, ServeContext
from .reader import DEFAULT_TTL, AnnouncementSource, BoardReader, StatusUnavailable, StoreSource
from .templating import page_environment
from .writer import install_writer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTES = [
    web.get("/", pages.index, name="index"),
    web.get("/incidents/{id}", pages.incident, name="incident"),
    web.get("/feed.atom", feed.feed_atom, name="feed"),
    web.get("/api/status.json", api.status_json, name="status_json"),
    web.get("/banner.js", api.banner_js, name="banner_js"),
    web.post("/hooks/twilio/status", hooks.twilio_status, name="twilio_status"),
    web.post("/hooks/twilio/inbound", hooks.twilio_inbound, name="twilio_inbound"),
    web.post("/hooks/sendgrid", hooks.sendgrid_events, name="sendgrid_events"),
    web.get("/unsubscribe/{token}", unsubscribe.unsubscribe_page, name="unsubscribe_page"),
    web.post("/unsubscribe/{token}", unsubscribe.unsubscribe, name="unsubscribe"),
]


def create_app(
    config: Config,
    *,
    sandbox: bool = False,
    source: AnnouncementSource | None = None,
    ttl: float = DEFAULT_TTL,
) -> web.Application:
    """The server over the config's ledger (or ``source``), live or sandbox announcements.

    Raises ``TemplateError`` when a page template is missing or does not compile.
    """
    reader = BoardReader(
        source or StoreSource(config, sandbox=sandbox),
        history_days=config.serve.history_days,
        ttl=ttl,
    )
    app = web.Application(middlewares=[_errors, _security_headers])
    app[CONTEXT] = ServeContext(
        config=config, sandbox=sandbox, reader=reader, pages=page_environment(config)
    )
    app.add_routes(ROUTES)
    install_writer(app, config)
    unsubscribe.hide_tokens_in_access_log()

    async def close_reader(app: web.Application) -> None:
        await app[CONTEXT].reader.close()

    app.on_cleanup.append(close_reader)
    return app


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A page (not aiohttp's bare text) for an unknown address; 503 while the ledger is out."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.method in ("GET", "HEAD"):
            return pages.not_found(request)
        raise
    except StatusUnavailable:
        raise web.HTTPServiceUnavailable(
            text="The status cannot be read right now; try again in a minute.",
            headers={"Retry-After": "30"},
        ) from None
