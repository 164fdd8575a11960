"""A shop configured for receipts and opt-outs, a ledger with sent rows, and real signatures.

Twilio signatures are computed with the SDK's own ``RequestValidator``; SendGrid's with a
freshly generated ECDSA P-256 key, as SendGrid signs (timestamp + raw body, SHA-256)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from outagecomms.config import Config, load_config
from outagecomms.models import Outcome
from outagecomms.store import open_store

PUBLIC_URL = "https://status.shop.example"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "twilio-auth-token-for-tests-0001"
KEY = "mail-down/investigating"
ADA_PHONE, BOB_PHONE = "+14155550100", "+14155550101"
ADA_EMAIL, BOB_EMAIL = "ada@example.com", "bob@example.com"


@dataclass
class SendGridKey:
    private: ec.EllipticCurvePrivateKey
    public: str  # base64 SubjectPublicKeyInfo, as SendGrid's settings page shows it

    @classmethod
    def generate(cls) -> SendGridKey:
        private = ec.generate_private_key(ec.SECP256R1())
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(private, base64.b64encode(der).decode())

    def headers(self, body: bytes, timestamp: str = "1764400000") -> dict[str, str]:
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            "Content-Type": "application/json",
        }


def twilio_signature(path: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(PUBLIC_URL + path, params)


def make_shop(
    root: Path,
    monkeypatch: Any,
    *,
    public_url: str | None = PUBLIC_URL,
    sendgrid_key: str | None = None,
) -> Config:
    serve = f"serve: {{public_url: {public_url}}}\n" if public_url else ""
    key = f", webhook_public_key: {json.dumps(sendgrid_key)}" if sendgrid_key else ""
    (root / "channels.yaml").write_text(
        "organization: {name: Acme Shop}\n" + serve + "ledger: sqlite:///.outagecomms/ledger.db\n"
        "channels:\n"
        "  sms: {driver: twilio, from: '+15005550006'}\n"
        f"  email: {{driver: sendgrid, from: outage@shop.example{key}}}\n"
    )
    monkeypatch.setenv("OUTAGECOMMS_CHANNELS__SMS__ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("OUTAGECOMMS_CHANNELS__SMS__AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("OUTAGECOMMS_CHANNELS__EMAIL__API_KEY", "SG.test-key-000000")
    return load_config(root / "channels.yaml")


def seed_sent(config: Config) -> None:
    """Two SMS and two emails sent for ``KEY`` (SIDs SM-ada / SM-bob, message id X1)."""
    with open_store(config.ledger, mode="live", base_dir=config.root) as store:
        for channel, rows in (
            ("sms", [(ADA_PHONE, "SM-ada"), (BOB_PHONE, "SM-bob")]),
            ("email", [(ADA_EMAIL, "X1"), (BOB_EMAIL, "X1")]),
        ):
            recipients = [r for r, _ in rows]
            store.add_pending(KEY, "mail-down", channel, recipients)
            assert store.claim(KEY, channel, recipients) == recipients
            store.finish(KEY, channel, [(r, Outcome.sent(pid)) for r, pid in rows])


def states(config: Config, channel: str) -> dict[str, tuple[str, str | None]]:
    with open_store(config.ledger, mode="live", base_dir=config.root) as store:
        rows = store.fetch(
            "SELECT recipient, state, error FROM deliveries WHERE channel=?", (channel,)
        )
    return {r: (s, e) for r, s, e in rows}


def suppressions(config: Config) -> dict[str, tuple[str, str]]:
    with open_store(config.ledger, mode="live", base_dir=config.root) as store:
        return {s.address: (s.kind, s.source) for s in store.suppressions()}
