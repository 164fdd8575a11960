"""SMS through Twilio's Messages API: the official SDK for what it does well, a prebuilt
request for the one call a fan-out makes 50,000 times.

The SDK's ``Client`` is built once in ``open``. It supplies, once, everything every
``Messages.create`` request shares: the account's URL (edge and region included), its
headers (User-Agent, Accept, Content-Type) and the Basic auth of the account or API key;
it reads the account for ``check``; and it turns every error answer into its exceptions.
Per message only the form (To, From or MessagingServiceSid, Body, StatusCallback) is
encoded and the JSON answer's ``sid`` read: going through ``create_async`` built a
form dict, headers, an httpx request from a URL string and a ``MessageInstance`` for
every message, about 60 % of the CPU an SMS cost (bench/RESULTS.md). The bytes still
travel through the channel's ``httpx.AsyncClient``, so respx, ``base_url`` and the
aiohttp transport work as for every other channel (PROVIDERS.md, "One HTTP stack").

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

import base64
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus

import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.base.version import Version
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from ..config import Config, TwilioSettings, require_credentials
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
from .http import Endpoint

log = logging.getLogger(__name__)

#: The route of ``outagecomms serve`` that takes Twilio's status callbacks.
STATUS_HOOK = "/hooks/twilio/status"
#: Twilio's answer to a number that replied STOP: the number is suppressed (DESIGN §13).
OPTED_OUT_CODE = "21610"

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


class UnreadableAnswer(TwilioException):
    """A 2xx answer to ``check`` that is not a JSON object (sending reads its answers itself)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status} with an unreadable body")


class HttpxTwilioClient(AsyncHttpClient):
    """The SDK's transport seam, carried by an ``httpx.AsyncClient`` (used by ``check``).

    It does not call the SDK's ``log_request``: that logs every request at INFO.
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
        uri = _on_base_url(uri, self.base_url)
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
        # httpx.Headers rescans every header per key when the SDK copies it with dict();
        # one pass into a plain dict (keys lower-cased) avoids that.
        headers = dict(response.headers.items())
        if response.is_success and json_object(response.content) is None:
            # The SDK would fail on it with an AttributeError: say what it is instead.
            raise UnreadableAnswer(response.status_code)
        return Response(response.status_code, _text(response.content), headers)


def _on_base_url(url: str, base_url: str) -> str:
    """The SDK's URL on the channel's ``base_url`` (a fake, a proxy) instead of Twilio's host."""
    return base_url + url[len(TWILIO_API) :] if url.startswith(TWILIO_API) else url


def _text(content: bytes) -> str:
    """A body as text: Twilio answers JSON, which is UTF-8 (RFC 8259); no charset lookup."""
    return content.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class MessageRequest:
    """What every ``Messages.create`` request of one channel shares, taken once from the SDK.

    ``form`` is the encoded form between ``To`` and ``Body`` (From or MessagingServiceSid,
    StatusCallback), so a message only adds its two own fields.
    """

    endpoint: Endpoint
    #: The SDK's resource path, as its exceptions name it.
    uri: str
    form: bytes

    @classmethod
    def of(
        cls, twilio: Client, http: httpx.AsyncClient, base_url: str, sender: dict[str, str]
    ) -> MessageRequest:
        """Built with the SDK's own URL, header and auth rules."""
        messages = twilio.messages
        url = twilio.get_hostname(messages._version.absolute_url(messages._uri))
        wanted = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        headers = twilio.get_headers("POST", wanted)
        username, password = twilio.auth
        assert username is not None and password is not None  # _sdk_client passes both
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {credentials}"
        fields = {name: sender[key] for key, name in _SENDER_FIELDS.items() if key in sender}
        return cls(
            endpoint=Endpoint(http, _on_base_url(url, base_url), headers),
            uri=messages._uri,
            form=b"".join(b"&" + _field(name, value) for name, value in fields.items()),
        )


#: The sender settings and their form fields, in the SDK's order.
_SENDER_FIELDS = {
    "status_callback": "StatusCallback",
    "from_": "From",
    "messaging_service_sid": "MessagingServiceSid",
}


def _field(name: str, value: str) -> bytes:
    """``name=value`` form-encoded as httpx encodes a form (``urlencode``: quote_plus)."""
    return f"{name}={quote_plus(value)}".encode("ascii")


class TwilioSms(HttpChannel):
    settings: TwilioSettings  # type: ignore[assignment]

    # Twilio takes one recipient per request; the announcer runs them concurrently.
    batch_size = 1

    twilio: Client
    _request: MessageRequest

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
        sender = {
            "from_": settings.from_,
            "messaging_service_sid": settings.messaging_service_sid,
            "status_callback": status_callback(settings, self.config),
        }
        sender = {key: value for key, value in sender.items() if value}
        self._request = MessageRequest.of(self.twilio, self.http, self.base_url, sender)
        # The last message text and its encoding: a fan-out sends one text to everyone.
        self._body: tuple[str, bytes] = ("", b"")

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

    def _form(self, message: Message) -> bytes:
        """The request body: To, the shared sender fields, Body (encoded once per text)."""
        text, body = self._body
        if message.text != text:
            body = _field("Body", message.text)
            self._body = (message.text, body)
        return b"".join((_field("To", message.recipient), self._request.form, b"&", body))

    async def _send_one(self, message: Message) -> Outcome:
        shared = self._request
        answer = await shared.endpoint.post(self._form(message))
        status = answer.status
        if not 200 <= status < 300:
            response = Response(status, _text(answer.content), dict(answer.headers.items()))
            exc = Version.exception("POST", shared.uri, response, "Unable to create record")
            return _failure(exc, answer.headers)
        created = json_object(answer.content)
        if created is None:
            # Twilio took the message (2xx) but its answer cannot be read.
            return unreadable_answer("Twilio", status, _text(answer.content))
        sid = created.get("sid")
        if not sid or not isinstance(sid, str):
            return unreadable_answer("Twilio", status, "an answer without a message SID")
        return Outcome.sent(sid)

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


def status_callback(settings: TwilioSettings, config: Config) -> str | None:
    """Where Twilio reports each message's fate: the channel's own ``status_callback``, else
    the ``serve`` webhook when ``serve.public_url`` is set (DESIGN §13), else nowhere."""
    if settings.status_callback:
        return settings.status_callback
    public_url = config.serve.public_url
    return f"{public_url}{STATUS_HOOK}" if public_url else None


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
