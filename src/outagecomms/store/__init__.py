"""The store: where outagecomms keeps what it sent, and what it learnt afterwards.

``open_store(url, mode=..., base_dir=...)`` picks the engine by URL:
``sqlite:///path`` (the embedded default; a relative path is relative to
``base_dir``, the folder of channels.yaml) or ``postgresql://...`` (several
senders on several machines). Both engines share one implementation of the
rules (``base.Store``); an engine only connects and runs statements.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError
from .base import Store
from .records import (
    DONE_STATES,
    STATES,
    AnnouncementRecord,
    Mode,
    PausedCampaign,
    Row,
    State,
    Suppression,
    canonical_json,
    now,
)
from .sqlite import SqliteStore

#: The SQLite store of one file: the name earlier versions gave it (public API).
Ledger = SqliteStore

_SQLITE = re.compile(r"sqlite:///(.+)")
_POSTGRES = re.compile(r"postgres(ql)?://.*", re.DOTALL)


def sqlite_path(url: str, base_dir: Path) -> Path | None:
    """The file of a ``sqlite:///`` URL (relative to ``base_dir``), or None for another URL."""
    match = _SQLITE.fullmatch(url)
    if match is None:
        return None
    path = Path(match.group(1))
    return path if path.is_absolute() else base_dir / path


def open_store(
    url: str,
    *,
    mode: Mode = "live",
    base_dir: Path = Path("."),
    read_only: bool = False,
    recover: bool = True,
) -> Store:
    """Open (and create on first use) the store at ``url``.

    Opening turns the ``sending`` rows of expired leases ``unknown`` (``recovered``
    says how many) unless ``recover`` is false. ``read_only`` opens it for reading
    only (``ledger``, ``report`` on a read-only file): nothing is created or recovered.
    """
    path = sqlite_path(url, base_dir)
    if path is not None:
        return SqliteStore(path, mode, read_only=read_only, recover=recover)
    if _POSTGRES.fullmatch(url):
        from .postgres import PostgresStore

        return PostgresStore(url, mode, read_only=read_only, recover=recover)
    raise ConfigError(
        "ledger must be sqlite:///path/to/ledger.db or postgresql://user@host/db, "
        f"not '{url.split('://')[0]}://…'"
    )


def view_store(url: str, *, base_dir: Path = Path(".")) -> Store | None:
    """The store opened for reading every mode's rows; None when a SQLite file does not
    exist yet (viewing creates nothing). Expired leases are recovered when the store can
    be written; a read-only file is still read."""
    path = sqlite_path(url, base_dir)
    if path is not None and not path.exists():
        return None
    try:
        return open_store(url, base_dir=base_dir)
    except ConfigError:
        if path is None or path.is_dir():
            raise
        try:
            return SqliteStore(path, read_only=True)
        except ConfigError:
            pass
        raise


__all__ = [
    "DONE_STATES",
    "STATES",
    "AnnouncementRecord",
    "Ledger",
    "Mode",
    "PausedCampaign",
    "Row",
    "SqliteStore",
    "State",
    "Store",
    "Suppression",
    "canonical_json",
    "now",
    "open_store",
    "sqlite_path",
    "view_store",
]
