"""The exception tree of outagecomms.

Every error the package raises on purpose derives from ``OutageCommsError``::

    OutageCommsError
    ├── InputError             bad input or configuration; raised before anything is sent (exit 2)
    │   ├── ConfigError        channels.yaml, the environment, a missing credential
    │   ├── IncidentError      the incident file
    │   ├── AudienceError      the audience file (a missing file, no usable column)
    │   ├── TemplateError      a missing template, a syntax error, an undefined variable
    │   ├── LimitError         a rendered message over a channel's limit (segments, 280, ...)
    │   └── UnknownIncidentError  an incident id the ledger holds nothing of (report, campaigns)
    ├── DeliveryError          a provider refused or failed a delivery; carries ``channel``,
    │                          ``code`` and ``retryable``
    ├── StoreError             the ledger stopped answering during a run (exit 1); a ledger
    │                          that cannot be opened at all is a ``ConfigError``
    └── CampaignsError         SendGrid Marketing Campaigns unreachable or refusing (exit 1)

Messages are one line, say which file/key/line is wrong and what to do next,
and never contain a secret (they pass through ``outagecomms.redact``).
"""

from __future__ import annotations


class OutageCommsError(Exception):
    """Root of every error raised by outagecomms."""

    exit_code: int = 1


class InputError(OutageCommsError):
    """Bad input or configuration, detected before anything was sent."""

    exit_code = 2


class ConfigError(InputError):
    """channels.yaml, the environment or a credential is wrong or missing."""


class IncidentError(InputError):
    """The incident file cannot be read or does not follow the incident format."""


class AudienceError(InputError):
    """The audience file cannot be read or has no usable column."""


class TemplateError(InputError):
    """A template is missing, does not parse, or uses an undefined variable."""


class LimitError(InputError):
    """A rendered message does not fit its channel (SMS segments, post length, subject)."""


class DeliveryError(OutageCommsError):
    """A provider refused or failed one delivery.

    ``retryable`` is true for transient failures (timeouts, 429, 5xx) that a
    later attempt may fix, false for permanent ones (invalid number, opted out).
    """

    def __init__(
        self, message: str, *, channel: str, code: str | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.channel = channel
        self.code = code
        self.retryable = retryable


class StoreError(OutageCommsError):
    """The ledger failed while a run was using it (a lost database, a full disk).

    The run stops taking new messages and records nothing it does not know; a
    re-run resumes (rows caught in flight become ``unknown`` after their lease).
    """

    exit_code = 1


class UnknownIncidentError(InputError):
    """The ledger holds no announcement and no delivery of this incident id."""


class CampaignsError(OutageCommsError):
    """SendGrid could not be reached or refused a campaigns request; what was already
    paused or resumed is recorded (exit 1)."""
