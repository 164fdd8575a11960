"""Shared fixtures: a clean environment so no real secret or config leaks into a test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pg import PostgresServer, postgres_server


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("OUTAGECOMMS_"):
            monkeypatch.delenv(name)
    yield


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole session (see tests/pg.py)."""
    with postgres_server() as server:
        yield server
