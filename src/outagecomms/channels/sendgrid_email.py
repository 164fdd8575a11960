"""Email through SendGrid's v3 Mail Send API: up to 1000 recipients in one request.

The payload is built with ``sendgrid.helpers.mail`` and posted with the
shared httpx client (SendGrid's own client uses urllib, which neither
respx nor ``base_url`` would see).

Per-recipient content: SendGrid lets each personalization carry its own
``to`` and ``subject`` but not its own body, and the rendered templates may
differ per recipient (they can greet by name). A batch is therefore grouped
by identical (subject, text, html): one request per distinct content, each
with one personalization per recipient. A batch whose templates do not use
the recipient goes out as a single request; one that greets every
recipient by a different name costs one request per distinct body. The
alternative, SendGrid substitutions, would save those requests but send a
body that is not what preflight rendered and checked, so it was not taken.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ..config import SendGridSettings
from ..errors import ConfigError
from ..models import Message, Outcome
from ..redact import redact, register_secret
from .base import CheckResult, HttpChannel, http_failure, never_reached_provider, short

if TYPE_CHECKING:
    from sendgrid.helpers.mail import Email

MAIL_SEND_PATH = "/v3/mail/send"
SCOPES_PATH = "/v3/scopes"
SEND_SCOPE = "mail.send"
#: SendGrid's limit of personalizations (and recipients) in one request.
MAX_PERSONALIZATIONS = 1000

# "personalizations.12.to.0.email": the one recipient a 400 error is about.
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)\.(?:to|cc|bcc)\b")

_E = TypeVar("_E", bound="Email")
_GroupKey = tuple[str, str, str, str | None, str | None, int]


class SendGridEmail(HttpChannel):
    settings: SendGridSettings  # type: ignore[assignment]

    batch_size = MAX_PERSONALIZATIONS

    def client_options(self) -> dict[str, Any]:
        key = self.settings.api_key
        return {"headers": {"Authorization": f"Bearer {key.get_secret_value()}"}} if key else {}

    async def open(self) -> None:
        if not self.settings.from_:
            raise ConfigError(
                f"channel '{self.name}' (sendgrid) has no sender address: set 'from' "
                f"on channel '{self.name}' in channels.yaml (a verified SendGrid sender)"
            )
        if self.settings.api_key is not None:
            # Settings built in code (not by load_config) have not registered it yet.
            register_secret(self.settings.api_key.get_secret_value())
        await super().open()

    # --- sending -------------------------------------------------------------

    def split(self, messages: Sequence[Message]) -> list[list[int]]:
        return _group(messages)

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(messages)
        groups = _group(messages)
        for number, indexes in enumerate(groups):
            try:
                results = await self._send_group([messages[i] for i in indexes])
            except httpx.TransportError as exc:
                # Earlier groups may already be sent: answer per message rather than
                # raise, which would make the caller send those again.
                for i in indexes:
                    outcomes[i] = _transport_outcome(exc)
                for later in groups[number + 1 :]:
                    for i in later:
                        outcomes[i] = Outcome.failed(
                            "not sent: an earlier request of the batch failed to reach SendGrid",
                            code="connect",
                            retryable=True,
                        )
                break
            for i, outcome in zip(indexes, results, strict=True):
                outcomes[i] = outcome
        return [o for o in outcomes if o is not None]

    async def _send_group(
        self, messages: list[Message], *, second_try: bool = False
    ) -> list[Outcome]:
        """One request for messages sharing their content; one outcome per message."""
        try:
            body = self.payload(messages)
        except Exception as exc:  # the helpers refuse content that looks like an API key
            error = redact(f"SendGrid helpers refused the message: {type(exc).__name__} {exc}")
            return [Outcome.failed(error, code="payload") for _ in messages]
        response = await self.http.post(self.base_url + MAIL_SEND_PATH, json=body)
        if response.is_success:
            # 202 with X-Message-Id; sandbox mode answers 200 and sends nothing.
            message_id = response.headers.get("x-message-id")
            return [Outcome.sent(message_id) for _ in messages]
        errors = _errors(response)
        refused = _refused_recipients(body, errors) if response.status_code == 400 else {}
        others = [m for m in messages if m.recipient.lower() not in refused]
        if refused and others and not second_try:
            # SendGrid refuses a whole request for one bad address; the others were never
            # judged, so they go once more without it (no wait: nothing transient happened).
            try:
                again = await self._send_group(others, second_try=True)
            except httpx.TransportError as exc:
                again = [_transport_outcome(exc) for _ in others]
            by_address = {m.recipient.lower(): o for m, o in zip(others, again, strict=True)}
            return [
                by_address.get(m.recipient.lower())
                or self._failure(response, refused[m.recipient.lower()])
                for m in messages
            ]
        text = "; ".join(_describe(e) for e in errors) or short(response.text)
        return [self._failure(response, text) for _ in messages]

    @staticmethod
    def _failure(response: httpx.Response, text: str) -> Outcome:
        outcome = http_failure(response, None, text)
        # 403: the key lacks mail.send or the sender is not verified; no message can pass.
        outcome.fatal = outcome.fatal or response.status_code == 403
        return outcome

    def payload(self, messages: Sequence[Message]) -> dict[str, Any]:
        """The ``/v3/mail/send`` JSON for messages that share subject, text and html."""
        from sendgrid.helpers.mail import (
            Asm,
            Category,
            CustomArg,
            From,
            GroupId,
            Mail,
            MailSettings,
            Personalization,
            ReplyTo,
            SandBoxMode,
            To,
        )

        first = messages[0]
        settings = self.settings
        mail = Mail(
            from_email=_address(From, settings.from_ or "", settings.from_name),
            subject=first.subject or "",
            plain_text_content=first.text,
            html_content=first.html or None,
        )
        for message in messages:
            personalization = Personalization()
            personalization.add_to(_address(To, message.recipient, message.name))
            # Appended at the end: the default index=0 would reverse the list.
            mail.add_personalization(personalization, index=len(mail.personalizations))
        incident = first.incident
        for category in ("outagecomms", incident.id):
            mail.add_category(Category(category))
        # custom_args come back on every webhook event: they map events to ledger rows.
        args = {"announcement": first.announcement, "incident": incident.id, "channel": self.name}
        for key, value in args.items():
            mail.add_custom_arg(CustomArg(key, value))
        if settings.reply_to:
            mail.reply_to = _address(ReplyTo, settings.reply_to, None)
        if settings.asm_group_id is not None:
            mail.asm = Asm(GroupId(settings.asm_group_id))
        if settings.sandbox_mode:
            mail.mail_settings = MailSettings(sandbox_mode=SandBoxMode(True))
        body: dict[str, Any] = mail.get()
        return body

    # --- check ---------------------------------------------------------------

    async def check(self) -> CheckResult:
        try:
            response = await self.http.get(self.base_url + SCOPES_PATH)
        except httpx.HTTPError as exc:
            return CheckResult("error", redact(f"cannot reach SendGrid: {exc}") or "network error")
        if response.status_code in (401, 403):
            detail = "; ".join(_describe(e) for e in _errors(response)) or short(response.text)
            return CheckResult(
                "refused", f"SendGrid refused the API key (HTTP {response.status_code}: {detail})"
            )
        if not response.is_success:
            return CheckResult(
                "error", f"SendGrid answered HTTP {response.status_code}: {short(response.text)}"
            )
        try:
            scopes = response.json().get("scopes") or []
        except ValueError:
            return CheckResult("error", f"unexpected answer from SendGrid: {short(response.text)}")
        if SEND_SCOPE not in scopes:
            return CheckResult(
                "refused",
                f"the API key is valid but lacks the '{SEND_SCOPE}' permission; "
                "give it Mail Send access in SendGrid's API key settings",
            )
        return CheckResult("accepted", f"API key has {SEND_SCOPE}")


def _address(cls: type[_E], email: str, name: str | None) -> _E:
    """A helpers address set field by field: given an address without a name, the
    helpers' constructors parse it as "Name <address>" and can drop it entirely."""
    address = cls()
    address.email = email
    if name:
        address.name = name
    return address


def _group(messages: Sequence[Message]) -> list[list[int]]:
    """Indexes of the messages, grouped by what one request can carry.

    A request needs one content, one announcement, and each address at most once
    (SendGrid refuses duplicates), so a repeated address goes to another request.
    """
    groups: dict[_GroupKey, list[int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for index, message in enumerate(messages):
        occurrence = seen.get((message.announcement, message.recipient.lower()), 0)
        seen[(message.announcement, message.recipient.lower())] = occurrence + 1
        key: _GroupKey = (
            message.announcement,
            message.channel,
            message.text,
            message.subject,
            message.html,
            occurrence,
        )
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def _errors(response: httpx.Response) -> list[tuple[str, str | None]]:
    """SendGrid's ``{"errors": [{"message", "field", "help"}]}`` as (message, field) pairs."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return []
    if not isinstance(errors, list):
        return []
    return [
        (str(e.get("message") or "error"), str(e["field"]) if e.get("field") else None)
        for e in errors
        if isinstance(e, dict)
    ]


def _describe(error: tuple[str, str | None]) -> str:
    message, field = error
    return short(f"{message} (field {field})" if field else message)


def _refused_recipients(
    body: dict[str, Any], errors: list[tuple[str, str | None]]
) -> dict[str, str]:
    """Lower-cased addresses a 400 names as the problem, with the error about each.

    Read from the JSON actually sent, never from the helpers' order. Empty
    unless every error points at a personalization: an error about the
    sender, the subject or the content concerns the whole request.
    """
    personalizations = body.get("personalizations") or []
    refused: dict[str, str] = {}
    for error in errors:
        match = _PERSONALIZATION_FIELD.match(error[1] or "")
        if match is None or int(match.group(1)) >= len(personalizations):
            return {}
        personalization = personalizations[int(match.group(1))]
        for kind in ("to", "cc", "bcc"):
            for address in personalization.get(kind) or []:
                refused[str(address.get("email", "")).lower()] = _describe(error)
    return refused


def _transport_outcome(exc: httpx.TransportError) -> Outcome:
    text = redact(str(exc)) or type(exc).__name__
    if never_reached_provider(exc):
        return Outcome.failed(f"could not connect: {text}", code="connect", retryable=True)
    # The request may have reached SendGrid: sending again could deliver twice.
    return Outcome(
        state="unknown",
        code="no-answer",
        error=f"no complete answer from SendGrid ({type(exc).__name__}: {text}); "
        "it may or may not have the message",
    )
