"""The data outagecomms works with: an incident, a recipient, a rendered message, an outcome."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import IncidentError
from .yamlfile import load_yaml

Status = Literal["investigating", "identified", "monitoring", "resolved"]
Severity = Literal["minor", "major", "critical"]
Kind = Literal["sms", "social", "banner", "email", "team"]

#: Kinds that send one message per recipient; the others send one message per announcement.
PER_RECIPIENT_KINDS: frozenset[str] = frozenset({"sms", "email"})
#: The ledger's recipient for a broadcast (one message per announcement) channel.
BROADCAST = "-"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


#: Shown whenever a timestamp is refused, so the fix is one copy away.
TIMESTAMP_FORMS = (
    "write a date and a time, e.g. 2026-11-22T12:00:00Z, 2026-11-22 12:00 (read as UTC) "
    "or 2026-11-22 12:00+01:00"
)
# A date, then a time with at least hours and minutes, then an optional offset or Z.
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|UTC|[+-]\d{2}:?\d{2})?$"
)


def parse_timestamp(value: object) -> datetime:
    """A timestamp from an incident file, in UTC.

    Strict on purpose: YAML reads ``eta: 12:00`` as the number 720, which a lenient
    parser takes for 00:12 on 1 January 1970 and every channel would print that.
    Numbers, bare times and dates without a time are refused with the accepted forms.
    """
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, bool | int | float):
        raise PydanticCustomError(
            "timestamp_number",
            "is a number, not a date and time (YAML reads 12:00 as 720); {forms}",
            {"forms": TIMESTAMP_FORMS},
        )
    text = str(value).strip()
    match = _TIMESTAMP.match(text)
    if match is None:
        raise PydanticCustomError(
            "timestamp", "is not a date and time; {forms}", {"forms": TIMESTAMP_FORMS}
        )
    normalised = re.sub(r"\s*(UTC|[zZ])$", "+00:00", text).replace(" +", "+").replace(" -", "-")
    try:
        return _utc(datetime.fromisoformat(normalised))
    except ValueError:
        raise PydanticCustomError(
            "timestamp", "is not a valid date and time; {forms}", {"forms": TIMESTAMP_FORMS}
        ) from None


class Incident(BaseModel):
    """One incident, as written in an incident YAML file (see DESIGN §3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]+$", min_length=1, max_length=120)
    title: str = Field(min_length=1)
    status: Status = "investigating"
    severity: Severity = "major"
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    eta: datetime | None = None
    affected: list[str] = Field(default_factory=list)
    summary: str = ""
    details: str | None = None
    update: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    channels: list[str] | None = None
    vars: dict[str, Any] = Field(default_factory=dict)

    @field_validator("started_at", "eta", mode="before")
    @classmethod
    def _timestamp(cls, value: object) -> datetime | None:
        return None if value is None else parse_timestamp(value)

    @field_validator("status", "severity", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        # "Resolved" and "MAJOR" mean what they say; the enum names are lower case.
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _eta_after_start(self) -> Incident:
        # Only against a start that was written down: with the default (now), an eta in the
        # past is an old incident being replayed, not a typo.
        written = "started_at" in self.model_fields_set
        if written and self.eta is not None and self.eta < self.started_at:
            raise PydanticCustomError(
                "eta_before_start",
                "'eta' ({eta}) is before 'started_at' ({start}): a fix cannot be expected "
                "before the outage began; check the date and the time zone",
                {"eta": _iso(self.eta), "start": _iso(self.started_at)},
            )
        return self

    @field_validator("title", "summary")
    @classmethod
    def _stripped(cls, value: str) -> str:
        return value.strip()

    @property
    def key(self) -> str:
        """The announcement key: ``<id>/<status>`` or ``<id>/<status>/<update>``."""
        parts = [self.id, self.status] + ([self.update] if self.update else [])
        return "/".join(parts)

    @classmethod
    def load(cls, path: str | Path) -> Incident:
        """Load an incident file; any problem raises ``IncidentError`` naming the key and line."""
        doc = load_yaml(Path(path), IncidentError, "incident file")
        try:
            return cls.model_validate(doc.data)
        except ValidationError as exc:
            message = doc.describe(exc)
            first = exc.errors()[0]
            if first["type"] == "eta_before_start":
                message = f"{doc.where(('eta',))}: {first['msg']}"
            if first["type"] == "extra_forbidden":
                hint = difflib.get_close_matches(str(first["loc"][-1]), cls.model_fields, n=1)
                message += f"; did you mean '{hint[0]}'?" if hint else ""
            raise IncidentError(message + "; see the incident format in the README") from None


_TITLES = frozenset({"mr", "mrs", "ms", "mx", "miss", "dr", "prof", "sir", "dame"})


def first_name_of(name: str | None) -> str | None:
    """The first name in a full name, for a greeting: "Ada Lovelace" -> "Ada",
    "Lovelace, Ada" -> "Ada", "Dr. Ada Lovelace" -> "Ada"; None when there is no word
    to greet (empty, only a title, or no letters, as in "12345" or "(none)")."""
    if not name:
        return None
    text = name.split(",", 1)[1] if name.count(",") == 1 else name
    words = [w for w in text.split() if w.rstrip(".").lower() not in _TITLES]
    if not words or not any(ch.isalpha() for ch in words[0]):
        return None
    return words[0].strip("()\"'") or None


_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})


def parse_opt_in(value: object) -> bool | None:
    """An opt-in cell: true/false/yes/no/1/0 (any case); empty or missing is ``None``.

    Raises ``ValueError`` for anything else, so the row is skipped with a reason.
    """
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"opt-in value {value!r} is not one of true/false/yes/no/1/0")


@dataclass(frozen=True, slots=True)
class Recipient:
    """One person in the audience; keyword arguments are the audience CSV's columns.

    ``phone`` and ``email`` are taken as given and normalised when a channel
    addresses the recipient (E.164 for SMS, lower-case domain for email).
    ``sms_opt_in`` missing means no, ``email_opt_in`` missing means yes.
    """

    email: str | None = None
    phone: str | None = None
    name: str | None = None
    locale: str | None = None
    sms_opt_in: bool | None = None
    email_opt_in: bool | None = None
    #: IANA zone of the person, for SMS quiet hours (else guessed from the number).
    timezone: str | None = None

    def __post_init__(self) -> None:
        for attr in ("sms_opt_in", "email_opt_in"):
            object.__setattr__(self, attr, parse_opt_in(getattr(self, attr)))
        for attr in ("email", "phone", "name", "locale", "timezone"):
            value = getattr(self, attr)
            if value is not None:
                value = str(value).strip()
                object.__setattr__(self, attr, value or None)

    @property
    def first_name(self) -> str | None:
        """The name to greet someone by (``Hi {{ recipient.first_name or "there" }}``);
        None when ``name`` has none. Worked out when a template asks, not for every row."""
        return first_name_of(self.name)

    @property
    def wants_sms(self) -> bool:
        return self.sms_opt_in is True

    @property
    def wants_email(self) -> bool:
        return self.email_opt_in is not False


@dataclass(slots=True)
class Message:
    """One rendered message, ready for a channel adapter.

    ``text`` is the SMS body, the post, the team message, the banner html or
    the plain-text part of an email; ``subject`` and ``html`` are set for email.
    """

    channel: str
    kind: Kind
    recipient: str
    text: str
    incident: Incident
    subject: str | None = None
    html: str | None = None
    name: str | None = None
    #: The provider id of the post this one replies to (social threads).
    reply_to: str | None = None
    #: Email: the recipient's one-click unsubscribe link (``serve.public_url`` set).
    unsubscribe_url: str | None = None
    #: The language tag the message is written in (``fr-CA``): the template folder and
    #: the ``when`` filter's formats followed it.
    locale: str | None = None

    @property
    def announcement(self) -> str:
        return self.incident.key


@dataclass(slots=True)
class Outcome:
    """What a provider said about one message.

    ``unknown`` means the request may have reached the provider but no answer
    came back: sending it again could deliver it twice, so it is not retried.
    """

    state: Literal["sent", "failed", "unknown"]
    provider_id: str | None = None
    code: str | None = None
    error: str | None = None
    #: A later attempt may succeed (timeout, 429, 5xx).
    retryable: bool = False
    #: Seconds the provider asked us to wait before trying again.
    retry_after: float | None = None
    #: The channel cannot work at all (bad credentials, sender not allowed): stop it.
    fatal: bool = False
    #: The driver that carried (or refused) the message, e.g. ``sendgrid`` after a fallback.
    provider: str | None = None

    @classmethod
    def sent(cls, provider_id: str | None = None) -> Outcome:
        return cls(state="sent", provider_id=provider_id)

    @classmethod
    def failed(
        cls,
        error: str,
        *,
        code: str | int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        fatal: bool = False,
    ) -> Outcome:
        return cls(
            state="failed",
            code=None if code is None else str(code),
            error=error,
            retryable=retryable,
            retry_after=retry_after,
            fatal=fatal,
        )

    @property
    def error_text(self) -> str | None:
        """``code: message`` as stored in the ledger."""
        if self.state == "sent":
            return None
        return f"{self.code}: {self.error}" if self.code else self.error
