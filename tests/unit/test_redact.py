"""Secrets never reach output in any form: cut, encoded, inside a blob, normalised, or short."""

from __future__ import annotations

import base64
import logging
import re
import secrets
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from outagecomms.channels.base import short
from outagecomms.config import load_config
from outagecomms.redact import MASK, RedactingFilter, redact, register_secret


def fresh(length: int = 32) -> str:
    """A new random secret (the registry is process-wide, so every test uses its own)."""
    return secrets.token_hex(length // 2)


def test_a_secret_crossing_the_cut_of_a_long_error_body_leaks_nothing() -> None:
    token = fresh()
    register_secret(token)
    for start in range(270, 300):
        body = "x" * start + token + " and more"
        shown = short(body, 300)
        assert len(shown) <= 300
        # No run of 6 or more characters of the token survives.
        assert not any(token[i : i + 6] in shown for i in range(len(token) - 5)), start


def test_a_webhook_url_is_masked_as_written_as_a_path_and_as_httpx_normalises_it() -> None:
    token = "Zq" + fresh(22)
    written = f"HTTPS://HOOKS.Slack.COM/services/./T0AB12CD/B0EF34GH/{token}"
    register_secret(written)
    normalised = str(httpx.URL(written))
    assert normalised != written
    for text in (
        written,
        normalised,
        f"POST {normalised} 404",
        f"path /services/T0AB12CD/B0EF34GH/{token} not found",
        f"token {token} revoked",
    ):
        assert token not in redact(text), text
        assert "B0EF34GH/" not in redact(text), text


def test_percent_encoded_forms_in_either_case_are_masked() -> None:
    password = "p@ss/w0rd+" + fresh(8)
    register_secret(password)
    upper = quote(password, safe="")
    lower = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), upper)
    assert upper != lower
    for text in (upper, lower, quote(password)):
        assert redact(f"url?pw={text}") == f"url?pw={MASK}", text


@pytest.mark.parametrize("user", ["a", "ops", "outage@shop.example", "mailer-2026"])
def test_smtp_auth_plain_and_login_blobs_never_show_the_password(user: str) -> None:
    password = fresh(16)
    register_secret(password)
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    login = base64.b64encode(password.encode()).decode()
    for blob in (plain, login):
        shown = redact(f"535 5.7.8 authentication failed: {blob}")
        assert blob not in shown
        assert MASK in shown
        # What is left of the blob cannot be decoded back into the password.
        rest = shown.rsplit(" ", 1)[-1].replace(MASK, "")
        assert password not in base64.b64decode(rest + "===", validate=False).decode("latin-1")


def test_a_basic_authorization_header_never_shows_the_token() -> None:
    sid, token = "AC" + fresh(32), fresh(32)
    register_secret(token)
    header = base64.b64encode(f"{sid}:{token}".encode()).decode()
    assert header not in redact(f"Authorization: Basic {header}")


def test_a_short_secret_is_masked_where_it_stands_alone() -> None:
    register_secret("k3Y9")
    assert redact("password k3Y9 refused") == f"password {MASK} refused"
    assert redact("user=ops:k3Y9@host") == f"user=ops:{MASK}@host"
    # Inside a longer word it is not the secret.
    assert redact("ak3Y9b") == "ak3Y9b"


def test_log_records_are_redacted_whole() -> None:
    token = fresh()
    register_secret(token)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent with %s", (token,), None)
    RedactingFilter().filter(record)
    assert token not in record.getMessage()


def test_the_whole_smtp_auth_plain_blob_of_a_loaded_config_is_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = fresh(12)
    (tmp_path / "channels.yaml").write_text(
        "channels:\n  email: {driver: smtp, host: mail.test, from: a@shop.example,"
        " username: mailer}\n"
    )
    monkeypatch.setenv("OUTAGECOMMS_CHANNELS__EMAIL__PASSWORD", password)
    load_config(tmp_path / "channels.yaml")
    blob = base64.b64encode(f"\0mailer\0{password}".encode()).decode()
    assert redact(f"AUTH PLAIN {blob}") == f"AUTH PLAIN {MASK}"
