"""A status server over in-memory announcements, driven with aiohttp's test client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from outagecomms.config import Config, Organization, ServeSettings
from outagecomms.serve import create_app
from tests.store.conftest import url  # noqa: F401  (the engines of the store tests; postgres is in tests/conftest.py)

from .records import AnnouncementRecord, MemorySource

MakeClient = Callable[..., Awaitable[TestClient]]


def make_config(tmp_path: Path, **serve: object) -> Config:
    return Config(
        path=tmp_path / "channels.yaml",
        organization=Organization(name="Acme Shop", website="https://shop.example"),
        serve=ServeSettings.model_validate(serve),
    )


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[MakeClient]:
    """``await make_client(records, sandbox=False, history_days=30)``: a client of a server
    over those announcements."""
    clients: list[TestClient] = []

    async def make(
        records: list[AnnouncementRecord] | MemorySource = (),
        *,
        sandbox: bool = False,
        **serve: object,
    ) -> TestClient:
        source = records if isinstance(records, MemorySource) else MemorySource(list(records))
        app = create_app(make_config(tmp_path, **serve), sandbox=sandbox, source=source, ttl=0)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
