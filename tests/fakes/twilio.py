"""Fake Twilio Programmable Messaging API (send a message, read the account)."""

from __future__ import annotations

import base64
import binascii
import math
import re
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ._base import RECORD_KEY, FakeServer, json_response

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
API_VERSION = "2010-04-01"

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


def num_segments(body: str) -> int:
    """Segments as Twilio counts them (close enough for a fake: escape pairs
    and surrogate pairs are not kept whole at segment boundaries)."""
    septets = 0
    for char in body:
        if char in _GSM7_BASIC:
            septets += 1
        elif char in _GSM7_EXTENSION:
            septets += 2
        else:
            units = len(body.encode("utf-16-le")) // 2
            return 1 if units <= 70 else math.ceil(units / 67)
    return 1 if septets <= 160 else math.ceil(septets / 153)


def twilio_error(status: int, code: int, message: str) -> web.Response:
    return json_response(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def _now() -> str:
    return format_datetime(datetime.now(UTC))


class FakeTwilio(FakeServer):
    """``POST /2010-04-01/Accounts/{sid}/Messages.json`` and ``GET .../{sid}.json``.

    ``errors_for`` maps a ``To`` number to ``(http status, twilio code,
    message)``, e.g. ``{"+15005550009": (400, 21610, "Attempt to send to
    unsubscribed recipient")}``. ``.messages`` lists accepted sends.
    """

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        api_key_sid: str | None = None,
        api_key_secret: str | None = None,
        errors_for: dict[str, tuple[int, int, str]] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_key_sid = api_key_sid
        self.api_key_secret = api_key_secret
        self.errors_for: dict[str, tuple[int, int, str]] = dict(errors_for or {})
        self._messages: list[dict[str, Any]] = []

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)

    def _reset_views(self) -> None:
        self._messages.clear()

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create_message)
        app.router.add_get("/2010-04-01/Accounts/{sid}.json", self._fetch_account)

    def _fault_body(self, status: int) -> web.Response:
        # Twilio numbers its HTTP-level errors 20xxx: 20429, 20500, 20503.
        return twilio_error(status, 20000 + status, HTTPStatus(status).phrase)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = tuple(decoded.split(":", 1))
        return given == (self.account_sid, self.auth_token) or (
            self.api_key_sid is not None and given == (self.api_key_sid, self.api_key_secret)
        )

    def _check_access(self, request: web.Request) -> web.Response | None:
        if not self._authorized(request):
            return twilio_error(401, 20003, "Authenticate")
        if request.match_info["sid"] != self.account_sid:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return None

    async def _create_message(self, request: web.Request) -> web.Response:
        refused = self._check_access(request)
        if refused is not None:
            return refused
        form = request[RECORD_KEY].form or {}
        to = form.get("To", "")
        sender = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        body = form.get("Body", "")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(to):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if sender is None and service is None:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if to in self.errors_for:
            status, code, message = self.errors_for[to]
            return twilio_error(status, code, message)

        sid = "SM" + uuid.uuid4().hex
        now = _now()
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        segments = str(num_segments(body))
        with self._lock:
            self._messages.append(
                {
                    "to": to,
                    "from": sender,
                    "body": body,
                    "sid": sid,
                    "messaging_service_sid": service,
                    "status_callback": form.get("StatusCallback"),
                    "num_segments": segments,
                }
            )
        return json_response(
            201,
            {
                "account_sid": self.account_sid,
                "api_version": API_VERSION,
                "body": body,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": sender,
                "messaging_service_sid": service,
                "num_media": "0",
                "num_segments": segments,
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                # A Messaging Service picks the sender later, hence "accepted".
                "status": "accepted" if service else "queued",
                "subresource_uris": {"media": f"{uri}/Media.json"},
                "to": to,
                "uri": f"{uri}.json",
            },
        )

    async def _fetch_account(self, request: web.Request) -> web.Response:
        refused = self._check_access(request)
        if refused is not None:
            return refused
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}"
        return json_response(
            200,
            {
                "sid": self.account_sid,
                "owner_account_sid": self.account_sid,
                "friendly_name": "Fake Twilio account",
                "status": "active",
                "type": "Full",
                "date_created": "Mon, 01 Jan 2024 00:00:00 +0000",
                "date_updated": _now(),
                "uri": f"{uri}.json",
                "subresource_uris": {"messages": f"{uri}/Messages.json"},
            },
        )
