"""Fake Mastodon instance: post a status (with Idempotency-Key), verify credentials."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import regex
from aiohttp import web

from ._base import RECORD_KEY, FakeServer, json_response

DEFAULT_ACCESS_TOKEN = "fake-mastodon-access-token"
VISIBILITIES = frozenset({"public", "unlisted", "private", "direct"})
# Only URLs with a scheme get the 23-character concession, as on a real instance.
_URL = re.compile(r"https?://[^\s]+", re.IGNORECASE)


def status_length(text: str) -> int:
    """A Mastodon instance's count: graphemes, each http(s) URL as 23 (written here
    independently of the product's own counter)."""
    return len(regex.findall(r"\X", _URL.sub("x" * 23, text)))


class FakeMastodon(FakeServer):
    """``POST /api/v1/statuses`` and ``GET /api/v1/accounts/verify_credentials``.

    * ``Authorization: Bearer <access_token>`` or 401.
    * A repeated ``Idempotency-Key`` answers the status it made the first time (200) and
      posts nothing.
    * ``in_reply_to_id`` of an unknown status: 404, like a deleted post.
    * Over ``max_characters``: 422 with Mastodon's message.
    * ``lose_answers=N``: the next N statuses are created, then answered 502 as a
      gateway that lost the instance's answer would (a retry must not post twice).
    * ``rate_limited=N``: the next N statuses are answered 429; 429s (these and
      ``fail_status=429`` faults) carry ``X-RateLimit-Reset`` as an ISO time,
      ``retry_after`` seconds ahead.

    ``.statuses`` lists the statuses made, oldest first.
    """

    name = "mastodon"

    def __init__(
        self,
        *,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        username: str = "acmeshop",
        max_characters: int = 500,
        lose_answers: int = 0,
        rate_limited: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.rate_limited = rate_limited
        self.access_token = access_token
        self.username = username
        self.max_characters = max_characters
        self.lose_answers = lose_answers
        self._statuses: list[dict[str, Any]] = []
        self._by_key: dict[str, dict[str, Any]] = {}
        self._next_id = 113_500_000_000_000_000

    @property
    def statuses(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._statuses)

    def _reset_views(self) -> None:
        self._statuses.clear()
        self._by_key.clear()

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/statuses", self._post_status)
        app.router.add_get("/api/v1/accounts/verify_credentials", self._verify)

    def _fault_body(self, status: int) -> web.Response:
        text = "Too many requests" if status == 429 else "Something went wrong"
        return json_response(status, {"error": text})

    def _fault_headers(self, status: int) -> dict[str, str]:
        headers = super()._fault_headers(status)
        headers.pop("Retry-After", None)  # Mastodon says when the window resets instead
        if status == 429:
            reset = datetime.now(UTC) + timedelta(seconds=self.retry_after or 0)
            headers["X-RateLimit-Limit"] = "300"
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = reset.isoformat(timespec="milliseconds")
        return headers

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.access_token}"

    async def _post_status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return json_response(401, {"error": "The access token is invalid"})
        if self._consume("rate_limited"):
            return self._fault(429)
        form = request[RECORD_KEY].form or {}
        text = form.get("status", "")
        if not text.strip():
            return json_response(422, {"error": "Validation failed: Text can't be blank"})
        if status_length(text) > self.max_characters:
            return json_response(
                422,
                {
                    "error": f"Validation failed: Text character limit of {self.max_characters}"
                    " exceeded"
                },
            )
        visibility = form.get("visibility", "public")
        if visibility not in VISIBILITIES:
            return json_response(422, {"error": "Validation failed: Visibility is not included"})
        key = request.headers.get("Idempotency-Key")
        reply_to = form.get("in_reply_to_id")
        with self._lock:
            if key and key in self._by_key:
                return json_response(200, self._by_key[key])
            if reply_to and not any(s["id"] == reply_to for s in self._statuses):
                return json_response(404, {"error": "Record not found"})
            status_id = str(self._next_id)
            self._next_id += 1
            status = {
                "id": status_id,
                "uri": f"{self.base_url}/users/{self.username}/statuses/{status_id}",
                "url": f"{self.base_url}/@{self.username}/{status_id}",
                "content": f"<p>{text}</p>",
                "text": text,
                "visibility": visibility,
                "language": form.get("language"),
                "in_reply_to_id": reply_to,
                "idempotency_key": key,
            }
            self._statuses.append(status)
            if key:
                self._by_key[key] = status
        if self._consume("lose_answers"):
            return web.Response(status=502, text="<html>502 Bad Gateway</html>")
        return json_response(200, status)

    async def _verify(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return json_response(401, {"error": "The access token is invalid"})
        return json_response(
            200, {"id": "109000000000000001", "username": self.username, "acct": self.username}
        )
