"""The social channel on Mastodon: one status per announcement, threaded per incident.

Why plain httpx and not Mastodon.py: Mastodon.py (2.x) is synchronous over ``requests``,
so it would need a worker thread per call and a bridge for respx and ``base_url``, and its
default ``ratelimit_method="wait"`` sleeps up to five minutes inside a call, where the
announcer alone should decide how long to wait. The API used here is two requests, so the
channel calls it with the shared async client (``HttpChannel``) like every other channel.

* ``POST {instance}/api/v1/statuses`` (form: ``status``, ``visibility``, ``language``,
  ``in_reply_to_id``), ``Authorization: Bearer <access_token>``.
* Every request carries an ``Idempotency-Key`` derived from the announcement key and the
  channel: the instance answers a repeated key with the status it already made (for about
  an hour), so a retry after a lost answer or a gateway's 502 never posts twice, and
  ``send --retry-unknown`` is safe within that hour.
* Threads: the announcer sets ``Message.reply_to`` to the incident's latest post on this
  channel (from the ledger); it becomes ``in_reply_to_id``. When that post is gone (404),
  the status is posted on its own rather than not at all.
* 401/403: the token is refused or lacks ``write:statuses``: fatal for the channel.
  422: the instance refused the text (too long for it, ...): failed, not retried.
  429: retried after ``X-RateLimit-Reset`` (an ISO time); 5xx: retried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import httpx

from ..config import MastodonSettings, env_name, require_credentials
from ..models import Message, Outcome
from ..redact import redact, register_secret
from .base import CheckResult, HttpChannel, http_failure, short

STATUSES_PATH = "/api/v1/statuses"
VERIFY_PATH = "/api/v1/accounts/verify_credentials"


def idempotency_key(announcement: str, channel: str) -> str:
    """The same for every attempt of one announcement on one channel, in every run."""
    return hashlib.sha256(f"outagecomms\0{announcement}\0{channel}".encode()).hexdigest()


class MastodonPosts(HttpChannel):
    """Posts the rendered social text as a status on the configured instance."""

    settings: MastodonSettings  # type: ignore[assignment]

    batch_size = 1

    def client_options(self) -> dict[str, Any]:
        token = self.settings.access_token
        assert token is not None  # open() required it
        return {"headers": {"Authorization": f"Bearer {token.get_secret_value()}"}}

    async def open(self) -> None:
        require_credentials(self.name, self.settings)
        assert self.settings.access_token is not None
        # Settings built in code (not by load_config) have not registered it yet.
        register_secret(self.settings.access_token.get_secret_value())
        await super().open()

    # --- sending ---------------------------------------------------------------

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        return [await self._post(message) for message in messages]

    def _form(self, message: Message, reply_to: str | None) -> dict[str, str]:
        form = {"status": message.text, "visibility": self.settings.visibility}
        language = self.settings.language or (message.locale or "").partition("-")[0]
        if language:
            form["language"] = language.lower()
        if reply_to:
            form["in_reply_to_id"] = reply_to
        return form

    async def _post(self, message: Message) -> Outcome:
        """One status; httpx errors propagate (the announcer classifies them)."""
        headers = {"Idempotency-Key": idempotency_key(message.announcement, self.name)}
        url = self.base_url + STATUSES_PATH
        response = await self.http.post(
            url, data=self._form(message, message.reply_to), headers=headers
        )
        if response.status_code == 404 and message.reply_to:
            # The post to reply to was deleted: a status on its own beats none.
            response = await self.http.post(url, data=self._form(message, None), headers=headers)
        if response.is_success:
            status_id = _json(response).get("id")
            if not status_id:
                return Outcome(
                    state="unknown",
                    code="no-id",
                    error=f"Mastodon answered HTTP {response.status_code} without a status id "
                    f"({short(response.text, 200)}); it may or may not have posted",
                )
            return Outcome.sent(str(status_id))
        return self._failure(response)

    def _failure(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        detail = mastodon_error(response)
        if status in (401, 403):
            outcome = http_failure(
                response,
                status,
                f"{detail}; the instance refused the access token: check "
                f"{env_name(self.name, 'access_token')} (it needs the write:statuses scope)",
            )
            outcome.fatal = True
            return outcome
        if status == 422:
            detail += " (the instance refused the text; its character limit may be under 500)"
        return http_failure(response, status, detail)

    # --- check -----------------------------------------------------------------

    async def check(self) -> CheckResult:
        """``GET /api/v1/accounts/verify_credentials``: an authenticated read."""
        try:
            response = await self.http.get(self.base_url + VERIFY_PATH)
        except httpx.HTTPError as exc:
            return CheckResult(
                "error", redact(f"cannot reach {self.base_url}: {exc}") or "network error"
            )
        if response.status_code in (401, 403):
            return CheckResult(
                "refused",
                short(
                    f"the instance refused the access token (HTTP {response.status_code}: "
                    f"{mastodon_error(response)}); check {env_name(self.name, 'access_token')}"
                ),
            )
        account = _json(response)
        if not response.is_success or not account.get("acct"):
            return CheckResult(
                "error",
                f"unexpected answer from {self.base_url} (HTTP {response.status_code}): "
                f"{short(response.text, 200)}",
            )
        host = httpx.URL(self.base_url).host
        return CheckResult("accepted", f"authenticated as @{account['acct']}@{host}")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def mastodon_error(response: httpx.Response) -> str:
    """Mastodon's ``{"error": ...}`` text, short and without secrets."""
    error = _json(response).get("error")
    if isinstance(error, str) and error.strip():
        return short(error, 200)
    return short(response.text, 200) or response.reason_phrase or "no detail"
