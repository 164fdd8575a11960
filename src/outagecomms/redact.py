"""Keeps secrets out of everything a person or a file can see.

Every secret loaded from the environment is registered here; ``redact``
replaces each occurrence (and its URL-encoded form) in a piece of text.
The ledger, log records, error messages and the CLI's output all pass
through it, so a provider error body that echoes a key stays harmless.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from urllib.parse import quote

MASK = "[redacted]"
#: Shorter values would mask ordinary words; credentials are never this short.
_MIN_LENGTH = 6

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember a secret so that ``redact`` hides it from now on."""
    global _pattern
    if not value or len(value) < _MIN_LENGTH:
        return
    forms = {value, quote(value, safe=""), base64.b64encode(value.encode()).decode()}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        # Longest first, so a secret that contains another is masked whole.
        alternatives = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the fully formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True
