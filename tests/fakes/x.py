"""Fake X (Twitter) API v2: create a post, read the authenticated user."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from ._base import RECORD_KEY, FakeServer, json_response, reset_epoch

DEFAULT_CONSUMER_KEY = "fake-x-consumer-key"
DEFAULT_CONSUMER_SECRET = "fake-x-consumer-secret"
DEFAULT_ACCESS_TOKEN = "1234567890-fake-x-access-token"
DEFAULT_ACCESS_TOKEN_SECRET = "fake-x-access-token-secret"
DEFAULT_BEARER_TOKEN = "fake-x-oauth2-user-token"

# Snowflake-sized ids, so clients that assume 19 digits are exercised.
_FIRST_POST_ID = 1_860_000_000_000_000_000
_OAUTH_PARAM = re.compile(r'([A-Za-z0-9_]+)="([^"]*)"')


def problem(status: int, detail: str | None = None) -> web.Response:
    phrase = HTTPStatus(status).phrase
    return json_response(
        status,
        {"detail": detail or phrase, "type": "about:blank", "title": phrase, "status": status},
    )


class FakeX(FakeServer):
    """``POST /2/tweets`` and ``GET /2/users/me``.

    Accepts OAuth 1.0a user context (``Authorization: OAuth ...`` naming the
    configured consumer key and access token) or an OAuth 2.0 user token
    (``Bearer <bearer_token>``). Signatures are not verified: clients sign
    ``https://api.twitter.com/...`` and are then pointed at this fake, so the
    signed URL never matches. ``.posts`` lists accepted posts.
    """

    name = "x"

    def __init__(
        self,
        *,
        consumer_key: str = DEFAULT_CONSUMER_KEY,
        consumer_secret: str = DEFAULT_CONSUMER_SECRET,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        access_token_secret: str = DEFAULT_ACCESS_TOKEN_SECRET,
        bearer_token: str | None = DEFAULT_BEARER_TOKEN,
        user_id: str = "1234567890",
        user_name: str = "Acme Shop",
        username: str = "acmeshop",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.access_token = access_token
        self.access_token_secret = access_token_secret
        self.bearer_token = bearer_token
        self.user = {"id": user_id, "name": user_name, "username": username}
        self._posts: list[dict[str, Any]] = []
        self._texts: set[str] = set()
        self._next_id = _FIRST_POST_ID

    @property
    def posts(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._posts)

    def _reset_views(self) -> None:
        # Ids keep increasing across resets, as they would on the real service.
        self._posts.clear()
        self._texts.clear()

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/2/tweets", self._create_post)
        app.router.add_get("/2/users/me", self._me)

    def _fault_body(self, status: int) -> web.Response:
        return problem(status)

    def _fault_headers(self, status: int) -> dict[str, str]:
        headers = super()._fault_headers(status)
        if status == 429:
            headers["x-rate-limit-limit"] = "100"
            headers["x-rate-limit-remaining"] = "0"
            headers["x-rate-limit-reset"] = reset_epoch(self.retry_after or 0)
        return headers

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return self.bearer_token is not None and header[7:] == self.bearer_token
        if header.startswith("OAuth "):
            params = {k: unquote(v) for k, v in _OAUTH_PARAM.findall(header)}
            return (
                params.get("oauth_consumer_key") == self.consumer_key
                and params.get("oauth_token", self.access_token) == self.access_token
            )
        return False

    async def _create_post(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return problem(401)
        payload = request[RECORD_KEY].json
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text:
            return json_response(
                400,
                {
                    "errors": [{"parameters": {"text": []}, "message": "text is required"}],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
            )
        reply = payload.get("reply")
        in_reply_to = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
        with self._lock:
            if text in self._texts:
                duplicate = True
            else:
                duplicate = False
                self._texts.add(text)
                post_id = str(self._next_id)
                self._next_id += 1
                self._posts.append({"id": post_id, "text": text, "in_reply_to": in_reply_to})
        if duplicate:
            return problem(403, "You are not allowed to create a Tweet with duplicate content.")
        return json_response(
            201, {"data": {"id": post_id, "edit_history_tweet_ids": [post_id], "text": text}}
        )

    async def _me(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return problem(401)
        return json_response(200, {"data": dict(self.user)})
