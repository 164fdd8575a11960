"""Fake Bluesky PDS: createSession, then createRecord of app.bsky.feed.post."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
from typing import Any

import regex
from aiohttp import web

from ._base import RECORD_KEY, FakeServer, json_response

DEFAULT_HANDLE = "acmeshop.bsky.social"
DEFAULT_APP_PASSWORD = "abcd-efgh-ijkl-mnop"
DEFAULT_DID = "did:plc:z72i7hdynmk6r22z27h6tvur"
MAX_GRAPHEMES = 300


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def fake_jwt(did: str, scope: str, serial: int) -> str:
    """A JWT the client can read (it refreshes by ``exp``); the signature is not real."""
    now = int(time.time())
    payload = {"scope": scope, "sub": did, "iat": now, "exp": now + 7200, "jti": str(serial)}
    signature = _b64(hashlib.sha256(f"{did} {scope} {serial}".encode()).digest())
    return f"{_b64({'typ': 'at+jwt', 'alg': 'ES256K'})}.{_b64(payload)}.{signature}"


def _cid(text: str) -> str:
    digest = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode().lower()
    return "bafyrei" + digest.rstrip("=")[:52]


def _error(status: int, error: str, message: str) -> web.Response:
    return json_response(status, {"error": error, "message": message})


class FakeBluesky(FakeServer):
    """``com.atproto.server.createSession`` and ``com.atproto.repo.createRecord``.

    * createSession checks the handle (or DID) and app password: 401 otherwise.
      ``.sessions`` counts sessions made.
    * createRecord wants ``Bearer <accessJwt>`` of a session, the account's DID as
      ``repo``, a post of at most 300 graphemes whose facets' byte ranges fall on the
      text's UTF-8 bytes, and a ``reply`` whose root and parent are posts made here
      (uri and cid): 400 otherwise.
    * ``lose_answers=N``: the next N posts are made and their connection closed without
      an answer (a post caught mid-flight).
    * ``rate_limited=N``: the next N posts are answered 429; 429s (these and
      ``fail_status=429`` faults) carry ``ratelimit-reset`` (epoch), ``retry_after``
      seconds ahead.

    ``.posts`` lists the records made, each with its ``uri`` and ``cid``.
    """

    name = "bluesky"

    def __init__(
        self,
        *,
        handle: str = DEFAULT_HANDLE,
        app_password: str = DEFAULT_APP_PASSWORD,
        did: str = DEFAULT_DID,
        lose_answers: int = 0,
        rate_limited: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.rate_limited = rate_limited
        self.handle = handle
        self.app_password = app_password
        self.did = did
        self.lose_answers = lose_answers
        self._posts: list[dict[str, Any]] = []
        self._tokens: set[str] = set()
        self.sessions = 0
        self._serial = 0

    @property
    def posts(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._posts)

    @property
    def tokens(self) -> set[str]:
        """Every JWT handed out (tests check none of them leaks)."""
        with self._lock:
            return set(self._tokens)

    def _reset_views(self) -> None:
        self._posts.clear()
        self.sessions = 0

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/xrpc/com.atproto.server.createSession", self._create_session)
        app.router.add_post("/xrpc/com.atproto.repo.createRecord", self._create_record)

    def _fault_body(self, status: int) -> web.Response:
        if status == 429:
            return _error(429, "RateLimitExceeded", "Rate Limit Exceeded")
        return _error(status, "InternalServerError", "Internal Server Error")

    def _fault_headers(self, status: int) -> dict[str, str]:
        headers = super()._fault_headers(status)
        headers.pop("Retry-After", None)  # the PDS says when the window resets instead
        if status == 429:
            headers["ratelimit-limit"] = "30"
            headers["ratelimit-remaining"] = "0"
            headers["ratelimit-reset"] = str(math.ceil(time.time() + (self.retry_after or 0)))
            headers["ratelimit-policy"] = "30;w=300"
        return headers

    async def _create_session(self, request: web.Request) -> web.Response:
        body = request[RECORD_KEY].json or {}
        if body.get("identifier") not in (self.handle, self.did) or (
            body.get("password") != self.app_password
        ):
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        with self._lock:
            self.sessions += 1
            self._serial += 1
            access = fake_jwt(self.did, "com.atproto.appPass", self._serial)
            refresh = fake_jwt(self.did, "com.atproto.refresh", self._serial)
            self._tokens |= {access, refresh}
        return json_response(
            200,
            {
                "did": self.did,
                "handle": self.handle,
                "accessJwt": access,
                "refreshJwt": refresh,
                "active": True,
            },
        )

    def _problem(self, record: Any, text: Any) -> str | None:
        """What is wrong with a post record, or None."""
        if not isinstance(text, str) or not text:
            return "Record/text is required"
        if len(regex.findall(r"\X", text)) > MAX_GRAPHEMES:
            return f"Record/text must not be longer than {MAX_GRAPHEMES} graphemes"
        size = len(text.encode())
        for facet in record.get("facets") or []:
            index = facet.get("index", {})
            start, end = index.get("byteStart"), index.get("byteEnd")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= size):
                return "Record/facets has an invalid byte range"
        reply = record.get("reply")
        if reply is not None:
            known = {(p["uri"], p["cid"]) for p in self._posts}
            for part in ("root", "parent"):
                ref = reply.get(part) or {}
                if (ref.get("uri"), ref.get("cid")) not in known:
                    return f"Record/reply/{part} is not a known post"
        return None

    async def _create_record(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        with self._lock:
            authorized = header.startswith("Bearer ") and header[7:] in self._tokens
        if not authorized:
            return _error(401, "AuthenticationRequired", "Authentication Required")
        if self._consume("rate_limited"):
            return self._fault(429)
        body = request[RECORD_KEY].json or {}
        record = body.get("record") or {}
        if body.get("repo") not in (self.did, self.handle):
            return _error(400, "InvalidRequest", "Input/repo must be the session's account")
        if body.get("collection") != "app.bsky.feed.post":
            return _error(400, "InvalidRequest", "Input/collection must be app.bsky.feed.post")
        with self._lock:
            problem = self._problem(record, record.get("text"))
            if problem:
                return _error(400, "InvalidRequest", problem)
            self._serial += 1
            rkey = f"3l{self._serial:011d}"
            uri = f"at://{self.did}/app.bsky.feed.post/{rkey}"
            cid = _cid(uri + record["text"])
            self._posts.append({"uri": uri, "cid": cid, **record})
        if self._consume("lose_answers"):
            # Drop the connection: the post exists, the client never hears of it.
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        return json_response(200, {"uri": uri, "cid": cid, "validationStatus": "valid"})
