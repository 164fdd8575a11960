"""What every handler of the server shares: the config, the mode, the board, the pages.

Handlers find it as ``request.app[CONTEXT]``. Links are made from
``serve.public_url`` when it is set (behind a reverse proxy the server cannot
know the address customers use); otherwise from the address of the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from jinja2.sandbox import SandboxedEnvironment

from ..config import Config
from .reader import BoardReader


@dataclass(frozen=True)
class ServeContext:
    config: Config
    #: Shows the announcements of ``send --sandbox`` instead of the real ones.
    sandbox: bool
    reader: BoardReader
    pages: SandboxedEnvironment

    def base_url(self, request: web.Request) -> str:
        """The address customers reach this server at, without a trailing slash."""
        return self.config.serve.public_url or f"{request.scheme}://{request.host}"

    def incident_url(self, request: web.Request, incident_id: str) -> str:
        return f"{self.base_url(request)}/incidents/{incident_id}"


CONTEXT = web.AppKey("outagecomms", ServeContext)
