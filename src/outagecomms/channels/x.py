"""The social channel on X (Twitter API v2): one post per announcement, threaded per incident.

Posting goes through ``tweepy.Client``, which speaks ``requests`` and
hard-codes ``https://api.twitter.com``. Its ``session`` is replaced by one
that rewrites that prefix to ``base_url`` and hands every request to an
``httpx.Client`` through a ``requests`` transport adapter. So X traffic
shares the product's one HTTP stack: respx sees it in unit tests, the
timeout is set in one place, and a network failure raises an httpx
exception, which the announcer already knows how to classify.

tweepy is synchronous, so each call runs in a worker thread
(``asyncio.to_thread``) rather than blocking the event loop that the other
channels share.

Threading: the announcer sets ``Message.reply_to`` to the provider id of the
incident's latest post (from the ledger), and the post replies to it, so
every update of an incident hangs under the first one on X.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import requests
import requests.adapters
import tweepy
from requests.structures import CaseInsensitiveDict

from ..config import XSettings, env_name
from ..errors import ConfigError
from ..models import Message, Outcome
from ..redact import redact, register_secret
from .base import (
    Channel,
    CheckResult,
    current_trace,
    is_transient_status,
    retry_after,
    short,
    total_deadline,
)

#: The host tweepy writes into every request URL (``BaseClient.request``).
TWEEPY_HOST = "https://api.twitter.com"
POSTS_PATH = "/2/tweets"
ME_PATH = "/2/users/me"

_OAUTH1_KEYS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")


class XPosts(Channel):
    """Posts the rendered social text on X, as a reply to the incident's previous post."""

    settings: XSettings  # type: ignore[assignment]

    batch_size = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._http: httpx.Client | None = None
        self._client: tweepy.Client | None = None
        self._user_auth = True

    @property
    def base_url(self) -> str:
        return self.settings.effective_base_url

    @property
    def client(self) -> tweepy.Client:
        if self._client is None:
            raise RuntimeError(f"channel '{self.name}' (x) is used before open()")
        return self._client

    # --- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        """Build the tweepy client on the httpx bridge, refusing incomplete credentials
        here rather than as a failed post."""
        settings = self.settings
        secrets = {key: getattr(settings, key) for key in (*_OAUTH1_KEYS, "bearer_token")}
        for secret in secrets.values():
            if secret is not None:
                # Settings built in code (not by load_config) have not registered them yet.
                register_secret(secret.get_secret_value())
        values = {k: (v.get_secret_value() if v is not None else None) for k, v in secrets.items()}
        if all(values[key] for key in _OAUTH1_KEYS):
            # Preferred when both are set: OAuth 1.0a user tokens do not expire, while an
            # OAuth 2.0 user token lasts hours unless someone refreshes it.
            client = tweepy.Client(
                **{key: values[key] for key in _OAUTH1_KEYS}, return_type=requests.Response
            )
            self._user_auth = True
        elif values["bearer_token"]:
            client = tweepy.Client(
                bearer_token=values["bearer_token"], return_type=requests.Response
            )
            self._user_auth = False
        else:
            missing = [key for key in _OAUTH1_KEYS if not values[key]]
            variables = " and ".join(env_name(self.name, key) for key in missing)
            raise ConfigError(
                f"channel '{self.name}' (x) has no credentials: set {variables} "
                f"(OAuth 1.0a user context) or {env_name(self.name, 'bearer_token')} "
                "(an OAuth 2.0 user token) in the environment or in a .env file"
            )
        self._http = httpx.Client(
            timeout=httpx.Timeout(settings.timeout),
            limits=httpx.Limits(max_connections=max(settings.effective_concurrency, 1)),
            # Like make_http_client: no proxy or .netrc from the environment.
            trust_env=False,
        )
        client.session.close()  # tweepy's own, never used
        client.session = HttpxSession(self.base_url, self._http)
        client.user_agent = f"outagecomms tweepy/{tweepy.__version__}"
        self._client = client

    async def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        self._client = None

    # --- sending ---------------------------------------------------------------

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        return [await self._post(message) for message in messages]

    async def _post(self, message: Message) -> Outcome:
        """One ``POST /2/tweets``. httpx errors propagate: the announcer classifies them."""
        try:
            # The request runs in a thread that cannot be cancelled; past the deadline it
            # is left to finish on its own and the post's fate is decided from its trace.
            async with total_deadline(self.settings.timeout):
                response: requests.Response = await asyncio.to_thread(
                    self.client.create_tweet,
                    text=message.text,
                    in_reply_to_tweet_id=message.reply_to,
                    user_auth=self._user_auth,
                )
        except tweepy.HTTPException as exc:
            return self._failure(exc.response)
        post_id = _data(response).get("id")
        if not post_id:
            # A 2xx without an id (a proxy's page, a truncated body) may or may not
            # be a post: report it rather than claim it or post it again.
            return Outcome(
                state="unknown",
                code="no-id",
                error=f"X answered HTTP {response.status_code} without a post id "
                f"({short(response.text, 200)}); it may or may not have posted",
            )
        return Outcome.sent(str(post_id))

    def _failure(self, response: requests.Response) -> Outcome:
        status = response.status_code
        detail = x_error_detail(response)
        if status == 403 and "duplicate" in detail.lower():
            # X refuses a text identical to a recent post of the account: waiting will not
            # help, only different wording will.
            return Outcome.failed(
                short(
                    f"HTTP 403: X refused the post as a duplicate of an earlier post with the "
                    f"same text ({detail}); change the wording to post it again"
                ),
                code="duplicate",
            )
        text = f"HTTP {status}: {detail}"
        if status == 401:
            text += f"; X refused the credentials, check {self._credential_hint()}"
        return Outcome.failed(
            short(text),
            code=status,
            retryable=is_transient_status(status),
            retry_after=retry_after(response.headers),
            fatal=status == 401,
        )

    def _credential_hint(self) -> str:
        if self._user_auth:
            # The four variable names in full would crowd X's own detail out of the text.
            return f"the OAuth 1.0a keys and tokens ({env_name(self.name, '*')})"
        return (
            f"{env_name(self.name, 'bearer_token')} "
            "(an OAuth 2.0 user token expires unless it is refreshed)"
        )

    # --- check -----------------------------------------------------------------

    async def check(self) -> CheckResult:
        """``GET /2/users/me``: an authenticated read that posts nothing."""
        try:
            async with total_deadline(self.settings.timeout):
                response: requests.Response = await asyncio.to_thread(
                    self.client.get_me, user_auth=self._user_auth
                )
        except httpx.HTTPError as exc:
            return CheckResult("error", redact(f"cannot reach X: {exc}") or "network error")
        except tweepy.HTTPException as exc:
            status = exc.response.status_code
            detail = x_error_detail(exc.response)
            if status in (401, 403):
                return CheckResult(
                    "refused", short(f"X refused the credentials (HTTP {status}: {detail})")
                )
            return CheckResult("error", short(f"X answered HTTP {status}: {detail}"))
        username = _data(response).get("username")
        if not username:
            return CheckResult("error", f"unexpected answer from X: {short(response.text, 200)}")
        return CheckResult("accepted", f"authenticated as @{username}")


def _data(response: requests.Response) -> Mapping[str, Any]:
    """The ``data`` object of an X v2 answer, or an empty mapping when there is none."""
    try:
        body = response.json()
    except ValueError:
        return {}
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def x_error_detail(response: requests.Response) -> str:
    """X's explanation of an error answer, short and without secrets.

    v2 answers are RFC 7807 problems (``title``, ``detail``) and may add an
    ``errors`` list with one message per bad parameter; v1.1-style bodies
    carry only ``errors``. Every distinct message is kept, in that order.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return short(response.text, 200) or response.reason or "no detail"
    parts: list[str] = []
    detail = body.get("detail") or body.get("title")
    if isinstance(detail, str):
        parts.append(detail)
    errors = body.get("errors")
    for error in errors if isinstance(errors, list) else []:
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str):
            parts.append(message)
    text = "; ".join(dict.fromkeys(p.strip() for p in parts if p.strip()))
    return short(text or response.text or response.reason or "no detail")


# --- requests -> httpx bridge ----------------------------------------------------


class HttpxSession(requests.Session):
    """A ``requests.Session`` for tweepy that sends to ``base_url`` through an httpx client.

    The URL is rewritten in ``request``, before requests prepares it, because
    preparing is when requests-oauthlib signs: the OAuth 1.0a signature then
    covers the URL actually sent, so a regional endpoint or proxy that
    verifies it accepts it.
    """

    def __init__(self, base_url: str, http: httpx.Client) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        # With trust_env, requests would read ~/.netrc and replace the Bearer header
        # with Basic auth, and take proxies that httpx (trust_env=False) ignores.
        self.trust_env = False
        # httpx adds Accept, Accept-Encoding and Connection itself, matching the
        # encodings it can decode; requests' defaults could name others.
        self.headers.clear()
        adapter = HttpxAdapter(http)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if url.startswith(TWEEPY_HOST + "/"):
            url = self.base_url + url[len(TWEEPY_HOST) :]
        return super().request(method, url, *args, **kwargs)


class HttpxAdapter(requests.adapters.BaseAdapter):
    """A ``requests`` transport adapter that performs each request with an ``httpx.Client``.

    requests' per-call ``timeout``, ``verify``, ``proxies`` and ``cert`` are
    ignored on purpose: tweepy passes none, and the httpx client's settings
    are the one place they are decided. httpx exceptions are not wrapped in
    requests ones, so callers see the same errors as from every other channel.
    """

    def __init__(self, http: httpx.Client) -> None:
        super().__init__()
        self.http = http

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        answer = self.http.request(
            request.method or "GET",
            request.url or "",
            headers=dict(request.headers),
            content=request.body,
            extensions={"trace": _trace_progress},
        )
        return _as_requests_response(request, answer)

    def close(self) -> None:
        # The channel owns the httpx client and closes it; the session must not.
        pass


def _trace_progress(event: str, info: Mapping[str, Any]) -> None:
    """httpcore's trace hook: note in the ``total_deadline`` trace how far the request got."""
    trace = current_trace()
    if trace is None:
        return
    trace.started = True
    if event.startswith(("http11.send_request_headers", "http2.send_request_headers")):
        trace.sent = True


def _as_requests_response(
    request: requests.PreparedRequest, answer: httpx.Response
) -> requests.Response:
    """An httpx answer dressed as the ``requests.Response`` tweepy expects.

    The body is already read (and decoded) by httpx, so the response has no
    ``raw`` stream; marking the content consumed keeps ``close()`` from
    looking for one.
    """
    response = requests.Response()
    response.status_code = answer.status_code
    # httpx joins repeated headers with ", ", as requests does.
    response.headers = CaseInsensitiveDict(answer.headers.items())
    response._content = answer.content
    response._content_consumed = True
    # None lets requests detect the encoding (JSON is UTF-8 unless it says otherwise).
    response.encoding = answer.charset_encoding
    response.reason = answer.reason_phrase
    response.url = str(answer.url)
    response.request = request
    return response
