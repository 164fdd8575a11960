"""The social channel on Bluesky: one post per announcement, threaded per incident.

Posting goes through the ``atproto`` package's ``AsyncClient``, which speaks httpx: its
request object is given the channel's shared ``httpx.AsyncClient`` (aiohttp transport), so
``base_url`` (the PDS), the timeout and respx work as for every other channel.

* One session per run: ``com.atproto.server.createSession`` with the handle and the app
  password on the first post (createSession is limited to 30 per 5 minutes per handle),
  then ``com.atproto.repo.createRecord`` per post. The session's tokens are registered as
  secrets the moment they arrive, so they never reach output, logs or the ledger.
* Links are clickable only through facets: ``detect_facets`` finds them with UTF-8 byte
  offsets (not character offsets), which non-ASCII text before a URL would otherwise shift.
* Threads: a post is addressed by its AT URI *and* its CID, and a reply names both the
  thread's root and its parent. So ``provider_id`` is ``<uri>|<cid>`` for the first post of
  an incident and ``<uri>|<cid>|<root uri>|<root cid>`` for a reply. The announcer passes
  the incident's latest post as ``Message.reply_to``: it is the parent, and its root (or
  itself, when it has none) is the root, i.e. the incident's first post.
* Bluesky has no idempotency key: a post whose answer was lost stays ``unknown`` (the
  httpx error is re-raised for the announcer to classify, as for every channel).
* 401/403: the app password (or session) is refused: fatal. 429: retried when the limit
  resets (``Retry-After`` or ``ratelimit-reset``). 5xx and 409: retried. Other 4xx: failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import httpx
from atproto_client import AsyncClient, models
from atproto_client.client.session import Session, SessionEvent
from atproto_client.exceptions import (
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.request import AsyncRequest, RequestBase
from atproto_client.utils import detect_facets

from ..config import BlueskySettings, env_name, require_credentials
from ..models import Message, Outcome
from ..redact import register_secret
from .base import CheckResult, HttpChannel, is_transient_status, short


class PostRef(NamedTuple):
    """A post as a reply needs it: its AT URI and CID, and its thread's root."""

    uri: str
    cid: str
    root_uri: str
    root_cid: str

    @classmethod
    def parse(cls, provider_id: str | None) -> PostRef | None:
        """The reference stored as ``provider_id``; None when it is not one of ours."""
        parts = (provider_id or "").split("|")
        if len(parts) == 2 and all(parts):
            return cls(parts[0], parts[1], parts[0], parts[1])
        if len(parts) == 4 and all(parts):
            return cls(*parts)
        return None

    def provider_id(self) -> str:
        if (self.uri, self.cid) == (self.root_uri, self.root_cid):
            return f"{self.uri}|{self.cid}"
        return "|".join(self)

    def reply(self) -> models.AppBskyFeedPost.ReplyRef:
        """The ``reply`` of a post answering this one."""
        return models.AppBskyFeedPost.ReplyRef(
            parent=models.ComAtprotoRepoStrongRef.Main(uri=self.uri, cid=self.cid),
            root=models.ComAtprotoRepoStrongRef.Main(uri=self.root_uri, cid=self.root_cid),
        )


class _SharedRequest(AsyncRequest):
    """atproto's request layer on the channel's own httpx client (which the channel closes)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        RequestBase.__init__(self)
        self._client_kwargs: dict[str, Any] = {}
        self._client = http

    async def close(self) -> None:
        pass


class _Refused(Exception):
    """createSession did not give a session; ``outcome`` says why."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


class BlueskyPosts(HttpChannel):
    """Posts the rendered social text on Bluesky, as a reply to the incident's latest post."""

    settings: BlueskySettings  # type: ignore[assignment]

    batch_size = 1

    client: AsyncClient

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._did: str | None = None
        self._login = asyncio.Lock()

    async def open(self) -> None:
        require_credentials(self.name, self.settings)
        assert self.settings.app_password is not None
        register_secret(self.settings.app_password.get_secret_value())
        await super().open()
        self.client = AsyncClient(self.base_url, request=_SharedRequest(self.http))
        self.client.on_session_change(self._on_session)

    def _on_session(self, event: SessionEvent, session: Session) -> None:
        """Every new or refreshed session: its tokens become secrets before any use."""
        register_secret(session.access_jwt)
        register_secret(session.refresh_jwt)
        self._did = session.did

    # --- session ---------------------------------------------------------------

    async def _session(self) -> str:
        """The account's DID, after one createSession per run; raises ``_Refused``."""
        async with self._login:
            if self._did is None:
                password = self.settings.app_password
                assert password is not None
                try:
                    await self.client.login(
                        self.settings.handle, password.get_secret_value(), fetch_bsky_profile=False
                    )
                except RequestErrorBase as exc:
                    raise _Refused(self._failure(exc, login=True)) from None
            assert self._did is not None  # set by _on_session
            return self._did

    # --- sending ---------------------------------------------------------------

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        return [await self._post(message) for message in messages]

    async def _post(self, message: Message) -> Outcome:
        try:
            did = await self._session()
        except _Refused as refused:
            return refused.outcome
        parent = PostRef.parse(message.reply_to)
        try:
            created = await self.client.send_post(
                message.text,
                profile_identify=did,
                reply_to=parent.reply() if parent else None,
                langs=[message.locale] if message.locale else None,
                facets=detect_facets(message.text) or None,
            )
        except RequestErrorBase as exc:
            return self._failure(exc)
        root = (parent.root_uri, parent.root_cid) if parent else (created.uri, created.cid)
        return Outcome.sent(PostRef(created.uri, created.cid, *root).provider_id())

    def _failure(self, exc: RequestErrorBase, *, login: bool = False) -> Outcome:
        """An error answer as an outcome. A transport error of a post is re-raised as the
        httpx exception behind it, which the announcer classifies (refused: retried; lost
        answer: ``unknown``); one of a login is retried, since logging in again posts
        nothing."""
        response = exc.response
        if response is None:
            cause = exc.__cause__
            if isinstance(cause, httpx.HTTPError) and not login:
                raise cause
            problem = f"{type(cause).__name__}: {cause}" if cause else str(exc)
            return Outcome.failed(
                short(f"cannot reach {self.base_url} to log in ({problem})"),
                code="network",
                retryable=True,
            )
        status = response.status_code
        detail = short(str(exc), 200)
        if isinstance(exc, UnauthorizedError):
            what = "app password" if login else "session"
            return Outcome.failed(
                short(
                    f"HTTP {status}: {detail}; Bluesky refused the {what}: check the handle "
                    f"'{self.settings.handle}' of channel '{self.name}' and "
                    f"{env_name(self.name, 'app_password')} (an app password)"
                ),
                code=status,
                fatal=True,
            )
        if isinstance(exc, RateLimitExceededError):
            wait = exc.retry_after
            if wait is None and exc.reset_at is not None:
                wait = max(exc.reset_at.timestamp() - time.time(), 0.0)
            return Outcome.failed(
                short(f"HTTP 429: {detail}"), code=429, retryable=True, retry_after=wait
            )
        # atproto raises 409 (a repository write raced another) as a network error: worth
        # retrying, as 5xx is; 413 (too large) and other 4xx will not change.
        retryable = status == 409 or is_transient_status(status)
        return Outcome.failed(short(f"HTTP {status}: {detail}"), code=status, retryable=retryable)

    # --- check -----------------------------------------------------------------

    async def check(self) -> CheckResult:
        """createSession: the only read that proves the app password (it posts nothing)."""
        try:
            did = await self._session()
        except _Refused as refused:
            outcome = refused.outcome
            status = "refused" if outcome.fatal else "error"
            return CheckResult(status, outcome.error or "refused")
        return CheckResult("accepted", f"authenticated as @{self.settings.handle} ({did})")
