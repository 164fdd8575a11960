"""Consent rules on their own: tokens, reply words, quiet hours, webhook signatures.

Signatures are real: Twilio's are computed with the SDK's own ``RequestValidator``,
SendGrid's with a freshly generated ECDSA P-256 key, as SendGrid signs.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from outagecomms.consent import (
    InvalidToken,
    QuietHours,
    address_kind,
    candidate_zones,
    make_token,
    quiet_until,
    read_token,
    reply_intent,
    sendgrid_signature_valid,
    suppressed_reason,
    twilio_signature_valid,
)
from outagecomms.consent.signatures import twilio_url

SECRET = "a-serve-secret-for-tests-0123456789"

# --- tokens -----------------------------------------------------------------------


def test_token_names_the_address_and_hides_it() -> None:
    token = make_token(SECRET, "Ada@Example.com")
    assert read_token(SECRET, token) == "ada@example.com"
    assert "ada" not in token.lower() and "example" not in token.lower()
    assert token.isascii() and all(c.isalnum() or c in "-_" for c in token)
    # One address, one link: a preview and the email sent show the same one.
    assert make_token(SECRET, "ada@example.com") == token
    assert make_token(SECRET, "bob@example.com") != token


def test_token_from_another_secret_is_refused() -> None:
    token = make_token("another-secret-entirely-000", "ada@example.com")
    with pytest.raises(InvalidToken):
        read_token(SECRET, token)


def test_every_one_character_change_is_refused() -> None:
    token = make_token(SECRET, "ada@example.com")
    alphabet = "AQgw-_"  # differ in high and low bits, so the last character is covered too
    for i in range(len(token)):
        for replacement in alphabet:
            if replacement == token[i]:
                continue
            altered = token[:i] + replacement + token[i + 1 :]
            with pytest.raises(InvalidToken):
                read_token(SECRET, altered)


@pytest.mark.parametrize("bad", ["", "x", "%%%", "AAAA", "a" * 600, "é" * 10])
def test_garbage_is_refused(bad: str) -> None:
    with pytest.raises(InvalidToken):
        read_token(SECRET, bad)


def test_cannot_swap_in_another_address() -> None:
    ada, bob = make_token(SECRET, "ada@example.com"), make_token(SECRET, "bob@example.com")
    # Splicing the sealed part of one token onto the nonce of another fails.
    spliced = ada[:17] + bob[17:]
    with pytest.raises(InvalidToken):
        read_token(SECRET, spliced)


def test_invalid_token_says_nothing_about_the_token() -> None:
    token = make_token(SECRET, "ada@example.com")
    with pytest.raises(InvalidToken) as caught:
        read_token(SECRET, token[:-2])
    assert token[:10] not in str(caught.value)


# --- replies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        *("STOP", "stop", "  Stop \n", "STOPALL", "unsubscribe", "Cancel"),
        *("END", "quit", "REVOKE", "optout"),
    ],
)
def test_stop_words(body: str) -> None:
    assert reply_intent(body) == "stop"


@pytest.mark.parametrize("body", ["START", " unstop", "yes", "Yes "])
def test_start_words(body: str) -> None:
    assert reply_intent(body) == "start"


@pytest.mark.parametrize("body", ["stop it please", "HELP", "", None, "STOP!", "no", "OPT OUT"])
def test_other_replies_change_nothing(body: str | None) -> None:
    assert reply_intent(body) is None


def test_opt_out_type_wins_over_the_body() -> None:
    assert reply_intent("thanks", "STOP") == "stop"
    assert reply_intent("STOP", "START") == "start"
    assert reply_intent("STOP", "HELP") == "stop"


# --- quiet hours ------------------------------------------------------------------


def test_window_parsing() -> None:
    window = QuietHours.parse("21:00-08:00")
    assert (window.start, window.end) == (time(21), time(8))
    assert str(QuietHours.parse(" 9:30 - 17:05 ")) == "09:30-17:05"


@pytest.mark.parametrize("text", ["", "21-08", "21:00", "25:00-08:00", "08:00-08:00", "a-b"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(ValueError):
        QuietHours.parse(text)


NIGHT = QuietHours.parse("21:00-08:00")
PARIS = ZoneInfo("Europe/Paris")


def test_inside_the_window_defers_until_its_end_in_local_time() -> None:
    now = datetime(2026, 11, 29, 22, 30, tzinfo=PARIS)
    until = quiet_until(NIGHT, [PARIS], now)
    assert until == datetime(2026, 11, 30, 8, 0, tzinfo=PARIS)
    assert until is not None and until.isoformat() == "2026-11-30T08:00:00+01:00"
    early = datetime(2026, 11, 30, 7, 59, tzinfo=PARIS)
    assert quiet_until(NIGHT, [PARIS], early) == datetime(2026, 11, 30, 8, 0, tzinfo=PARIS)


def test_outside_the_window_is_not_quiet() -> None:
    for hour, minute in [(8, 0), (12, 0), (20, 59)]:
        now = datetime(2026, 11, 29, hour, minute, tzinfo=PARIS)
        assert quiet_until(NIGHT, [PARIS], now) is None


def test_any_candidate_zone_in_the_window_defers() -> None:
    # 17:00 in New York is 22:00 in London: quiet for a number that may be in either.
    new_york, london = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")
    now = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
    assert quiet_until(NIGHT, [new_york], now) is None
    until = quiet_until(NIGHT, [new_york, london], now)
    # London's night ends at 08:00 GMT, but by then it is 03:00 in New York: 08:00 there.
    assert until == datetime(2026, 11, 30, 8, 0, tzinfo=new_york)
    assert until is not None and until.isoformat() == "2026-11-30T08:00:00-05:00"


def test_window_within_one_day() -> None:
    lunch = QuietHours.parse("12:00-14:00")
    now = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
    assert quiet_until(lunch, [UTC], now) == datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
    assert quiet_until(lunch, [UTC], now.replace(hour=14)) is None


def test_a_clock_change_inside_the_window() -> None:
    # Night of 28-29 March 2026 in Paris: clocks go from 02:00 to 03:00.
    now = datetime(2026, 3, 28, 23, 0, tzinfo=PARIS)
    until = quiet_until(NIGHT, [PARIS], now)
    assert until is not None and until.isoformat() == "2026-03-29T08:00:00+02:00"
    # Eight real hours, though the wall clock moves nine.
    assert until.timestamp() - now.timestamp() == timedelta(hours=8).total_seconds()


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        quiet_until(NIGHT, [UTC], datetime(2026, 1, 1))


def test_candidate_zones() -> None:
    assert candidate_zones("+33612345678", "America/Chicago") == (ZoneInfo("America/Chicago"),)
    assert candidate_zones("+33612345678") == (ZoneInfo("Europe/Paris"),)
    toll_free = candidate_zones("+18005550100")
    assert len(toll_free) > 10 and ZoneInfo("America/New_York") in toll_free
    # An unknown column value falls back to the number; nothing known falls back to the default.
    assert candidate_zones("+33612345678", "Mars/Olympus") == (ZoneInfo("Europe/Paris"),)
    assert candidate_zones("+999", None, "Asia/Tokyo") == (ZoneInfo("Asia/Tokyo"),)


def test_toll_free_number_is_quiet_while_any_us_zone_sleeps() -> None:
    zones = candidate_zones("+18005550100")
    # 14:00 UTC is 09:00 in New York but 04:00 in Honolulu.
    now = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
    until = quiet_until(NIGHT, zones, now)
    assert until is not None and until > now
    assert all(not NIGHT.contains(until.astimezone(zone).time()) for zone in zones)


# --- Twilio signatures ------------------------------------------------------------


def test_twilio_documented_test_vector() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature_valid(["12345"], url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio_signature_valid(["12346"], url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_twilio_signature_of_the_public_url() -> None:
    token = "f" * 32
    url = twilio_url("https://status.shop.example/", "/hooks/twilio/status")
    assert url == "https://status.shop.example/hooks/twilio/status"
    params = {"MessageSid": "SM123", "MessageStatus": "delivered"}
    signature = RequestValidator(token).compute_signature(url, params)
    assert twilio_signature_valid(["other-token-xyz", token], url, params, signature)
    assert not twilio_signature_valid(
        [token], url, {**params, "MessageStatus": "failed"}, signature
    )
    assert not twilio_signature_valid([token], url + "?x=1", params, signature)
    assert not twilio_signature_valid([token], url, params, None)
    assert not twilio_signature_valid([token], url, params, "")
    assert not twilio_signature_valid([], url, params, signature)


def test_twilio_url_keeps_the_query() -> None:
    assert twilio_url("https://a.example", "/hooks/twilio/inbound", "k=v") == (
        "https://a.example/hooks/twilio/inbound?k=v"
    )


# --- SendGrid signatures ----------------------------------------------------------


def _key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode()


def _sign(private: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    signature = private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def test_sendgrid_signature() -> None:
    private, public = _key_pair()
    body = b'[{"email":"ada@example.com","event":"delivered","sg_event_id":"e1"}]'
    signature = _sign(private, "1700000000", body)
    assert sendgrid_signature_valid([public], body, signature, "1700000000")
    assert not sendgrid_signature_valid([public], body + b" ", signature, "1700000000")
    assert not sendgrid_signature_valid([public], body, signature, "1700000001")
    assert not sendgrid_signature_valid([public], body, None, "1700000000")
    assert not sendgrid_signature_valid([public], body, signature, None)
    assert not sendgrid_signature_valid([], body, signature, "1700000000")


def test_sendgrid_wrong_key_and_garbage() -> None:
    private, _ = _key_pair()
    _, other = _key_pair()
    body = b"[]"
    signature = _sign(private, "1", body)
    assert not sendgrid_signature_valid([other], body, signature, "1")
    assert not sendgrid_signature_valid(["not base64 !!"], body, signature, "1")
    assert not sendgrid_signature_valid([other], body, "***not-base64***", "1")
    assert not sendgrid_signature_valid([other], body, "QUJD", "1")
    assert not sendgrid_signature_valid([other], b"\xff\xfe", signature, "1")


def test_sendgrid_any_of_several_keys() -> None:
    private, public = _key_pair()
    _, other = _key_pair()
    signature = _sign(private, "5", b"[]")
    assert sendgrid_signature_valid([other, public], b"[]", signature, "5")


# --- vocabulary -------------------------------------------------------------------


def test_vocabulary() -> None:
    assert suppressed_reason("one-click") == "suppressed (one-click)"
    assert address_kind("ada@example.com") == "email"
    assert address_kind("+14155550100") == "sms"
