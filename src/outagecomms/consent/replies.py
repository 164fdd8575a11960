"""What an SMS reply asks for: stop messages, start them again, or nothing.

The words are the ones carriers and Twilio treat as opt-out and opt-in
keywords; the whole (trimmed) body must be the word, in any case, so "stop
by the shop" is not an opt-out. Twilio's Advanced Opt-Out sends
``OptOutType`` (STOP, START, HELP) and that wins when present.
"""

from __future__ import annotations

from typing import Literal

Intent = Literal["stop", "start"]

STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
START_WORDS = frozenset({"START", "UNSTOP", "YES"})


def reply_intent(body: str | None, opt_out_type: str | None = None) -> Intent | None:
    """``"stop"``, ``"start"`` or ``None`` for a reply's ``Body`` and ``OptOutType``."""
    kind = (opt_out_type or "").strip().upper()
    if kind == "STOP":
        return "stop"
    if kind == "START":
        return "start"
    word = (body or "").strip().upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return None
