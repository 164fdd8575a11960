"""Provider webhooks (DESIGN §13): Twilio status callbacks and inbound SMS, SendGrid events.

Placeholders: the routes exist so the route table is complete; they answer
501 until the receipts and opt-outs are implemented here.
"""

from __future__ import annotations

from aiohttp import web


async def twilio_status(request: web.Request) -> web.Response:
    raise web.HTTPNotImplemented(text="Twilio status callbacks are not handled yet.")


async def twilio_inbound(request: web.Request) -> web.Response:
    raise web.HTTPNotImplemented(text="Inbound SMS is not handled yet.")


async def sendgrid_events(request: web.Request) -> web.Response:
    raise web.HTTPNotImplemented(text="SendGrid events are not handled yet.")
