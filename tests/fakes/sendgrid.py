"""Fake SendGrid v3 Mail Send API (and the scopes read used by ``check``)."""

from __future__ import annotations

import json
import re
import secrets
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ._base import RECORD_KEY, FakeServer, json_response, reset_epoch

DEFAULT_API_KEY = "SG.fake-sendgrid-key.fake-sendgrid-secret"
DEFAULT_SCOPES = ("mail.send", "user.profile.read")
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_SUBSTITUTIONS_BYTES = 10_000
_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"


def _error(
    message: str, field: str | None = None, help_anchor: str | None = None
) -> dict[str, Any]:
    return {
        "message": message,
        "field": field,
        "help": f"{_HELP}#{help_anchor}" if help_anchor else None,
    }


def errors_response(status: int, errors: list[dict[str, Any]]) -> web.Response:
    return json_response(status, {"errors": errors})


def _message_id() -> str:
    # SendGrid's X-Message-Id is 22 URL-safe characters.
    return secrets.token_urlsafe(16)


def _validate(body: Any, *, require_text_and_html: bool) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return [_error("Bad Request", None)]
    errors: list[dict[str, Any]] = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            _error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
                "message.personalizations",
            )
        )
        personalizations = []
    elif len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            _error(
                f"The personalizations field cannot have more than {MAX_PERSONALIZATIONS} "
                "personalizations.",
                "personalizations",
                "message.personalizations",
            )
        )
    seen: set[str] = set()
    recipients = 0
    every_has_subject = bool(personalizations)
    for index, personalization in enumerate(personalizations):
        if not isinstance(personalization, dict):
            errors.append(_error("Bad Request", f"personalizations.{index}"))
            continue
        every_has_subject = every_has_subject and bool(personalization.get("subject"))
        errors.extend(_validate_substitutions(personalization, index))
        if not personalization.get("to"):
            errors.append(
                _error(
                    "The to array is required for all personalization objects, and must have "
                    "at least one email object with a valid email address.",
                    f"personalizations.{index}.to",
                    "message.personalizations.to",
                )
            )
        for kind in ("to", "cc", "bcc"):
            for position, address in enumerate(personalization.get(kind) or []):
                field = f"personalizations.{index}.{kind}"
                email = address.get("email") if isinstance(address, dict) else None
                if not isinstance(email, str) or "@" not in email:
                    errors.append(
                        _error(
                            "Does not contain a valid address.",
                            f"{field}.{position}.email",
                            "message.personalizations",
                        )
                    )
                    continue
                recipients += 1
                key = email.lower()
                if key in seen:
                    errors.append(
                        _error(
                            "Each email address in the personalization block should be unique "
                            "between to, cc, and bcc. We found the first duplicate instance of "
                            f"[{email}] in the {field} field.",
                            field,
                            "message.recipient.duplicates",
                        )
                    )
                seen.add(key)
    if recipients > MAX_RECIPIENTS:
        errors.append(
            _error(
                f"The total number of recipients must be less than {MAX_RECIPIENTS}.",
                "personalizations",
                "message.personalizations",
            )
        )
    sender = body.get("from")
    if not isinstance(sender, dict) or "@" not in str(sender.get("email", "")):
        errors.append(
            _error(
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter.",
                "from.email",
                "message.from",
            )
        )
    templated = bool(body.get("template_id"))
    if not templated and not body.get("subject") and not every_has_subject:
        errors.append(
            _error(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
                "message.subject",
            )
        )
    content = body.get("content")
    if not templated:
        types = [c.get("type") for c in content or [] if isinstance(c, dict) and c.get("value")]
        if not types:
            errors.append(
                _error(
                    "Unless a valid template_id is provided, the content parameter is required. "
                    "There must be at least one defined content block. We typically suggest "
                    "both text/plain and text/html blocks are included, but only one block is "
                    "required.",
                    "content",
                    "message.content",
                )
            )
        elif require_text_and_html and not {"text/plain", "text/html"} <= set(types):
            errors.append(_error("Content must include both text/plain and text/html.", "content"))
        elif "text/plain" in types and types[0] != "text/plain":
            errors.append(
                _error(
                    "If present, text/plain content must be first, followed by text/html, "
                    "followed by any other content.",
                    "content",
                    "message.content",
                )
            )
    custom_args = body.get("custom_args")
    if custom_args and len(json.dumps(custom_args)) >= MAX_CUSTOM_ARGS_BYTES:
        errors.append(_error("Custom args must be less than 10000 bytes.", "custom_args"))
    return errors


def _validate_substitutions(personalization: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """A personalization's ``substitutions``: an object of string tags to string values,
    together less than 10,000 bytes."""
    if "substitutions" not in personalization:
        return []
    field = f"personalizations.{index}.substitutions"
    substitutions = personalization["substitutions"]
    if not isinstance(substitutions, dict) or not all(
        isinstance(key, str) and key and isinstance(value, str)
        for key, value in substitutions.items()
    ):
        return [
            _error(
                "The substitutions field must be a collection of key/value pairs where both "
                "the key and the value are strings.",
                field,
                "message.personalizations.substitutions",
            )
        ]
    if len(json.dumps(substitutions, ensure_ascii=False).encode()) >= MAX_SUBSTITUTIONS_BYTES:
        return [
            _error(
                f"The substitutions of a personalization must total less than "
                f"{MAX_SUBSTITUTIONS_BYTES} bytes.",
                field,
                "message.personalizations.substitutions",
            )
        ]
    return []


def substitute(text: str | None, substitutions: dict[str, str]) -> str | None:
    """``text`` as SendGrid delivers it for one personalization: every tag replaced by its
    value in one pass, the longest tag first where tags overlap (values are not searched
    again)."""
    if text is None or not substitutions:
        return text
    tags = sorted(substitutions, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(tag) for tag in tags))
    return pattern.sub(lambda match: substitutions[match.group(0)], text)


def _content(body: dict[str, Any], ctype: str) -> str | None:
    for block in body.get("content") or []:
        if block.get("type") == ctype:
            return str(block.get("value"))
    return None


class FakeSendGrid(FakeServer):
    """``POST /v3/mail/send`` and ``GET /v3/scopes``.

    ``require_text_and_html`` (default on) refuses mail without both a
    text/plain and a text/html part: the product always sends both.
    Views: ``.requests_sent`` (accepted bodies with their ``message_id``),
    ``.emails`` (one dict per recipient, with the personalization's
    ``substitutions`` applied to subject, text and html: what that recipient
    receives), ``.sandbox_requests``.
    """

    name = "sendgrid"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        scopes: list[str] | tuple[str, ...] = DEFAULT_SCOPES,
        require_text_and_html: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.api_key = api_key
        self.scopes = list(scopes)
        self.require_text_and_html = require_text_and_html
        self._sent: list[dict[str, Any]] = []
        self._sandboxed: list[dict[str, Any]] = []

    @property
    def requests_sent(self) -> list[dict[str, Any]]:
        """``{"body": <mail/send JSON>, "message_id": <X-Message-Id>}`` per accepted request."""
        with self._lock:
            return list(self._sent)

    @property
    def sandbox_requests(self) -> list[dict[str, Any]]:
        """Bodies accepted in sandbox mode (validated, not delivered)."""
        with self._lock:
            return list(self._sandboxed)

    @property
    def emails(self) -> list[dict[str, Any]]:
        """One dict per recipient of every accepted request (flattened on read,
        so a 1000-recipient request costs nothing extra while being served)."""
        result: list[dict[str, Any]] = []
        for sent in self.requests_sent:
            body, message_id = sent["body"], sent["message_id"]
            text, html = _content(body, "text/plain"), _content(body, "text/html")
            categories = list(body.get("categories") or [])
            asm_group_id = (body.get("asm") or {}).get("group_id")
            for personalization in body["personalizations"]:
                custom_args = {
                    **(body.get("custom_args") or {}),
                    **(personalization.get("custom_args") or {}),
                }
                substitutions = personalization.get("substitutions") or {}
                subject = personalization.get("subject") or body.get("subject")
                headers = {**(body.get("headers") or {}), **(personalization.get("headers") or {})}
                for kind in ("to", "cc", "bcc"):
                    for address in personalization.get(kind) or []:
                        result.append(
                            {
                                "to": address["email"],
                                "name": address.get("name"),
                                "kind": kind,
                                "from": body["from"].get("email"),
                                "subject": substitute(subject, substitutions),
                                "categories": categories,
                                "custom_args": custom_args,
                                "asm_group_id": asm_group_id,
                                "message_id": message_id,
                                "text": substitute(text, substitutions),
                                "html": substitute(html, substitutions),
                                "headers": headers,
                            }
                        )
        return result

    def _reset_views(self) -> None:
        self._sent.clear()
        self._sandboxed.clear()

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v3/mail/send", self._send)
        app.router.add_get("/v3/scopes", self._scopes)

    def _fault_body(self, status: int) -> web.Response:
        message = "too many requests" if status == 429 else HTTPStatus(status).phrase
        return errors_response(status, [_error(message)])

    def _fault_headers(self, status: int) -> dict[str, str]:
        headers = super()._fault_headers(status)
        if status == 429:
            headers["X-RateLimit-Limit"] = "600"
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = reset_epoch(self.retry_after or 0)
        return headers

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def _unauthorized(self) -> web.Response:
        return errors_response(
            401,
            [_error("The provided authorization grant is invalid, expired, or revoked")],
        )

    async def _send(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        body = request[RECORD_KEY].json
        errors = _validate(body, require_text_and_html=self.require_text_and_html)
        if errors:
            return errors_response(400, errors)
        sandbox = (body.get("mail_settings") or {}).get("sandbox_mode") or {}
        if sandbox.get("enable"):
            with self._lock:
                self._sandboxed.append(body)
            return web.Response(status=200)
        message_id = _message_id()
        with self._lock:
            self._sent.append({"body": body, "message_id": message_id})
        return web.Response(status=202, headers={"X-Message-Id": message_id})

    async def _scopes(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        return json_response(200, {"scopes": list(self.scopes)})
