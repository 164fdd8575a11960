"""The store's behavioural tests run once per engine: every test takes ``engine`` and
opens stores through ``open_at`` / ``url``, never an engine class directly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from outagecomms.store import Mode, Store, open_store
from tests.pg import PostgresServer

ENGINES = ("sqlite", "postgresql")

OpenStore = Callable[..., Store]


@pytest.fixture(params=ENGINES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def open_at(url: str, tmp_path: Path) -> Iterator[OpenStore]:
    """``open_at(mode="live")``: a store on this test's database (closed after the test)."""
    opened: list[Store] = []

    def _open(mode: Mode = "live", **kwargs: object) -> Store:
        store = open_store(url, mode=mode, base_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()
