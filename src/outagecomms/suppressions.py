"""The suppression list and "why", for the CLI and for scripts.

The list lives in the ledger store, one for live and sandbox alike (an opt-out is
never a rehearsal). Addresses are kept normalised: email lower-cased, phones in
E.164 (read with the config's ``default_region``), so "Ada@Example.com" and
"ada@example.com", or "(201) 555-0123" and "+12015550123", are one entry.

>>> from outagecomms.config import load_config
>>> config = load_config("channels.yaml")
>>> suppress(config, ["ada@example.com"], reason="asked by phone")
1
>>> why(config, "ada@example.com").suppressions[0].source
'manual'
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .audience import normalise_email, normalise_phone
from .config import Config
from .consent.suppression import AddressKind
from .errors import InputError
from .store import Store, Suppression, open_store, sqlite_path

#: Columns of ``suppress import``: ``address`` and, optionally, ``reason``.
IMPORT_COLUMNS = ("address", "reason")


class AddressError(InputError):
    """Something given as an address is neither an email address nor a phone number."""


def open_list(config: Config) -> Store:
    """The store holding the list (created on first use, like the ledger)."""
    return open_store(config.ledger, mode="live", base_dir=config.root)


@contextmanager
def _reading(config: Config) -> Iterator[Store | None]:
    """The store opened for reading only (nothing is created or changed), or None when
    nothing was recorded yet."""
    path = sqlite_path(config.ledger, config.root)
    if path is not None and not path.exists():
        yield None
        return
    with open_store(config.ledger, base_dir=config.root, read_only=True) as store:
        yield store


def normalise(text: str, region: str) -> tuple[str, AddressKind] | None:
    """``(address, kind)`` as the list keeps it, or None when ``text`` is neither."""
    text = text.strip()
    if "@" in text:
        address = normalise_email(text)
        return (address, "email") if address else None
    phone = normalise_phone(text, region)
    return (phone, "sms") if phone else None


def _normalised(texts: Iterable[str], region: str) -> list[tuple[str, AddressKind]]:
    found, bad = [], []
    for text in texts:
        item = normalise(text, region)
        if item is None:
            bad.append(text)
        else:
            found.append(item)
    if bad:
        shown = ", ".join(f"'{b}'" for b in bad[:5]) + (" …" if len(bad) > 5 else "")
        raise AddressError(
            f"{shown}: not an email address or a phone number (phones without a +country "
            f"code are read as {region} numbers: set default_region in channels.yaml); "
            "nothing was changed"
        )
    return found


def suppress(
    config: Config, addresses: Sequence[str], *, reason: str | None = None, source: str = "manual"
) -> int:
    """Suppress ``addresses``; how many were new (one already listed keeps its source)."""
    items = [(a, kind, source, reason) for a, kind in _normalised(addresses, config.default_region)]
    with open_list(config) as store:
        return store.add_suppressions(items)


def unsuppress(config: Config, addresses: Sequence[str]) -> int:
    """Lift the suppression of ``addresses``; how many were listed."""
    items = _normalised(addresses, config.default_region)
    with open_list(config) as store:
        return store.remove_suppressions([a for a, _ in items])


def suppressions(config: Config) -> list[Suppression]:
    """The whole list, oldest first."""
    with _reading(config) as store:
        return [] if store is None else list(store.suppressions())


@dataclass
class ImportResult:
    added: int = 0
    already: int = 0
    #: ``(line, text)`` of each row that holds no usable address.
    invalid: list[tuple[int, str]] = field(default_factory=list)


def import_suppressions(config: Config, path: Path) -> ImportResult:
    """Suppress every address of a CSV (``address[, reason]``, header row optional),
    source ``import``. Rows without a usable address are listed, the others imported."""
    result = ImportResult()
    items: list[tuple[str, str, str, str | None]] = []
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    with handle:
        try:
            for number, row in enumerate(csv.reader(handle), start=1):
                cells = [cell.strip() for cell in row]
                if not any(cells):
                    continue
                if number == 1 and cells[0].lower() == "address":
                    continue
                item = normalise(cells[0], config.default_region)
                if item is None:
                    result.invalid.append((number, cells[0]))
                    continue
                reason = cells[1] if len(cells) > 1 and cells[1] else None
                items.append((item[0], item[1], "import", reason))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(
                f"{path}: not a readable CSV of address[,reason] ({exc}); save it as UTF-8 CSV"
            ) from None
    unique = {address: (address, kind, source, reason) for address, kind, source, reason in items}
    with open_list(config) as store:
        result.added = store.add_suppressions(unique.values())
    result.already = len(unique) - result.added
    return result


@dataclass(frozen=True)
class Delivery:
    """One ledger row about the address, as ``why`` shows it."""

    announcement: str
    channel: str
    state: str
    reason: str | None
    provider_id: str | None
    updated_at: str

    def as_dict(self) -> dict[str, str | None]:
        return {
            "announcement": self.announcement,
            "channel": self.channel,
            "state": self.state,
            "reason": self.reason,
            "provider_id": self.provider_id,
            "updated_at": self.updated_at,
        }


@dataclass
class Why:
    """Everything the ledger knows about one address."""

    address: str
    kind: AddressKind | None
    deliveries: list[Delivery]
    receipts: list[dict[str, object]]
    suppressions: list[Suppression]


def why(config: Config, text: str, incident: str | None = None, *, sandbox: bool = False) -> Why:
    """Each delivery (or skip) that concerned the address, its receipts and suppression.

    An address that is not valid is looked up as written: that is how a skipped row
    with ``invalid email`` or ``invalid phone`` records it."""
    item = normalise(text, config.default_region)
    address, kind = item if item is not None else (text.strip(), None)
    where = "mode=? AND recipient IN (?, ?)"
    params: list[object] = ["sandbox" if sandbox else "live", address, text.strip()]
    if incident:
        where += " AND incident=?"
        params.append(incident)
    with _reading(config) as store:
        if store is None:
            return Why(address, kind, [], [], [])
        rows = store.fetch(
            "SELECT announcement, channel, state, error, provider_id, updated_at FROM deliveries"
            f" WHERE {where} ORDER BY created_at, announcement, channel",
            params,
        )
        receipts = [
            r
            for r in store.receipts(address)
            if not incident or str(r["announcement"]).startswith(f"{incident}/")
        ]
        suppressed = list(store.suppressed([address]).values())
    return Why(address, kind, [Delivery(*row) for row in rows], receipts, suppressed)
