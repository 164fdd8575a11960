"""``/feed.atom`` against the requirements of RFC 4287, across restarts."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

from outagecomms.serve import create_app

from .conftest import MakeClient, make_config
from .records import NOW, MemorySource, record

ATOM = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
ABSOLUTE_IRI = re.compile(r"[a-z][a-z0-9+.-]*:\S+")


def one(parent: etree._Element, name: str) -> etree._Element:
    found = parent.findall(ATOM + name)
    assert len(found) == 1, f"{parent.tag} must have exactly one {name}, has {len(found)}"
    return found[0]


def assert_valid_atom(body: bytes) -> etree._Element:
    """The RFC 4287 rules a feed reader relies on (section 4.1.1 and 4.1.2)."""
    feed = etree.fromstring(body)
    assert feed.tag == ATOM + "feed"
    assert ABSOLUTE_IRI.fullmatch(one(feed, "id").text)
    assert one(feed, "title").text
    assert RFC3339.fullmatch(one(feed, "updated").text)
    authors = feed.findall(ATOM + "author")
    assert authors and all(one(a, "name").text for a in authors)
    self_links = [link for link in feed.findall(ATOM + "link") if link.get("rel") == "self"]
    assert len(self_links) == 1 and self_links[0].get("href").startswith("http")
    ids = []
    for entry in feed.findall(ATOM + "entry"):
        ids.append(one(entry, "id").text)
        assert ABSOLUTE_IRI.fullmatch(ids[-1])
        assert one(entry, "title").text
        assert RFC3339.fullmatch(one(entry, "updated").text)
        alternates = [
            link
            for link in entry.findall(ATOM + "link")
            if link.get("rel", "alternate") == "alternate"
        ]
        assert len(alternates) == 1 and alternates[0].get("href").startswith("http")
        assert entry.findall(ATOM + "summary") or entry.findall(ATOM + "content")
        for text in entry.findall(ATOM + "content") + entry.findall(ATOM + "summary"):
            assert len(text) == 0  # text constructs hold text, never markup
    assert len(ids) == len(set(ids)), "entry ids must be unique"
    return feed


async def test_feed_is_valid_atom_with_one_entry_per_announcement(make_client: MakeClient):
    client = await make_client(
        [
            record("mail", "investigating", sent=NOW - timedelta(hours=3), summary="Looking."),
            record("mail", "identified", sent=NOW - timedelta(hours=2), details="Disk full."),
            record("mail", "resolved", sent=NOW - timedelta(hours=1), summary="Fixed."),
            record("cdn", title="Images load slowly", severity="minor", sent=NOW),
        ],
        public_url="https://status.shop.example",
    )
    response = await client.get("/feed.atom")
    assert response.status == 200
    assert response.content_type == "application/atom+xml"
    feed = assert_valid_atom(await response.read())
    entries = feed.findall(ATOM + "entry")
    titles = [one(e, "title").text for e in entries]
    assert titles == [
        "Images load slowly: Investigating",
        "Email delivery is delayed: Resolved",
        "Email delivery is delayed: Identified",
        "Email delivery is delayed: Investigating",
    ]
    assert entries[1].find(ATOM + "link").get("href") == (
        "https://status.shop.example/incidents/mail"
    )
    assert one(entries[1], "summary").text == "Fixed."
    assert one(entries[2], "content").text == "Disk full."
    assert one(feed, "updated").text.startswith(NOW.strftime("%Y-%m-%dT%H:%M:%S"))
    self_link = next(x for x in feed.findall(ATOM + "link") if x.get("rel") == "self")
    assert self_link.get("href") == "https://status.shop.example/feed.atom"
    assert one(one(feed, "author"), "name").text == "Acme Shop"


async def test_empty_feed_is_still_valid(make_client: MakeClient):
    client = await make_client([])
    feed = assert_valid_atom(await (await client.get("/feed.atom")).read())
    assert feed.findall(ATOM + "entry") == []


async def test_entry_ids_are_stable_across_restarts(tmp_path: Path):
    records = [record("mail"), record("mail", "resolved", sent=NOW + timedelta(minutes=5))]
    seen = []
    for _ in range(2):  # two servers, one after the other, as after a restart
        app = create_app(make_config(tmp_path), source=MemorySource(list(records)), ttl=0)
        async with TestClient(TestServer(app)) as client:
            feed = assert_valid_atom(await (await client.get("/feed.atom")).read())
        seen.append(
            [one(e, "id").text for e in feed.findall(ATOM + "entry")] + [one(feed, "id").text]
        )
    assert seen[0] == seen[1]
    sandbox = create_app(make_config(tmp_path), sandbox=True, source=MemorySource(records), ttl=0)
    async with TestClient(TestServer(sandbox)) as client:
        feed = assert_valid_atom(await (await client.get("/feed.atom")).read())
    assert not set(seen[0]) & {one(e, "id").text for e in feed.findall(ATOM + "entry")}


async def test_characters_xml_cannot_carry_are_dropped_not_fatal(make_client: MakeClient):
    client = await make_client([record("mail", title="Bad\x0bchar \x00here", summary="a\x1bb")])
    feed = assert_valid_atom(await (await client.get("/feed.atom")).read())
    entry = feed.find(ATOM + "entry")
    assert one(entry, "title").text == "Badchar here: Investigating"
    assert one(entry, "summary").text == "ab"
