"""SMS through Twilio's Messages API, with the official SDK riding on the shared httpx client.

The SDK builds the request (form fields, Basic auth, the account's URL) and
turns error answers into its exceptions; the bytes travel through the
channel's ``httpx.AsyncClient`` so that respx, ``base_url`` and the aiohttp
transport work as for every other channel (PROVIDERS.md, "One HTTP stack").

The ``Client`` is built once in ``open``: building one per message would
redo the credential lookup and the lazy domain/version/list objects on the
hot path of a 50,000-message fan-out. Per message the SDK then only fills a
form dict and parses the JSON answer.

How Twilio's answers map to outcomes:

* 201: sent, the provider id is the message SID (``SM...``).
* 21211 invalid To, 21610 replied STOP, 21614 not a mobile number, and any
  other 4xx: failed for that recipient only, with Twilio's code.
* 20429, HTTP 429 and 5xx: transient, retried by the announcer after
  ``Retry-After``.
* 20003 / HTTP 401 bad credentials, 20404 / HTTP 404 unknown account,
  21408 region not enabled, 21606 From cannot send SMS, 21608 trial account
  and unverified number: the configuration is wrong, so every message would
  fail the same way; ``fatal`` stops the channel instead.

Network errors are not caught: the announcer classifies them (a refused
connection is retried, a request that may have arrived becomes ``unknown``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING

import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from ..config import TwilioSettings, require_credentials
from ..models import Message, Outcome
from ..redact import redact, register_secret
from .base import (
    CheckResult,
    HttpChannel,
    is_transient_status,
    json_object,
    retry_after,
    short,
    unreadable_answer,
)

if TYPE_CHECKING:
    from twilio.rest.api.v2010.account.message import MessageList

log = logging.getLogger(__name__)

#: The host the SDK writes into every URL; replaced by the channel's ``base_url``.
TWILIO_API = "https://api.twilio.com"

#: Codes that mean the channel's configuration is wrong, not the recipient.
CONFIGURATION_CODES = frozenset({20003, 20404, 21408, 21606, 21608})
CONFIGURATION_STATUSES = frozenset({401, 404})
TOO_MANY_REQUESTS = 20429

#: Account states in which nothing can be sent although the credentials work.
_DEAD_ACCOUNT = frozenset({"suspended", "closed"})

# The SDK's own prefix on legacy error messages ("Unable to create record: ...").
_SDK_PREFIX = re.compile(r"^Unable to \w+ record: ")

# The headers of the latest Twilio answer in this task: the SDK's exceptions drop
# them, and Retry-After lives there. Each delivery runs in its own task, so this
# holds its own answer whatever the SDK awaits between the answer and the exception.
_answer_headers: ContextVar[Mapping[str, str] | None] = ContextVar(
    "twilio_answer_headers", default=None
)


class UnreadableAnswer(TwilioException):
    """A 2xx answer that is not a JSON object: Twilio took the request, its result is unclear."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status} with an unreadable body")
        self.status = status
        self.body = body


class HttpxTwilioClient(AsyncHttpClient):
    """The SDK's transport seam, carried by an ``httpx.AsyncClient``.

    It does not call the SDK's ``log_request``: that logs every request at
    INFO, which would be 50,000 log lines for one announcement.
    """

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        super().__init__(logger=log, is_async=True)
        self.http = http
        self.base_url = base_url

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if uri.startswith(TWILIO_API):
            uri = self.base_url + uri[len(TWILIO_API) :]
        headers = headers or {}
        # Twilio's v2010 API takes forms; only newer APIs declare a JSON body.
        as_json = "json" in headers.get("Content-Type", "").lower()
        response = await self.http.request(
            method,
            uri,
            params=params,  # type: ignore[arg-type]  # the SDK's values are str/int
            data=None if as_json else data,
            json=data if as_json else None,
            headers=headers,
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            follow_redirects=allow_redirects,
        )
        # Both conversions are on the hot path. httpx.Headers rescans every header per
        # key when the SDK copies it with dict(); one pass into a plain dict (keys
        # lower-cased) avoids that. ``response.text`` parses the charset out of
        # Content-Type with the email package on every answer; Twilio answers JSON,
        # which is UTF-8 (RFC 8259).
        answer_headers = dict(response.headers.items())
        _answer_headers.set(answer_headers)
        text = response.content.decode("utf-8", errors="replace")
        if response.is_success and json_object(response.content) is None:
            # The SDK would fail on it with an AttributeError: say what it is instead.
            raise UnreadableAnswer(response.status_code, text)
        return Response(response.status_code, text, answer_headers)


class TwilioSms(HttpChannel):
    settings: TwilioSettings  # type: ignore[assignment]

    # Twilio takes one recipient per request; the announcer runs them concurrently.
    batch_size = 1

    twilio: Client
    _messages: MessageList
    _sender: dict[str, str]

    async def open(self) -> None:
        settings = self.settings
        require_credentials(self.name, settings)
        for secret in (
            settings.account_sid,
            settings.auth_token,
            settings.api_key,
            settings.api_secret,
        ):
            if secret is not None:
                # Settings built in code (not by load_config) have not registered them yet.
                register_secret(secret.get_secret_value())
        await super().open()
        self.twilio = self._sdk_client()
        # Looked up once: each access walks three of the SDK's lazy properties.
        self._messages = self.twilio.messages
        sender = {
            "from_": settings.from_,
            "messaging_service_sid": settings.messaging_service_sid,
            "status_callback": settings.status_callback,
        }
        self._sender = {key: value for key, value in sender.items() if value}

    def _sdk_client(self) -> Client:
        """The SDK client, authenticated with an API key when one is set (the revocable
        credential Twilio recommends), otherwise with the account's auth token."""
        settings = self.settings
        assert settings.account_sid is not None  # require_credentials checked it
        account_sid = settings.account_sid.get_secret_value()
        if settings.api_key and settings.api_secret:
            username, password = settings.api_key, settings.api_secret
        else:
            assert settings.auth_token is not None
            username, password = settings.account_sid, settings.auth_token
        return Client(
            username.get_secret_value(),
            password.get_secret_value(),
            account_sid,
            http_client=HttpxTwilioClient(self.http, self.base_url),
            # Non-empty, so the SDK never reads TWILIO_* from os.environ behind our back.
            environment={"OUTAGECOMMS": "1"},
        )

    # --- sending -------------------------------------------------------------

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        return [await self._send_one(message) for message in messages]

    async def _send_one(self, message: Message) -> Outcome:
        try:
            created = await self._messages.create_async(
                to=message.recipient, body=message.text, **self._sender
            )
        except UnreadableAnswer as exc:
            return unreadable_answer("Twilio", exc.status, exc.body)
        except TwilioException as exc:
            return _failure(exc, _answer_headers.get() or {})
        if not created.sid:
            return unreadable_answer("Twilio", 201, "an answer without a message SID")
        return Outcome.sent(created.sid)

    # --- check ---------------------------------------------------------------

    async def check(self) -> CheckResult:
        try:
            account = await self.twilio.api.v2010.accounts(self.twilio.account_sid).fetch_async()
        except TwilioException as exc:
            status, code = _status_and_code(exc)
            if status == 401 or code == 20003:
                return CheckResult(
                    "refused",
                    f"Twilio refused the credentials ({_describe(exc)}): check account_sid and "
                    f"auth_token (or api_key and api_secret) of channel '{self.name}'",
                )
            if status == 404 or code == 20404:
                return CheckResult(
                    "error",
                    f"Twilio does not know this account ({_describe(exc)}): check account_sid "
                    f"of channel '{self.name}' and base_url",
                )
            return CheckResult("error", f"unexpected answer from Twilio: {_describe(exc)}")
        except httpx.HTTPError as exc:
            return CheckResult("error", redact(f"cannot reach Twilio: {exc}") or "network error")
        if account.status in _DEAD_ACCOUNT:
            return CheckResult("refused", f"the Twilio account is {account.status}")
        return CheckResult(
            "accepted", f"Twilio account '{account.friendly_name}' is {account.status}"
        )


def _status_and_code(exc: TwilioException) -> tuple[int | None, int | None]:
    """HTTP status and Twilio error code of an exception (both kinds carry them)."""
    if not isinstance(exc, TwilioRestException | TwilioServiceException):
        return None, None
    return _as_int(exc.status), _as_int(exc.code)


def _as_int(value: object) -> int | None:
    """Codes arrive as JSON numbers, but nothing stops a body from quoting them."""
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _describe(exc: TwilioException) -> str:
    """``Twilio error <code> (HTTP <status>): <message>``, short and without secrets."""
    status, code = _status_and_code(exc)
    if isinstance(exc, TwilioServiceException):
        parts = [exc.title, exc.detail or ""]
        parts += [f"{e.get('pointer', '?')}: {e.get('detail', '?')}" for e in exc.errors]
        text = " - ".join(part for part in parts if part)
    elif isinstance(exc, TwilioRestException):
        text = _SDK_PREFIX.sub("", str(exc.msg))
    else:
        return short(f"Twilio SDK error: {type(exc).__name__}: {exc}")
    return short(f"Twilio error {code or status} (HTTP {status}): {text}")


def _failure(exc: TwilioException, headers: Mapping[str, str]) -> Outcome:
    """The outcome of an error answer: permanent, transient or fatal (see the module doc)."""
    status, code = _status_and_code(exc)
    text = _describe(exc)
    if status is None:
        return Outcome.failed(text, code="sdk")
    code = code or status
    if code in CONFIGURATION_CODES or status in CONFIGURATION_STATUSES:
        return Outcome.failed(text, code=code, fatal=True)
    if code == TOO_MANY_REQUESTS or is_transient_status(status):
        return Outcome.failed(text, code=code, retryable=True, retry_after=retry_after(headers))
    return Outcome.failed(text, code=code)
