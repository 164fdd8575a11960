"""Keeps secrets out of everything a person or a file can see.

Every secret loaded from the environment is registered here; ``redact``
replaces each occurrence in a piece of text. The ledger, log records, error
messages and the CLI's output all pass through it, so a provider error body
that echoes a key stays harmless. The rules, in one place:

* **Derived forms are the secret too**: its percent-encoded forms (either
  case of hex digits, ``+`` for spaces), and its base64 form wherever it sits
  inside a longer base64 blob (an HTTP Basic header, an SMTP ``AUTH PLAIN``
  ``\\0user\\0password`` blob, an ``AUTH LOGIN`` answer): the characters that
  encode only the secret's bytes are masked, at each of the three byte
  alignments base64 can give it.
* **A secret-bearing URL** (a Slack webhook) is a secret as a whole, and so is
  its path (with the query), also as httpx normalises the URL before logging
  it (lower-case scheme and host, ``/./`` removed, percent-encoding), and its
  last path segment (the token of a webhook).
* **Short secrets are masked too**: one under six characters would also match
  inside ordinary words, so it is masked where it stands alone (not inside a
  run of letters and digits).
* **Redact before cutting**: callers redact whole texts and shorten the result
  (``channels.base.short``), never the reverse, so no fragment of a secret
  survives a cut.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "[redacted]"
#: A secret shorter than this is masked only where it stands alone (see the module doc).
_MIN_LENGTH = 6
#: The shortest base64 run worth masking: shorter runs occur by chance in any base64 text.
_MIN_BASE64 = 8
_ALONE_BEFORE = r"(?<![A-Za-z0-9])"
_ALONE_AFTER = r"(?![A-Za-z0-9])"

_lock = threading.Lock()
_secrets: set[str] = set()
_short: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember a secret so that ``redact`` hides it, and every derived form, from now on."""
    global _pattern
    if not value:
        return
    if len(value) < _MIN_LENGTH:
        forms, short = set(), {value}
    else:
        forms, short = secret_forms(value), set()
    with _lock:
        if forms <= _secrets and short <= _short:
            return
        _secrets.update(forms)
        _short.update(short)
        # Longest first, so a secret that contains another is masked whole.
        alternatives = [re.escape(s) for s in sorted(_secrets, key=len, reverse=True)]
        if _short:
            alone = "|".join(re.escape(s) for s in sorted(_short, key=len, reverse=True))
            alternatives.append(f"{_ALONE_BEFORE}(?:{alone}){_ALONE_AFTER}")
        _pattern = re.compile("|".join(alternatives))


def secret_forms(value: str) -> set[str]:
    """The texts that reveal ``value``: itself, its encodings, and its URL parts."""
    forms = {value}
    for encoded in (quote(value, safe=""), quote(value), quote_plus(value)):
        forms |= {encoded, _lower_hex(encoded)}
    forms |= base64_cores(value.encode())
    if "://" in value:
        forms |= _url_forms(value)
    return {form for form in forms if len(form) >= _MIN_LENGTH}


def base64_cores(secret: bytes) -> set[str]:
    """The base64 text that encodes only ``secret``'s bytes, at each alignment it can take
    inside a longer blob (standard and URL-safe alphabets)."""
    cores: set[str] = set()
    for offset in range(3):
        # With ``offset`` bytes before it, the first group mixes in foreign bytes (skip
        # it); the last group may mix in the bytes after it (keep only whole groups).
        encoded = base64.b64encode(b"\0" * offset + secret).decode()
        start = 4 if offset else 0
        end = (offset + len(secret)) // 3 * 4
        core = encoded[start:end]
        if len(core) >= _MIN_BASE64:
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    # The whole blob of the secret alone, padding included.
    cores.add(base64.b64encode(secret).decode())
    return cores


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def _url_forms(value: str) -> set[str]:
    """A secret-bearing URL's secret parts, as written and as httpx normalises them."""
    import httpx

    forms: set[str] = set()
    try:
        normalised = httpx.URL(value)
    except (httpx.InvalidURL, ValueError):
        normalised = None
    written = urlsplit(value)
    paths = {written.path + (f"?{written.query}" if written.query else "")}
    if normalised is not None:
        forms.add(str(normalised))
        paths.add(normalised.raw_path.decode("ascii", "replace"))
    for path in set(paths):
        paths |= {unquote(path), path.split("?")[0]}
        last = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if len(last) >= _MIN_BASE64:
            paths.add(last)
    # A bare "/" or a short path is no secret of its own.
    return forms | {path for path in paths if len(path.strip("/")) >= _MIN_BASE64}


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
