"""Email through SendGrid's v3 Mail Send API: up to 1000 recipients in one request.

The payload is built with ``sendgrid.helpers.mail`` and posted with the
shared httpx client (SendGrid's own client uses urllib, which neither
respx nor ``base_url`` would see).

Per-recipient content. SendGrid lets each personalization carry its own
``to`` but one request has one body, and the default templates greet every
recipient by name, so no two rendered emails are alike. Sending one request
per distinct body would cost 100,000 requests for 100,000 people. Instead,
each message is reduced to a *shape*: its rendered subject, text and html
with the recipient's own values replaced by tokens -

* ``message.name`` by ``[oc-name-txt]`` in the subject and text, and
  ``markupsafe.escape(message.name)`` (what autoescaping wrote) by
  ``[oc-name-html]`` in the html;
* the first name the default templates greet by (``first_name_of(message.name)``)
  likewise by ``[oc-first-txt]`` and ``[oc-first-html]``;
* ``message.recipient`` (the address) likewise by ``[oc-addr-txt]`` and
  ``[oc-addr-html]``;
* ``message.unsubscribe_url`` (the recipient's one-click link) by
  ``[oc-unsub-txt]`` and ``[oc-unsub-html]``.

Messages are grouped by (announcement, channel, shape), one request per
group, the shape as its content and, in each recipient's personalization,
``substitutions`` mapping each token used to that recipient's value. SendGrid
replaces the tokens per personalization, so every recipient receives the
content preflight rendered and checked for them, never anything else:

* Exact by construction: a shape is the rendered text cut at each
  occurrence of a value and joined again with the value's token (the longer
  value first; a shorter one is only looked for in the pieces, never inside
  a token), so putting each value back at its token rebuilds the rendered
  text. This is also checked for every message before it leaves; one that
  does not round-trip goes as rendered, without substitutions.
* Whatever way SendGrid substitutes (any order, one pass or nested passes,
  as its docs mention): substitutions are only used when the rendered parts
  (and so every value, which is taken from them) and the request-wide
  strings SendGrid also substitutes in (reply-to, custom args) contain no
  ``[oc-``. Every token starts with ``[oc-``, has no other ``[`` and ends
  with ``]`` (none is a prefix of another), so a token can only be found
  where one was put, and no value brings a new one in.
* Values under 2 characters are left in place, and a personalization whose
  substitutions would reach SendGrid's 10,000 bytes goes as rendered.
* Each request still holds at most 1000 personalizations (``batch_size``)
  and each address at most once.

A batch greeting 1000 different names is therefore one request; a template
that transforms the name (``{{ recipient.name | upper }}``) leaves nothing
to replace and costs one request per distinct body, as before. Recipients
without a name share the "there" greeting and group with each other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import markupsafe

from ..config import Config, DriverSettings, SendGridSettings
from ..models import Kind, Message, Outcome, first_name_of
from ..redact import redact, register_secret
from .base import (
    CheckResult,
    HttpChannel,
    http_failure,
    network_failure,
    short,
    unreadable_success,
)
from .mime import unsubscribe_headers

if TYPE_CHECKING:
    from sendgrid.helpers.mail import Email

MAIL_SEND_PATH = "/v3/mail/send"
SCOPES_PATH = "/v3/scopes"
SEND_SCOPE = "mail.send"
#: SendGrid's limit of personalizations (and recipients) in one request.
MAX_PERSONALIZATIONS = 1000

# "personalizations.12.to.0.email": the one recipient a 400 error is about.
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)\.(?:to|cc|bcc)\b")

#: Every token starts with this and has no other "[": see the module docstring.
TOKEN_MARKER = "[oc-"
NAME_TEXT = "[oc-name-txt]"
NAME_HTML = "[oc-name-html]"
FIRST_NAME_TEXT = "[oc-first-txt]"
FIRST_NAME_HTML = "[oc-first-html]"
ADDRESS_TEXT = "[oc-addr-txt]"
ADDRESS_HTML = "[oc-addr-html]"
UNSUBSCRIBE_TEXT = "[oc-unsub-txt]"
UNSUBSCRIBE_HTML = "[oc-unsub-html]"
#: Shorter values are left in place (a one-letter name would be replaced all over the text).
MIN_VALUE_LENGTH = 2
#: SendGrid's limit on the substitutions of one personalization (JSON bytes, kept under).
MAX_SUBSTITUTIONS_BYTES = 10_000
#: Batches of shapes ``split`` keeps for the ``send`` calls that follow it.
_SPLIT_CACHE_BATCHES = 4

_E = TypeVar("_E", bound="Email")
_GroupKey = tuple[str, str, str, str, str | None, int]


@dataclass(frozen=True, slots=True)
class Shape:
    """A message's content with the recipient's own values replaced by tokens.

    ``substitutions`` maps each token used to this recipient's value; empty when
    the message goes exactly as rendered (then subject, text and html are the
    rendered ones).
    """

    subject: str
    text: str
    html: str | None
    substitutions: dict[str, str] = field(default_factory=dict)

    @property
    def content(self) -> tuple[str, str, str | None]:
        return (self.subject, self.text, self.html)


def shape_of(message: Message, request_strings: Sequence[str] = ()) -> Shape:
    """The shape ``message`` can share with others; substituted back, it is exactly
    the rendered subject, text and html (checked here, or no substitution is used).

    ``request_strings``: request-wide values SendGrid also substitutes in (reply-to,
    custom args), which must not contain a token either.
    """
    subject = message.subject or ""
    text, html = message.text, message.html
    rendered = Shape(subject, text, html)
    unsubscribe = message.unsubscribe_url or ""
    guarded = (subject, text, html or "", message.name or "", message.recipient, unsubscribe)
    others = (message.announcement, message.incident.id, *request_strings)
    if any(TOKEN_MARKER in value for value in (*guarded, *others)):
        return rendered
    values = [
        (value, text_token, html_token)
        for value, text_token, html_token in (
            (message.recipient, ADDRESS_TEXT, ADDRESS_HTML),
            (message.name, NAME_TEXT, NAME_HTML),
            # Only when it differs from the name: then the name's own token covers it.
            (_other(first_name_of(message.name), message.name), FIRST_NAME_TEXT, FIRST_NAME_HTML),
            (unsubscribe, UNSUBSCRIBE_TEXT, UNSUBSCRIBE_HTML),
        )
        if value and len(value) >= MIN_VALUE_LENGTH
    ]
    if not values:
        return rendered
    # The longer value first: an address that contains the name (a link that contains the
    # address) stays one value.
    values.sort(key=lambda entry: len(entry[0]), reverse=True)
    plain = [(value, token) for value, token, _ in values]
    escaped = [(str(markupsafe.escape(value)), token) for value, _, token in values]
    shaped_subject = _tokenize(subject, plain)
    shaped_text = _tokenize(text, plain)
    shaped_html = None if html is None else _tokenize(html, escaped)
    substitutions: dict[str, str] = {}
    for value, token in plain:
        if token in shaped_text or token in shaped_subject:
            substitutions[token] = value
    for value, token in escaped:
        if shaped_html is not None and token in shaped_html:
            substitutions[token] = value
    if not substitutions or _too_big(substitutions):
        return rendered
    if (
        _substitute(shaped_subject, substitutions) != subject
        or _substitute(shaped_text, substitutions) != text
        or (html is not None and _substitute(shaped_html or "", substitutions) != html)
    ):
        return rendered
    return Shape(shaped_subject, shaped_text, shaped_html, substitutions)


def _other(value: str | None, than: str | None) -> str | None:
    return None if value == than else value


def _shared_content(shapes: list[Shape]) -> list[Shape]:
    """``shapes`` with equal contents made one (a batch of 1000 shapes holds one copy)."""
    first: dict[tuple[str, str, str | None], tuple[str, str, str | None]] = {}
    result = []
    for shape in shapes:
        own = shape.content
        content = first.setdefault(own, own)
        result.append(shape if content is own else Shape(*content, shape.substitutions))
    return result


def _shaped_fields(message: Message) -> tuple[str | None, ...]:
    """What a message's shape is made from."""
    return (message.subject, message.text, message.html, message.name, message.recipient)


def _tokenize(text: str, pairs: Sequence[tuple[str, str]]) -> str:
    """``text`` with each value of ``pairs`` replaced by its token, earlier pairs first;
    a later value is only looked for between the tokens of earlier ones, never in them."""
    if not pairs:
        return text
    (value, token), rest = pairs[0], pairs[1:]
    if value not in text:
        return _tokenize(text, rest)
    if not rest:
        return text.replace(value, token)
    return token.join([_tokenize(piece, rest) for piece in text.split(value)])


def _substitute(text: str, substitutions: dict[str, str]) -> str:
    """What SendGrid makes of ``text`` for one personalization."""
    for token, value in substitutions.items():
        text = text.replace(token, value)
    return text


def _too_big(substitutions: dict[str, str]) -> bool:
    """Over SendGrid's limit for one personalization, counted as the JSON sent."""
    characters = sum(len(key) + len(value) for key, value in substitutions.items())
    # No character takes more than 6 bytes of JSON ("\uXXXX"): only measure when it matters.
    if 6 * (characters + 6 * len(substitutions)) < MAX_SUBSTITUTIONS_BYTES:
        return False
    return len(json.dumps(substitutions, ensure_ascii=False).encode()) >= MAX_SUBSTITUTIONS_BYTES


class SendGridEmail(HttpChannel):
    settings: SendGridSettings  # type: ignore[assignment]

    batch_size = MAX_PERSONALIZATIONS

    def __init__(self, name: str, kind: Kind, settings: DriverSettings, config: Config) -> None:
        super().__init__(name, kind, settings, config)
        self._split_shapes: dict[int, tuple[Message, tuple[str | None, ...], Shape]] = {}

    def client_options(self) -> dict[str, Any]:
        key = self.settings.api_key
        return {"headers": {"Authorization": f"Bearer {key.get_secret_value()}"}} if key else {}

    async def open(self) -> None:
        if self.settings.api_key is not None:
            # Settings built in code (not by load_config) have not registered it yet.
            register_secret(self.settings.api_key.get_secret_value())
        await super().open()

    # --- sending -------------------------------------------------------------

    def shape(self, message: Message) -> Shape:
        """``message``'s content as a request of this channel can share it."""
        settings = self.settings
        request_strings = (self.name, settings.reply_to or "", settings.from_name or "")
        return shape_of(message, request_strings)

    def split(self, messages: Sequence[Message]) -> list[list[int]]:
        shapes = _shared_content([self.shape(m) for m in messages])
        # The announcer sends the groups next: spare ``send`` shaping them again.
        cache = self._split_shapes
        for message, shape in zip(messages, shapes, strict=True):
            cache[id(message)] = (message, _shaped_fields(message), shape)
        while len(cache) > _SPLIT_CACHE_BATCHES * self.batch_size:
            del cache[next(iter(cache))]
        return _group(messages, shapes)

    def _shapes(self, messages: Sequence[Message]) -> list[Shape]:
        """``self.shape`` of each message, taken from ``split`` when it saw the very same
        message with the very same content."""
        shapes = []
        for message in messages:
            hit = self._split_shapes.pop(id(message), None)
            if hit is not None and hit[0] is message and hit[1] == _shaped_fields(message):
                shapes.append(hit[2])
            else:
                shapes.append(self.shape(message))
        return _shared_content(shapes)

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(messages)
        shapes = self._shapes(messages)
        groups = _group(messages, shapes)
        for number, indexes in enumerate(groups):
            try:
                results = await self._send_group(
                    [messages[i] for i in indexes], [shapes[i] for i in indexes]
                )
            except httpx.TransportError as exc:
                # Earlier groups may already be sent: answer per message rather than
                # raise, which would make the caller send those again.
                for i in indexes:
                    outcomes[i] = network_failure(exc)
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
        self, messages: list[Message], shapes: list[Shape], *, second_try: bool = False
    ) -> list[Outcome]:
        """One request for messages sharing their shape; one outcome per message."""
        try:
            body = self.payload(messages, shapes)
        except Exception as exc:  # the helpers refuse content that looks like an API key
            error = redact(f"SendGrid helpers refused the message: {type(exc).__name__} {exc}")
            return [Outcome.failed(error, code="payload") for _ in messages]
        response = await self.http.post(self.base_url + MAIL_SEND_PATH, json=body)
        if response.is_success:
            # 202 with X-Message-Id; sandbox mode answers 200 and sends nothing.
            unreadable = unreadable_success("SendGrid", response)
            if unreadable is not None:
                return [unreadable for _ in messages]
            message_id = response.headers.get("x-message-id")
            return [Outcome.sent(message_id) for _ in messages]
        errors = _errors(response)
        refused = _refused_recipients(body, errors) if response.status_code == 400 else {}
        kept = [i for i, m in enumerate(messages) if m.recipient.lower() not in refused]
        others = [messages[i] for i in kept]
        if refused and others and not second_try:
            # SendGrid refuses a whole request for one bad address; the others were never
            # judged, so they go once more without it (no wait: nothing transient happened).
            try:
                again = await self._send_group(others, [shapes[i] for i in kept], second_try=True)
            except httpx.TransportError as exc:
                again = [network_failure(exc) for _ in others]
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

    def payload(
        self, messages: Sequence[Message], shapes: Sequence[Shape] | None = None
    ) -> dict[str, Any]:
        """The ``/v3/mail/send`` JSON for messages that share their shape (see the module
        docstring); ``shapes`` are ``self.shape(m)`` of each message, computed if not given."""
        from sendgrid.helpers.mail import (
            Asm,
            Category,
            CustomArg,
            From,
            GroupId,
            Header,
            Mail,
            MailSettings,
            Personalization,
            ReplyTo,
            SandBoxMode,
            Substitution,
            To,
        )

        if shapes is None:
            shapes = [self.shape(m) for m in messages]
        first, content = messages[0], shapes[0]
        if any(shape.content != content.content for shape in shapes):
            raise ValueError("the messages of one request must share their content")
        settings = self.settings
        mail = Mail(
            from_email=_address(From, settings.from_ or "", settings.from_name),
            subject=content.subject,
            plain_text_content=content.text,
            html_content=content.html or None,
        )
        for message, shape in zip(messages, shapes, strict=True):
            personalization = Personalization()
            personalization.add_to(_address(To, message.recipient, message.name))
            for token, value in shape.substitutions.items():
                personalization.add_substitution(Substitution(token, value))
            # Each recipient's own unsubscribe link (RFC 8058), so headers are per person.
            for header, value in unsubscribe_headers(message.unsubscribe_url).items():
                personalization.add_header(Header(header, value))
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


def _group(messages: Sequence[Message], shapes: Sequence[Shape]) -> list[list[int]]:
    """Indexes of the messages, grouped by what one request can carry.

    A request needs one shape (content with tokens), one announcement, and each
    address at most once (SendGrid refuses duplicates), so a repeated address goes
    to another request.
    """
    groups: dict[_GroupKey, list[int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for index, message in enumerate(messages):
        occurrence = seen.get((message.announcement, message.recipient.lower()), 0)
        seen[(message.announcement, message.recipient.lower())] = occurrence + 1
        shape = shapes[index]
        key: _GroupKey = (
            message.announcement,
            message.channel,
            shape.subject,
            shape.text,
            shape.html,
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
