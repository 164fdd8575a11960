"""One-click unsubscribe (DESIGN §13, RFC 8058): the page and its POST.

* ``GET /unsubscribe/{token}`` shows a page with one button and changes nothing:
  mail scanners and link previews fetch every link of an email.
* ``POST /unsubscribe/{token}`` (what Gmail and Yahoo send, ``List-Unsubscribe=One-Click``
  urlencoded or multipart, or the page's button) suppresses the address the token
  names, source ``one-click``, and answers 200 with a page: no redirect, no second
  step. Doing it again changes nothing and says the same.
* A token that is not ours, or altered: 400, nothing changed.

The page shows the address half-masked: the link may have been forwarded.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from ..consent.tokens import InvalidToken, read_token
from ..secret import serve_secret
from .context import CONTEXT
from .pages import render_page
from .writer import WRITER

log = logging.getLogger(__name__)

TEMPLATE = "unsubscribe.html.j2"
_TOKEN_IN_PATH = re.compile(r"(/unsubscribe/)[^\s\"?]+")


class _HideTokens(logging.Filter):
    """Masks unsubscribe tokens in aiohttp's access log: each is the key to one person's
    subscription, and the access log shows every path requested."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/unsubscribe/" in message:
            record.msg, record.args = _TOKEN_IN_PATH.sub(r"\1[token]", message), None
        return True


def hide_tokens_in_access_log() -> None:
    """Install the filter on aiohttp's access logger (once)."""
    access = logging.getLogger("aiohttp.access")
    if not any(isinstance(f, _HideTokens) for f in access.filters):
        access.addFilter(_HideTokens())


def _address(request: web.Request) -> str | None:
    config = request.app[CONTEXT].config
    try:
        return read_token(serve_secret(config), request.match_info["token"])
    except InvalidToken:
        # The token itself is never logged: it is the key to someone's subscription.
        log.warning("refused an unsubscribe link that is not valid")
        return None


def masked(address: str) -> str:
    """``a***@example.com``: enough for the person to recognise, little for anyone else."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}{'*' * max(3, len(local) - 1)}@{domain}"


def _invalid(request: web.Request) -> web.Response:
    return render_page(request, TEMPLATE, status=400, state="invalid", address=None)


async def unsubscribe_page(request: web.Request) -> web.Response:
    address = _address(request)
    if address is None:
        return _invalid(request)
    response = render_page(request, TEMPLATE, state="confirm", address=masked(address))
    # Nothing about this page may be cached or indexed: it is one person's link.
    response.headers["X-Robots-Tag"] = "noindex"
    return response


async def unsubscribe(request: web.Request) -> web.Response:
    address = _address(request)
    if address is None:
        return _invalid(request)
    await request.post()  # read the body (List-Unsubscribe=One-Click or the button's)
    await request.app[WRITER].run(
        lambda store: store.add_suppressions(
            [(address, "email", "one-click", "unsubscribe link or button")]
        )
    )
    return render_page(request, TEMPLATE, state="done", address=masked(address))
