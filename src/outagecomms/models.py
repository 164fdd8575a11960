"""The data outagecomms works with: an incident, a recipient, a rendered message, an outcome."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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

    @field_validator("started_at", "eta")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)

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
            if first["type"] == "extra_forbidden":
                hint = difflib.get_close_matches(str(first["loc"][-1]), cls.model_fields, n=1)
                message += f"; did you mean '{hint[0]}'?" if hint else ""
            raise IncidentError(message + "; see the incident format in the README") from None


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

    def __post_init__(self) -> None:
        for attr in ("sms_opt_in", "email_opt_in"):
            object.__setattr__(self, attr, parse_opt_in(getattr(self, attr)))
        for attr in ("email", "phone", "name", "locale"):
            value = getattr(self, attr)
            if value is not None:
                value = str(value).strip()
                object.__setattr__(self, attr, value or None)

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
