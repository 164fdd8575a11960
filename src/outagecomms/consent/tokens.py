"""The token of a one-click unsubscribe link: opaque, and impossible to forge or alter.

A token names one email address. It is the address sealed with AES-256-GCM
under a key derived (HKDF-SHA256, an HMAC construction) from the serve secret,
with a nonce that is an HMAC of the address (a synthetic IV: the same address
always gets the same token, so a preview, the sent email and a second email
carry one link, and two addresses never share a nonce):

* opaque: the link shows nothing of the address to a link scanner or a log;
* signed: the GCM tag authenticates it, so without the secret nobody can make
  a token for another address, and a token altered by even one character is
  refused (the text is also checked to be the canonical encoding of its bytes,
  since base64 leaves a few bits of the last character unused).

Format: base64url (no padding) of ``version (1 byte) | nonce (12) | sealed address``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
_NONCE_BYTES = 12
_INFO = b"outagecomms one-click unsubscribe token v1"
_NONCE_INFO = b"outagecomms one-click unsubscribe nonce v1"
#: The longest token worth trying to open (an address is at most 254 characters).
MAX_TOKEN_LENGTH = 512


class InvalidToken(ValueError):
    """The token was not made with this secret, or was altered. Says nothing more."""

    def __init__(self) -> None:
        super().__init__("this unsubscribe link is not valid")


@functools.lru_cache(maxsize=8)
def _key(secret: str | bytes, info: bytes = _INFO) -> bytes:
    """A key derived from the secret (cached: a run makes a token per email)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    if not raw:
        raise ValueError("the serve secret is empty")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)


def make_token(secret: str | bytes, address: str) -> str:
    """The token for ``address`` (lower-cased, as the suppression list compares it)."""
    plain = address.strip().lower().encode()
    nonce = hmac.digest(_key(secret, _NONCE_INFO), plain, hashlib.sha256)[:_NONCE_BYTES]
    sealed = AESGCM(_key(secret)).encrypt(nonce, plain, _VERSION)
    return base64.urlsafe_b64encode(_VERSION + nonce + sealed).rstrip(b"=").decode()


def read_token(secret: str | bytes, token: str) -> str:
    """The address ``token`` names; ``InvalidToken`` when it is not one of ours, intact."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken from None
    canonical = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    if canonical != token or len(data) < 1 + _NONCE_BYTES + 16 or data[:1] != _VERSION:
        raise InvalidToken
    nonce, sealed = data[1 : 1 + _NONCE_BYTES], data[1 + _NONCE_BYTES :]
    try:
        address = AESGCM(_key(secret)).decrypt(nonce, sealed, _VERSION)
    except InvalidTag:
        raise InvalidToken from None
    return address.decode()
