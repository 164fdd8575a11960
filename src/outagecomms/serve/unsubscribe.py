"""One-click unsubscribe (DESIGN §13, RFC 8058): the page and its POST.

Placeholders: the routes exist so the route table is complete; they answer
501 until one-click unsubscribe is implemented here.
"""

from __future__ import annotations

from aiohttp import web


async def unsubscribe_page(request: web.Request) -> web.Response:
    raise web.HTTPNotImplemented(text="Unsubscribe links are not handled yet.")


async def unsubscribe(request: web.Request) -> web.Response:
    raise web.HTTPNotImplemented(text="Unsubscribe links are not handled yet.")
