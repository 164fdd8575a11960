"""Provider webhooks (DESIGN §13): Twilio status callbacks and replies, SendGrid events.

Every route first proves the request comes from the provider (``consent.signatures``);
anything unproven gets 403 and changes nothing. A proven request always gets 200,
also for events that change nothing (an unknown message, a status we do not track):
providers retry anything else for a day. What a request may change:

* Twilio status: ``delivered`` → the message's row ``delivered``; ``undelivered`` or
  ``failed`` → ``undelivered`` with the error code (the store keeps a delivered row
  delivered, so late and repeated callbacks are harmless).
* Twilio reply: STOP words suppress the number (``sms-stop``); START words lift a
  suppression that came from a STOP (``sms-stop`` or ``twilio-21610``), never one
  added by hand or by import. The answer is an empty TwiML ``<Response/>``: Twilio
  sends its own confirmation text.
* SendGrid: ``delivered``, ``bounce``, ``dropped`` update the row named by the
  event's ``custom_args`` and ``email``; ``unsubscribe``, ``group_unsubscribe`` and
  ``spamreport`` suppress the address. An ``sg_event_id`` seen before is skipped.

Logs say what was refused and why, never a signature, a token or a key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ..config import Config, SendGridSettings, TwilioSettings
from ..consent.replies import reply_intent
from ..consent.signatures import sendgrid_signature_valid, twilio_signature_valid, twilio_url
from ..store import Store, now
from .context import CONTEXT
from .writer import WRITER

log = logging.getLogger(__name__)

TWIML_EMPTY = "<Response/>"
SIGNATURE_HEADER = "X-Twilio-Signature"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
#: Suppressions a START reply lifts: those the person's own STOP caused.
LIFTED_BY_START = frozenset({"sms-stop", "twilio-21610"})
#: SendGrid events that suppress the address, each as its own source.
SENDGRID_OPT_OUTS = frozenset({"unsubscribe", "group_unsubscribe", "spamreport"})
#: What Twilio's later error codes mean, for a person reading ``why``.
TWILIO_ERRORS = {
    "30003": "unreachable handset",
    "30004": "message blocked",
    "30005": "unknown handset",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier",
    "30008": "unknown error",
}


def _forbidden(what: str, why: str) -> web.Response:
    log.warning("refused %s: %s", what, why)
    return web.Response(status=403, text="Forbidden: the request is not signed by the provider.\n")


def _drivers(config: Config, cls: type) -> list[Any]:
    """Every channel's settings (fallbacks included) of one driver class."""
    found = []
    for settings in config.channels.values():
        current = settings
        while current is not None:
            if isinstance(current, cls):
                found.append(current)
            current = current.fallback
    return found


def twilio_tokens(config: Config) -> list[str]:
    """The auth tokens Twilio signs webhooks with: one per Twilio channel that has one."""
    settings: list[TwilioSettings] = _drivers(config, TwilioSettings)
    return [s.auth_token.get_secret_value() for s in settings if s.auth_token is not None]


def sendgrid_keys(config: Config) -> list[str]:
    """The Event Webhook verification keys of the SendGrid channels and fallbacks."""
    settings: list[SendGridSettings] = _drivers(config, SendGridSettings)
    return [s.webhook_public_key for s in settings if s.webhook_public_key]


async def _twilio_form(request: web.Request, what: str) -> Mapping[str, str] | web.Response:
    """The verified form of a Twilio webhook, or the 403 to answer."""
    config = request.app[CONTEXT].config
    public_url = config.serve.public_url
    form = await request.post()
    if not public_url:
        return _forbidden(what, "serve.public_url is not set: Twilio's signature cannot be checked")
    tokens = twilio_tokens(config)
    if not tokens:
        return _forbidden(what, "no Twilio channel has an auth_token to check the signature with")
    url = twilio_url(public_url, request.rel_url.raw_path, request.rel_url.raw_query_string)
    fields = {key: str(value) for key, value in form.items()}
    if not twilio_signature_valid(tokens, url, form, request.headers.get(SIGNATURE_HEADER)):
        missing = SIGNATURE_HEADER not in request.headers
        return _forbidden(what, f"{'no' if missing else 'a wrong'} {SIGNATURE_HEADER} for {url}")
    return fields


def twilio_receipt(fields: Mapping[str, str]) -> tuple[str, str | None] | None:
    """``(state, error)`` a status callback means for its row, or None (changes nothing)."""
    status = fields.get("MessageStatus", "").strip().lower()
    if status == "delivered":
        return "delivered", None
    if status in ("undelivered", "failed"):
        code = fields.get("ErrorCode", "").strip()
        meaning = TWILIO_ERRORS.get(code)
        error = f"{code}: {meaning}" if code and meaning else code or None
        return "undelivered", f"{error} ({status})" if error else status
    return None


async def twilio_status(request: web.Request) -> web.Response:
    fields = await _twilio_form(request, "a Twilio status callback")
    if isinstance(fields, web.Response):
        return fields
    sid, receipt = fields.get("MessageSid", ""), twilio_receipt(fields)
    if sid and receipt is not None:
        state, error = receipt
        status = fields.get("MessageStatus", "").lower()
        found = await request.app[WRITER].run(
            lambda store: store.apply_receipt(
                provider_id=sid, state=state, error=error, event=f"twilio {status}", at=now()
            )
        )
        if not found:
            log.info("Twilio status %s for %s: no such message in the ledger, ignored", state, sid)
    return web.Response(text="")


async def twilio_inbound(request: web.Request) -> web.Response:
    fields = await _twilio_form(request, "an inbound SMS")
    if isinstance(fields, web.Response):
        return fields
    number = fields.get("From", "").strip()
    intent = reply_intent(fields.get("Body"), fields.get("OptOutType"))
    if number and intent is not None:
        word = (fields.get("OptOutType") or fields.get("Body") or "").strip().upper()[:20]
        await request.app[WRITER].run(lambda store: _apply_reply(store, number, intent, word))
    return web.Response(text=TWIML_EMPTY, content_type="text/xml")


def _apply_reply(store: Store, number: str, intent: str, word: str) -> None:
    if intent == "stop":
        store.add_suppressions([(number, "sms", "sms-stop", f"replied {word}")])
        return
    current = store.suppressed([number]).get(number)
    if current is not None and current.source in LIFTED_BY_START:
        store.remove_suppressions([number])


async def sendgrid_events(request: web.Request) -> web.Response:
    config = request.app[CONTEXT].config
    body = await request.read()
    keys = sendgrid_keys(config)
    what = "a SendGrid event batch"
    if not keys:
        return _forbidden(what, "no SendGrid channel has a webhook_public_key to check it with")
    signature = request.headers.get(SENDGRID_SIGNATURE)
    timestamp = request.headers.get(SENDGRID_TIMESTAMP)
    if not sendgrid_signature_valid(keys, body, signature, timestamp):
        missing = not signature or not timestamp
        return _forbidden(what, "no signature headers" if missing else "a wrong signature")
    try:
        events = json.loads(body)
    except ValueError:
        events = None
    if not isinstance(events, list):
        return web.Response(status=400, text="Expected a JSON array of events.\n")
    usable = [e for e in events if isinstance(e, dict)]
    await request.app[WRITER].run(lambda store: apply_sendgrid_events(store, usable))
    return web.Response(text="")


def apply_sendgrid_events(store: Store, events: list[dict[str, Any]]) -> int:
    """Apply a verified batch; how many events changed or recorded something."""
    applied = 0
    for event in events:
        name = str(event.get("event") or "")
        email = str(event.get("email") or "").strip().lower()
        event_id = event.get("sg_event_id")
        if not email or (event_id and not store.first_time_event(str(event_id))):
            continue
        if name in SENDGRID_OPT_OUTS:
            reason = f"SendGrid {name.replace('_', ' ')}"
            applied += store.add_suppressions([(email, "email", f"sendgrid-{name}", reason)])
            continue
        receipt = _sendgrid_receipt(name, event)
        announcement, channel = event.get("announcement"), event.get("channel")
        if receipt is None or not isinstance(announcement, str) or not isinstance(channel, str):
            continue
        state, error = receipt
        found = store.apply_receipt(
            row=(announcement, channel, email),
            state=state,
            error=error,
            event=f"sendgrid {name}",
            at=_event_time(event.get("timestamp")),
        )
        applied += int(found)
    return applied


def _sendgrid_receipt(name: str, event: Mapping[str, Any]) -> tuple[str, str | None] | None:
    if name == "delivered":
        return "delivered", None
    if name in ("bounce", "dropped"):
        why = event.get("reason") or event.get("status") or event.get("type") or "no reason given"
        return "undelivered", f"{name}: {str(why)[:300]}"
    return None


def _event_time(value: object) -> str:
    """A SendGrid event's Unix ``timestamp`` as the store's ISO time (now when absent)."""
    try:
        moment = datetime.fromtimestamp(float(value), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return now()
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
