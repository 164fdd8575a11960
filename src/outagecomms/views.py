"""The ledger as people and spreadsheets read it: streamed JSON and CSV, and a table that
fits the terminal.

JSON and CSV are written row by row as the store pages them in, so a million rows cost
the memory of one page, not of the whole ledger; JSON is still one array.

CSV opened in a spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a
formula (and tab or carriage return are treated alike by some), so such a cell is written
with a leading apostrophe, which spreadsheets show as text. The one exception is a whole
E.164 phone number (``+`` and 7 to 15 digits): it cannot hold a formula - a spreadsheet
reads it as the number itself - and prefixing every phone in the export would make the
recipient column unreadable for people and unmatchable for scripts.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from .store import Row

#: What a spreadsheet may take for the start of a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
#: The columns of ``--format csv``, in the order of ``--format json``'s keys.
CSV_FIELDS = (
    "announcement",
    "channel",
    "recipient",
    "state",
    "provider_id",
    "error",
    "attempts",
    "updated_at",
    "provider",
    "incident",
    "sandbox",
    "created_at",
    "sent_at",
)


def neutralise(cell: object) -> object:
    """A CSV cell a spreadsheet cannot run as a formula (see the module docstring)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START) and not _E164.fullmatch(cell):
        return "'" + cell
    return cell


def write_json(rows: Iterable[Row], out: TextIO) -> int:
    """One JSON array of the rows, written as they come; the number written."""
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n  " if count else "\n  ")
        out.write(json.dumps(row.as_dict(), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_csv(rows: Iterable[Row], out: TextIO) -> int:
    """The rows as CSV with a header, formula-looking cells neutralised; the number written."""
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    count = 0
    for row in rows:
        values = row.as_dict()
        writer.writerow([neutralise(values[field]) for field in CSV_FIELDS])
        count += 1
    return count


@dataclass(frozen=True, slots=True)
class RowFilter:
    """``ledger``'s filters; ``None`` lets everything through."""

    channels: frozenset[str] | None = None
    states: frozenset[str] | None = None
    announcement: str | None = None
    limit: int | None = None

    def apply(self, rows: Iterable[Row]) -> Iterator[Row]:
        shown = 0
        for row in rows:
            if self.limit is not None and shown >= self.limit:
                return
            if self.channels is not None and row.channel not in self.channels:
                continue
            if self.states is not None and row.state not in self.states:
                continue
            if self.announcement is not None and row.announcement != self.announcement:
                continue
            shown += 1
            yield row


def local_time(stamp: str | None, zone: str) -> str:
    """A stored UTC timestamp as a person reads it in ``zone``: ``11-22 10:41:03``."""
    if not stamp:
        return ""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    return moment.strftime("%m-%d %H:%M:%S")


def both_times(moment: datetime, zone: str) -> str:
    """A time in UTC and, when it differs, in ``zone``: ``2026-11-22 12:00 UTC (13:00
    Europe/Paris)``; what preview and send show a person."""
    utc = moment.astimezone(ZoneInfo("UTC"))
    shown = f"{utc:%Y-%m-%d %H:%M} UTC"
    if zone == "UTC":
        return shown
    local = moment.astimezone(ZoneInfo(zone))
    day = "" if local.date() == utc.date() else f"{local:%Y-%m-%d} "
    return f"{shown} ({day}{local:%H:%M} {zone})"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the ledger table; lower ``keep`` columns go first on a narrow screen."""

    title: str
    keep: int
    #: The width it needs (wrapping columns may get less and wrap).
    width: int


TABLE_COLUMNS = (
    Column("Announcement", 9, 13),
    Column("Channel", 9, 7),
    Column("Recipient", 9, 14),
    Column("State", 9, 9),
    Column("Updated", 5, 14),
    Column("Error", 6, 10),
    Column("Attempts", 3, 8),
    Column("Provider", 2, 10),
    Column("Provider id", 1, 14),
)


def fitting_columns(width: int, *, announcement: bool) -> list[Column]:
    """The columns a terminal ``width`` characters wide holds, most important kept; each
    column costs its width plus 2 of padding."""
    columns = [c for c in TABLE_COLUMNS if announcement or c.title != "Announcement"]
    while sum(c.width + 2 for c in columns) > width and min(c.keep for c in columns) < 9:
        columns.remove(min(columns, key=lambda c: c.keep))
    return columns


#: The columns whose cells wrap onto more lines, in the order they get spare room: a
#: recipient read whole matters most, then the error (short words that read badly one or
#: two to a line), then the announcement (its "(sandbox)" wraps well onto a line of its own).
WRAPPING = ("Recipient", "Error", "Announcement", "Provider id")


def wrap_widths(columns: list[Column], rows: list[dict[str, str]], width: int) -> dict[str, int]:
    """Widths for the wrapping columns that keep words whole (a phone number, an
    announcement's label) in a table ``width`` wide: each gets its longest word, up to its
    ``Column.width`` (a longer word, such as a long email address, folds), and the room left
    goes to them in ``WRAPPING`` order. Empty when every cell fits on one line, or when even
    the words do not (then the table shares out what room there is).

    The table's frame costs two edges, a separator between columns and a space of padding
    either side of every cell but the outer two: ``3 * columns - 1``."""
    texts = {c.title: [c.title, *(row[c.title] for row in rows)] for c in columns}
    natural = {title: max(map(len, cells)) for title, cells in texts.items()}
    wrapping = sorted(
        (c for c in columns if c.title in WRAPPING), key=lambda c: WRAPPING.index(c.title)
    )
    fixed = sum(natural[c.title] for c in columns if c not in wrapping)
    room = width - (3 * len(columns) - 1) - fixed
    if sum(natural[c.title] for c in wrapping) <= room:
        return {}
    widths = {
        c.title: min(c.width, max(len(word) for cell in texts[c.title] for word in cell.split()))
        for c in wrapping
    }
    room -= sum(widths.values())
    if room < 0:
        return {}
    for c in wrapping:
        extra = min(room, natural[c.title] - widths[c.title])
        widths[c.title] += extra
        room -= extra
    return widths
