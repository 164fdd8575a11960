"""The vocabulary of the suppression list: where an opt-out came from, and why a row
was skipped. These strings are part of the contract (DESIGN §13, §18)."""

from __future__ import annotations

from typing import Literal

# Stable skip reasons (DESIGN §18), written to a skipped row's ``error``: the audience's.
from ..audience import INVALID_EMAIL, INVALID_PHONE, NO_SMS_OPT_IN, NOT_MOBILE, OPTED_OUT

AddressKind = Literal["sms", "email"]

#: Every source a suppression may have, and what it means for a person reading ``why``.
SOURCES: dict[str, str] = {
    "manual": "added by hand with 'outagecomms suppress add'",
    "import": "imported with 'outagecomms suppress import'",
    "sms-stop": "the person replied STOP (or another opt-out word) to an SMS",
    "twilio-21610": "Twilio refused a send: the number had replied STOP (error 21610)",
    "one-click": "the person used the unsubscribe link or button of an email",
    "sendgrid-unsubscribe": "SendGrid reported an unsubscribe",
    "sendgrid-group_unsubscribe": "SendGrid reported an unsubscribe from the email's group",
    "sendgrid-spamreport": "the person reported an email as spam",
}

#: Skip reasons that leave a ``skipped`` row in the ledger (with ``suppressed (...)``);
#: the others (no address of that kind, a duplicate) are only counted in the summary.
RECORDED_REASONS = frozenset({NO_SMS_OPT_IN, OPTED_OUT, INVALID_PHONE, INVALID_EMAIL, NOT_MOBILE})


def is_recorded(reason: str) -> bool:
    """True when a skip with this reason has its own ``skipped`` ledger row."""
    return reason in RECORDED_REASONS or reason.startswith("suppressed (")


def suppressed_reason(source: str) -> str:
    """The skip reason of a suppressed address: ``suppressed (<source>)``."""
    return f"suppressed ({source})"


def quiet_reason(until_iso: str) -> str:
    """The reason a deferred (still ``pending``) row carries."""
    return f"quiet hours until {until_iso}"


def address_kind(address: str) -> AddressKind:
    """``email`` when the address has an ``@``, else ``sms`` (a phone number)."""
    return "email" if "@" in address else "sms"
