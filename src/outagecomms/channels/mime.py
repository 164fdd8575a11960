"""One message as an email (MIME), shared by the SMTP driver and the sandbox outbox."""

from __future__ import annotations

import email.policy
import functools
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from ..models import Message

#: Carries the announcement key, so a reply or a bounce can be traced to its wave.
ANNOUNCEMENT_HEADER = "X-Outagecomms-Announcement"
#: RFC 8058 one-click unsubscribe: the value of ``List-Unsubscribe-Post``.
ONE_CLICK = "List-Unsubscribe=One-Click"


def unsubscribe_headers(url: str | None) -> dict[str, str]:
    """``List-Unsubscribe`` and ``List-Unsubscribe-Post`` for a recipient's link (RFC 8058:
    mailbox providers show an unsubscribe button and POST to it); none without a link."""
    if not url:
        return {}
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": ONE_CLICK}


class _UrlHeader(UnstructuredHeader):
    """A header holding ``<URL>``, written on one line as it is.

    The default policy would fold a URL longer than a line into RFC 2047 encoded words
    (``=?utf-8?q?=3Chttps...``), which no mail client reads as a link. A line up to 998
    characters is valid (RFC 5322); the value is ASCII without line breaks.
    """

    def fold(self, *, policy: Any) -> str:
        value = str(self)
        if not value.isascii() or "\r" in value or "\n" in value:
            return super().fold(policy=policy)
        return f"{self.name}: {value}{policy.linesep}"


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, keeping the class it makes for each header name.

    The stock registry builds a new class for every header of every email: about a
    third of the time it takes to build one (bench/RESULTS.md, the sandbox outbox).
    """

    @functools.lru_cache(maxsize=128)  # noqa: B019 - one registry for the process
    def __getitem__(self, name: str) -> type[BaseHeader]:
        return super().__getitem__(name)


_REGISTRY = _HeaderClasses()
_REGISTRY.map_to_type("list-unsubscribe", _UrlHeader)
POLICY = email.policy.default.clone(header_factory=_REGISTRY)


def build_email(
    message: Message,
    *,
    sender: str,
    sender_name: str | None = None,
    reply_to: str | None = None,
    id_domain: str | None = None,
) -> tuple[EmailMessage, str]:
    """The email of one message (text, and html when there is one), and its Message-ID."""
    mail = EmailMessage(policy=POLICY)
    mail["From"] = Address(display_name=sender_name or "", addr_spec=sender)
    mail["To"] = Address(display_name=message.name or "", addr_spec=message.recipient)
    mail["Subject"] = message.subject or ""
    if reply_to:
        mail["Reply-To"] = reply_to
    mail["Date"] = formatdate(usegmt=True)
    # Without a domain make_msgid calls socket.getfqdn, which can stall without DNS.
    message_id = make_msgid(domain=id_domain or sender.rpartition("@")[2] or "outagecomms.invalid")
    mail["Message-ID"] = message_id
    mail[ANNOUNCEMENT_HEADER] = message.announcement
    for header, value in unsubscribe_headers(message.unsubscribe_url).items():
        mail[header] = value
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
        # add_alternative gives the new part its own MIME-Version: it belongs to the top only.
        for part in mail.iter_parts():
            del part["MIME-Version"]
    return mail, message_id
