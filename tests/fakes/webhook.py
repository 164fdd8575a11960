"""Fake webhook receiver: a Slack incoming webhook or an HTTP status banner."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web

from ._base import RECORD_KEY, FakeServer, RecordedRequest

SLACK_PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"


class FakeWebhook(FakeServer):
    """Accepts POST and PUT on any path and answers 200 ``ok``.

    ``token`` requires ``Authorization: Bearer <token>`` (the http banner);
    ``require_text`` answers like Slack to a body that is not JSON
    (400 ``invalid_payload``) or has neither ``text`` nor ``blocks``
    (400 ``no_text``). ``.url`` is ``base_url + path``; ``.received`` lists
    the accepted requests (``.json``, ``.headers``, ``.method``, ``.path``).
    """

    name = "webhook"

    def __init__(
        self,
        *,
        token: str | None = None,
        require_text: bool = False,
        path: str = "/hook",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.token = token
        self.require_text = require_text
        self.path = path
        self._received: list[RecordedRequest] = []

    @property
    def url(self) -> str:
        return self.base_url + self.path

    @property
    def received(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._received)

    def _reset_views(self) -> None:
        self._received.clear()

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self._receive)
        app.router.add_put("/{tail:.*}", self._receive)

    def _fault_body(self, status: int) -> web.Response:
        # Slack answers plain-text error codes, not JSON.
        text = "rate_limited" if status == 429 else HTTPStatus(status).phrase
        return web.Response(status=status, text=text)

    async def _receive(self, request: web.Request) -> web.Response:
        if self.token is not None and request.headers.get("Authorization") != (
            f"Bearer {self.token}"
        ):
            return web.Response(status=401, text="invalid_token")
        record: RecordedRequest = request[RECORD_KEY]
        if self.require_text:
            if not isinstance(record.json, dict):
                return web.Response(status=400, text="invalid_payload")
            if not record.json.get("text") and not record.json.get("blocks"):
                return web.Response(status=400, text="no_text")
        with self._lock:
            self._received.append(record)
        return web.Response(status=200, text="ok")
