"""The server over a real ledger store, SQLite and PostgreSQL: what ``send`` recorded.

Announcements are recorded exactly as ``send`` records them (``announcement_record``,
``mark_announcement_sent``), in live and sandbox mode, and read back over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from outagecomms.config import Config
from outagecomms.models import Incident
from outagecomms.run.planning import announcement_record
from outagecomms.serve import create_app
from outagecomms.store import Store, now, open_store


def announce(store: Store, incident: Incident, *, sent: bool = True) -> None:
    """What ``send`` does with an announcement: record it, then mark its first delivery."""
    store.record_announcement(announcement_record(incident, sandbox=store.mode == "sandbox"))
    if sent:
        store.mark_announcement_sent(incident.key, now())


def incident(title: str, status: str = "investigating", **fields: object) -> Incident:
    return Incident(id=title.lower().replace(" ", "-"), title=title, status=status, **fields)


@pytest.fixture
async def serve(url: str, tmp_path: Path) -> AsyncIterator[Callable]:
    """``await serve(sandbox=False)``: a client of the real app over the ledger at ``url``."""
    clients: list[TestClient] = []

    async def start(*, sandbox: bool = False) -> TestClient:
        config = Config(path=tmp_path / "channels.yaml", ledger=url)
        client = TestClient(TestServer(create_app(config, sandbox=sandbox, ttl=0)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
def stores(url: str, tmp_path: Path):
    opened = {mode: open_store(url, mode=mode, base_dir=tmp_path) for mode in ("live", "sandbox")}
    yield opened
    for store in opened.values():
        store.close()


async def open_ids(client: TestClient) -> list[str]:
    return [i["id"] for i in (await (await client.get("/api/status.json")).json())["incidents"]]


async def test_live_and_sandbox_announcements_are_apart(serve, stores):
    announce(stores["live"], incident("Checkout is down", severity="critical"))
    announce(stores["sandbox"], incident("Rehearsed outage"))
    live, sandbox = await serve(), await serve(sandbox=True)
    assert await open_ids(live) == ["checkout-is-down"]
    assert await open_ids(sandbox) == ["rehearsed-outage"]
    assert (await live.get("/incidents/rehearsed-outage")).status == 404
    assert "Rehearsed outage" in await (await sandbox.get("/feed.atom")).text()


async def test_planned_then_sent_then_resolved(serve, stores):
    store = stores["live"]
    client = await serve()
    announce(store, incident("Mail is slow"), sent=False)
    assert await open_ids(client) == []  # planned, nothing went out yet
    store.mark_announcement_sent("mail-is-slow/investigating", now())
    assert await open_ids(client) == ["mail-is-slow"]
    announce(store, incident("Mail is slow", "resolved", summary="Fixed."))
    assert await open_ids(client) == []
    page = await (await client.get("/")).text()
    assert "All systems operational" in page and "Mail is slow" in page  # past incidents
    body = await (await client.get("/incidents/mail-is-slow")).text()
    assert body.index("Resolved") < body.index("Investigating")


async def test_times_come_from_the_store(serve, stores):
    started = datetime(2026, 11, 22, 9, 40, tzinfo=UTC)
    announce(stores["live"], incident("Mail is slow", started_at=started))
    status = await (await (await serve()).get("/api/status.json")).json()
    assert status["incidents"][0]["started_at"] == "2026-11-22T09:40:00Z"


@pytest.mark.parametrize("url", ["sqlite"], indirect=True)
async def test_no_ledger_yet_means_all_operational_and_creates_nothing(serve, tmp_path: Path):
    client = await serve()
    page = await (await client.get("/")).text()
    assert "All systems operational" in page
    assert not (tmp_path / "ledger.db").exists()
    # The ledger appears later (the first send): the running server picks it up.
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}", base_dir=tmp_path)
    announce(store, incident("Mail is slow"))
    store.close()
    assert await open_ids(client) == ["mail-is-slow"]


async def test_reading_while_a_send_holds_a_write_transaction(serve, stores):
    store = stores["live"]
    announce(store, incident("Mail is slow"))
    client = await serve()
    with store.transaction():
        store.record_announcement(announcement_record(incident("Other"), sandbox=False))
        response = await asyncio.wait_for(client.get("/api/status.json"), timeout=10)
        assert response.status == 200
        assert [i["id"] for i in (await response.json())["incidents"]] == ["mail-is-slow"]
