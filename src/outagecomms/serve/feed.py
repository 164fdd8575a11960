"""``/feed.atom``: one Atom 1.0 entry per announcement, newest first (RFC 4287).

Built with feedgen (the XML is made and escaped by lxml, never by string
concatenation). Entry ids are name-based UUIDs of the organization, the mode
and the announcement key: the same announcement keeps its id across restarts
and hosts, so feed readers never show an update twice.
"""

from __future__ import annotations

import re
import uuid

from aiohttp import web
from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator
from lxml import etree

from .board import Board
from .context import CONTEXT
from .templating import STATUS_LABELS

ATOM_TYPE = "application/atom+xml"
#: Characters XML 1.0 cannot carry at all (lxml refuses them); dropped from incident text.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def stable_id(*parts: str) -> str:
    """A ``urn:uuid:`` that depends only on ``parts``."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "outagecomms:" + "\x1f".join(parts)).urn


def _text(value: str) -> str:
    return _NOT_XML.sub("", value)


class _Entry(FeedEntry):
    """feedgen 1.0 writes an entry's links without their ``rel`` and ``type`` (it reads them
    back from the element it just made); this puts them on the elements."""

    def atom_entry(self, extensions: bool = True) -> etree._Element:
        element = super().atom_entry(extensions)
        for node, link in zip(element.findall("{*}link"), self.link(), strict=True):
            node.attrib.update({k: link[k] for k in ("rel", "type") if link.get(k)})
        return element


def atom_feed(board: Board, *, name: str, mode: str, base_url: str, website: str | None) -> bytes:
    """The feed of every update of the incidents the status page lists."""
    feed = FeedGenerator()
    feed.id(stable_id(name, mode, "feed"))
    feed.title(_text(f"{name} status"))
    feed.subtitle(_text(f"Incidents and maintenance updates from {name}"))
    feed.author({"name": _text(name), **({"uri": website} if website else {})})
    feed.link(href=f"{base_url}/feed.atom", rel="self", type=ATOM_TYPE)
    feed.link(href=f"{base_url}/", rel="alternate", type="text/html")
    feed.updated(board.updated_at)
    feed.generator("outagecomms")
    for incident, update in board.listed_updates():
        entry = feed.add_entry(_Entry(), order="append")
        entry.id(stable_id(name, mode, update.key))
        label = STATUS_LABELS.get(update.status, update.status)
        entry.title(_text(f"{update.title}: {label}"))
        entry.updated(update.at)
        entry.published(update.at)
        entry.link(href=f"{base_url}/incidents/{incident.id}", rel="alternate", type="text/html")
        entry.summary(_text(update.summary or label))
        if update.details:
            entry.content(_text(update.details), type="text")
        entry.category(term=update.severity, label=f"Severity: {update.severity}")
    return feed.atom_str(pretty=True)


async def feed_atom(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    board = await context.reader.board()
    body = atom_feed(
        board,
        name=context.config.organization.name,
        mode="sandbox" if context.sandbox else "live",
        base_url=context.base_url(request),
        website=context.config.organization.website,
    )
    return web.Response(
        body=body, content_type=ATOM_TYPE, charset="utf-8", headers={"Cache-Control": "max-age=60"}
    )
