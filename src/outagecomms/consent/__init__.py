"""Consent: who may still be contacted, when, and proof of what providers and people said.

Pure functions, no I/O and no clock of their own (every function that needs the
time takes ``now``), so the rules can be tested exactly and used from the run,
the server and the CLI alike:

* ``tokens``: the opaque, signed per-address token in one-click unsubscribe links.
* ``replies``: the STOP / START words of an SMS reply.
* ``quiet``: quiet hours for SMS in the recipient's candidate time zones.
* ``signatures``: checking that a webhook really comes from Twilio or SendGrid.
* ``suppression``: the sources of a suppression and the stable skip reasons.
"""

from .quiet import QuietHours, candidate_zones, quiet_until
from .replies import Intent, reply_intent
from .signatures import sendgrid_signature_valid, twilio_signature_valid
from .suppression import SOURCES, address_kind, suppressed_reason
from .tokens import InvalidToken, make_token, read_token

__all__ = [
    "SOURCES",
    "Intent",
    "InvalidToken",
    "QuietHours",
    "address_kind",
    "candidate_zones",
    "make_token",
    "quiet_until",
    "read_token",
    "reply_intent",
    "sendgrid_signature_valid",
    "suppressed_reason",
    "twilio_signature_valid",
]
