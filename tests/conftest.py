"""Shared fixtures: a clean environment so no real secret or config leaks into a test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("OUTAGECOMMS_"):
            monkeypatch.delenv(name)
    yield
