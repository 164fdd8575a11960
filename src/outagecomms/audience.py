"""The audience: a CSV streamed row by row into ``Recipient`` objects, then addressed per channel.

Two steps, kept apart because they answer different questions:

* ``CsvAudience`` reads the file: is this row readable at all? It yields a
  ``Recipient`` per usable row and a ``SkippedRow`` (line and reason) for the
  others, never holding more than one row in memory.
* ``Targets`` addresses recipients for one channel: may this person get an
  SMS (opted in, a valid number in E.164) or an email (not opted out, a valid
  address), and have we already addressed them? It counts every row it does
  not address, by reason, so nothing is dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
import re
from array import array
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import phonenumbers

from .consent.suppression import INVALID_EMAIL, INVALID_PHONE, NO_SMS_OPT_IN, OPTED_OUT
from .errors import AudienceError
from .models import Recipient

COLUMNS = ("email", "phone", "name", "locale", "sms_opt_in", "email_opt_in", "timezone")
CONTACT_COLUMNS = ("email", "phone")
OPTED_OUT_ELSEWHERE = "opted out in another row"

# Deliberately strict: what SendGrid and mail servers accept in practice (no spaces, quotes,
# commas or angle brackets; a dotted domain). A refused address costs a failed request.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row of the audience file that cannot be used, with the reason."""

    line: int
    reason: str


class CsvAudience:
    """An audience CSV, read afresh on every iteration (so preflight and sending each stream it).

    Tolerates what spreadsheets produce: a UTF-8 BOM, CRLF line ends, blank
    lines, extra columns, quoted fields, header names in any case. Bytes that
    are not UTF-8 are replaced, so the row is judged on what remains.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[Recipient | SkippedRow]:
        try:
            handle = self.path.open(encoding="utf-8-sig", errors="replace", newline="")
        except FileNotFoundError:
            raise AudienceError(
                f"{self.path}: audience file not found; check 'audience:' in channels.yaml "
                "or the --audience path"
            ) from None
        except OSError as exc:
            raise AudienceError(f"{self.path}: cannot read the audience file: {exc}") from None
        with handle:
            reader = csv.reader(handle)
            line = 1  # where the row being read starts, for a row the csv module cannot read
            try:
                columns = self._columns(next(reader, None))
                while True:
                    line = reader.line_num + 1
                    row = next(reader, None)
                    if row is None:
                        break
                    if not any(cell.strip() for cell in row):
                        continue
                    values = {name: row[i] for name, i in columns.items() if i < len(row)}
                    try:
                        yield Recipient(**values)
                    except ValueError:
                        yield SkippedRow(reader.line_num, "invalid opt-in value")
            except csv.Error as exc:
                raise AudienceError(
                    f"{self.path}, line {line}: cannot read this row ({exc}); check its quotes: "
                    "a quote that is never closed takes in the lines after it"
                ) from None

    def _columns(self, header: list[str] | None) -> dict[str, int]:
        if header is None:
            raise AudienceError(
                f"{self.path}: the audience file is empty; it needs a header row "
                f"({', '.join(COLUMNS)}) and one row per person"
            )
        names = [cell.strip().lower() for cell in header]
        columns = {name: names.index(name) for name in COLUMNS if name in names}
        if not any(name in columns for name in CONTACT_COLUMNS):
            found = ", ".join(cell for cell in header if cell.strip()) or "nothing"
            raise AudienceError(
                f"{self.path}, line 1: no 'email' or 'phone' column (found: {found}); "
                f"the header row must name the columns {', '.join(COLUMNS)}"
            )
        return columns


def normalise_phone(raw: str, region: str) -> str | None:
    """``raw`` in E.164 (``+12015550123``), or ``None`` when it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str | None:
    """``raw`` lower-cased, or ``None`` when it does not look deliverable.

    Lower-casing the whole address (not only the domain) is what makes
    ``Ada@Example.com`` and ``ada@example.com`` one person: mailbox providers
    ignore case in practice, and one email too many is worse than the
    theoretical case-sensitive mailbox.
    """
    address = raw.strip().lower()
    if len(address) > _MAX_EMAIL_LENGTH or not _EMAIL.match(address):
        return None
    return address


class NumberMemo:
    """The E.164 number of each audience row, as the first pass over it found them, so
    the sending pass does not parse every number again (phonenumbers takes ~50 µs a
    number: half of the planning cost of an SMS, bench/RESULTS.md).

    Kept as two arrays (16 bytes a row, not objects). A row is taken from the memo
    only when its raw text hashes as it did then: a row that changed in between, or
    an audience that changed length, is parsed afresh.
    """

    def __init__(self) -> None:
        self._hashes = array("q")
        self._numbers = array("q")  # the digits after "+", 0 for no valid number

    def normalise(self, row: int, raw: str, region: str) -> str | None:
        if row < len(self._hashes):
            if self._hashes[row] == hash(raw):
                number = self._numbers[row]
                return f"+{number}" if number else None
            return normalise_phone(raw, region)
        address = normalise_phone(raw, region)
        # Rows without a number leave gaps: -1 is never the hash of a str in CPython.
        missing = row - len(self._hashes)
        self._hashes.extend([-1] * missing)
        self._numbers.extend([0] * missing)
        self._hashes.append(hash(raw))
        self._numbers.append(int(address[1:]) if address else 0)
        return address


class Targets:
    """Addresses recipients for one channel kind, once each, counting what it skips.

    An explicit "no" wins over every other row of the same address, wherever it
    stands: a row after it is skipped here, and an address already addressed
    before it is reported by ``late_opt_outs`` so that the sending pass, given it
    as ``excluded``, skips that address from its first row on. Both passes share
    ``numbers``: the first fills it, the second reads it.
    """

    def __init__(
        self,
        kind: Literal["sms", "email"],
        region: str,
        excluded: Collection[str] = (),
        numbers: NumberMemo | None = None,
    ) -> None:
        self.kind = kind
        self.region = region
        self.excluded = excluded
        self.numbers = numbers
        self._row = -1
        self.skipped: Counter[str] = Counter()
        self.last_skip: tuple[str, str] | None = None
        self._opted_out: set[str] = set()
        # Keys (see ``_key``), not addresses: a million-row audience keeps a million of them.
        self._seen: set[int] = set()

    def address(self, item: Recipient | SkippedRow) -> str | None:
        """The recipient's address on this channel, or ``None`` (and the reason counted)."""
        self._row += 1
        if isinstance(item, SkippedRow):
            return self._skip(item.reason)
        if self.kind == "sms":
            if item.phone is None:
                return self._skip("no phone number")
            if self.numbers is None:
                address = normalise_phone(item.phone, self.region)
            else:
                address = self.numbers.normalise(self._row, item.phone, self.region)
            if address is None:
                return self._skip(INVALID_PHONE, item.phone)
            wanted, opt_in = item.wants_sms, item.sms_opt_in
        else:
            if item.email is None:
                return self._skip("no email address")
            address = normalise_email(item.email)
            if address is None:
                return self._skip(INVALID_EMAIL, item.email)
            wanted, opt_in = item.wants_email, item.email_opt_in
        if not wanted:
            if opt_in is False:
                self._opted_out.add(address)
                return self._skip(OPTED_OUT, address)
            return self._skip(NO_SMS_OPT_IN, address)
        if address in self._opted_out or address in self.excluded:
            return self._skip(OPTED_OUT_ELSEWHERE)
        key = self._key(address)
        if key in self._seen:
            return self._skip("duplicate")
        self._seen.add(key)
        return address

    def late_opt_outs(self) -> set[str]:
        """Addresses addressed before a later row of theirs said "no": not to be sent."""
        return {address for address in self._opted_out if self._key(address) in self._seen}

    def _key(self, address: str) -> int:
        """An address as a small int, 30-40% lighter than the string (tracemalloc, a
        million addresses): an E.164 number is its digits, exactly; an email address is a
        128-bit BLAKE2 digest, so two addresses share one with a chance of about 1e-27 in
        a million-row audience."""
        if self.kind == "sms":
            return int(address[1:])
        return int.from_bytes(hashlib.blake2b(address.encode(), digest_size=16).digest())

    def _skip(self, reason: str, address: str | None = None) -> None:
        """Count a skip; ``last_skip`` keeps it with the address it concerns (normalised, or
        the cell as written when it is invalid) for a ``skipped`` ledger row."""
        self.skipped[reason] += 1
        self.last_skip = (reason, address) if address is not None else None
        return None
