"""Is this webhook really from the provider? Each check uses the provider's own SDK.

* Twilio signs the URL it called plus the sorted form parameters with the
  account's auth token (HMAC-SHA1, ``X-Twilio-Signature``). Behind a proxy the
  server sees another URL, so the URL checked is built from ``public_url``.
* SendGrid signs timestamp + raw body with ECDSA P-256; the key to check it is
  the public key shown in SendGrid's Mail Settings.

Both answer ``False`` for anything malformed (a missing header, bad base64, a
key that is not a key): a webhook that cannot be verified is refused, never
half-trusted.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping

from twilio.request_validator import RequestValidator


def twilio_url(public_url: str, path: str, query: str = "") -> str:
    """The URL Twilio called: ``{public_url}{path}[?query]``."""
    return public_url.rstrip("/") + path + (f"?{query}" if query else "")


def twilio_signature_valid(
    auth_tokens: Iterable[str],
    url: str,
    params: Mapping[str, str],
    signature: str | None,
) -> bool:
    """True when ``signature`` is Twilio's for ``url`` and ``params`` under one of the
    auth tokens (one per Twilio channel)."""
    if not signature:
        return False
    for token in auth_tokens:
        if token and RequestValidator(token).validate(url, params, signature):
            return True
    return False


def sendgrid_signature_valid(
    public_keys: Iterable[str],
    body: bytes,
    signature: str | None,
    timestamp: str | None,
) -> bool:
    """True when ``signature`` signs ``timestamp + body`` under one of the public keys
    (base64 SubjectPublicKeyInfo, as SendGrid shows it)."""
    if not signature or not timestamp:
        return False
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    from sendgrid.helpers.eventwebhook import EventWebhook

    for key in public_keys:
        try:
            if EventWebhook(key.strip()).verify_signature(payload, signature, timestamp):
                return True
        except (binascii.Error, ValueError, TypeError, UnicodeError):
            # Bad base64 in the signature, a key that does not load, a wrong key type.
            continue
    return False
