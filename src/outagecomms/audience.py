"""The audience: a CSV streamed row by row into ``Recipient`` objects, then addressed per channel.

Two steps, kept apart because they answer different questions:

* ``CsvAudience`` reads the file: is this row readable at all? It yields a
  ``Recipient`` per usable row and a ``SkippedRow`` (line and reason) for the
  others, never holding more than one row in memory. A file that cannot be
  read as intended stops the run at preflight, naming the line: text that is
  not UTF-8 (never replaced silently), a quote that is never closed, a field
  running over several lines or implausibly long. Commas, semicolons
  (European Excel) and tabs are recognised as the separator from the header.
* ``Targets`` addresses recipients for one channel: may this person get an
  SMS (opted in, a mobile number in E.164) or an email (not opted out, a valid
  address), and have we already addressed them? It counts every row it does
  not address, by reason (the stable strings of DESIGN §18), so nothing is
  dropped silently. A bad cell affects only its own channel: an unreadable
  ``sms_opt_in`` skips the SMS, not the email.
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
from typing import Literal, TextIO

import phonenumbers

from .errors import AudienceError
from .models import Recipient, parse_opt_in

COLUMNS = ("email", "phone", "name", "locale", "sms_opt_in", "email_opt_in", "timezone")
CONTACT_COLUMNS = ("email", "phone")
OPT_IN_COLUMNS = ("sms_opt_in", "email_opt_in")
OPTED_OUT_ELSEWHERE = "opted out in another row"

# Skip reasons (DESIGN §13 and §18): stable strings, also written to the ledger.
NO_SMS_OPT_IN = "no sms opt-in"
OPTED_OUT = "opted out"
INVALID_PHONE = "invalid phone"
INVALID_EMAIL = "invalid email"
NOT_MOBILE = "not a mobile number"
INVALID_OPT_IN = {"sms": "invalid sms opt-in", "email": "invalid email opt-in"}

#: Opt-in cells (None: no such cell) that need no parsing to be known readable: checked
#: for every row, so a file of common spellings pays one set lookup a row.
_COMMON_OPT_INS = frozenset({None, "", "yes", "no", "true", "false", "1", "0", "Yes", "No"})
#: The separators a header row is tried with, the first winning a tie.
DELIMITERS = (",", ";", "\t")
#: No column we read holds more than this; a longer cell is a quote left open.
MAX_FIELD = 4096
#: Physical lines one row may span (a note with line breaks in an extra column).
MAX_ROW_LINES = 20

# Deliberately strict: what SendGrid and mail servers accept in practice (no spaces, quotes,
# commas or angle brackets; a dotted domain). A refused address costs a failed request.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True, slots=True)
class CsvRecipient(Recipient):
    """A recipient read from the audience file. ``unreadable`` names the opt-in columns
    whose cell was neither a yes nor a no: only that column's channel skips the row."""

    unreadable: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row of the audience file that cannot be used, with the reason."""

    line: int
    reason: str


class CsvAudience:
    """An audience CSV, read afresh on every iteration (so preflight and sending each stream it).

    Tolerates what spreadsheets produce: a UTF-8 BOM, CRLF line ends, blank
    lines, extra columns, quoted fields, header names in any case, commas,
    semicolons or tabs between fields. Refuses (``AudienceError``, naming the
    line) what it cannot read as meant; see the module doc.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[Recipient | SkippedRow]:
        try:
            handle = self.path.open(encoding="utf-8-sig", errors="strict", newline="")
        except FileNotFoundError:
            raise AudienceError(
                f"{self.path}: audience file not found; check 'audience:' in channels.yaml "
                "or the --audience path"
            ) from None
        except OSError as exc:
            raise AudienceError(f"{self.path}: cannot read the audience file: {exc}") from None
        with handle:
            try:
                yield from self._rows(handle)
            except UnicodeDecodeError:
                raise AudienceError(self._not_utf8()) from None

    def _rows(self, handle: TextIO) -> Iterator[Recipient | SkippedRow]:
        delimiter = _delimiter(handle.readline())
        handle.seek(0)
        reader = csv.reader(handle, delimiter=delimiter)
        line = 1  # where the row being read starts
        try:
            columns = self._columns(next(reader, None))
            opt_ins = [column for column in OPT_IN_COLUMNS if column in columns]
            while True:
                line = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    break
                if not any(cell.strip() for cell in row):
                    continue
                if reader.line_num != line or max(map(len, row)) > MAX_FIELD:
                    self._check(row, columns, delimiter, line, reader.line_num)
                values = {name: row[i] for name, i in columns.items() if i < len(row)}
                if _COMMON_OPT_INS.issuperset(map(values.get, opt_ins)):
                    yield Recipient(**values)
                    continue
                unreadable = [c for c in opt_ins if not _readable_opt_in(values.get(c))]
                if unreadable:
                    # Left empty for ``Recipient``; the column's channel skips the row.
                    values.update(dict.fromkeys(unreadable, ""))
                    yield CsvRecipient(**values, unreadable=frozenset(unreadable))
                else:
                    yield Recipient(**values)
        except csv.Error as exc:
            raise AudienceError(
                f"{self.path}, line {line}: cannot read this row ({exc}); check its quotes: "
                "a quote that is never closed takes in the lines after it"
            ) from None

    def _check(
        self, row: list[str], columns: dict[str, int], delimiter: str, line: int, last: int
    ) -> None:
        """Refuse a row that shows a quote left open: a line break in a column we read, a
        cell over several lines holding separated values (rows taken in), a row over
        ``MAX_ROW_LINES`` lines, a cell over ``MAX_FIELD`` characters."""
        spans = f"lines {line} to {last}"
        hint = "check its quotes: a quote that is never closed takes in the lines after it"
        known = {index: name for name, index in columns.items()}
        for index, cell in enumerate(row):
            if "\n" not in cell and "\r" not in cell:
                continue
            if index in known:
                raise AudienceError(
                    f"{self.path}, line {line}: the '{known[index]}' cell runs over {spans}; {hint}"
                )
            # A note over several lines is fine; one holding separated values is rows.
            if any(delimiter in later for later in cell.splitlines()[1:]):
                raise AudienceError(
                    f"{self.path}, line {line}: a cell runs over {spans} and holds what look "
                    f"like rows; {hint}"
                )
        if last - line + 1 > MAX_ROW_LINES:
            raise AudienceError(f"{self.path}, line {line}: one row runs over {spans}; {hint}")
        longest = max(len(cell) for cell in row)
        if longest > MAX_FIELD:
            raise AudienceError(
                f"{self.path}, line {line}: a cell of {longest:,} characters is too long for "
                f"an audience file (at most {MAX_FIELD:,}); {hint}"
            )

    def _not_utf8(self) -> str:
        """Where the file stops being UTF-8, with what to do. Found again line by line in
        bytes: the text reader decodes ahead of the rows, so it cannot say the line."""
        line, byte = 0, None
        with self.path.open("rb") as raw:
            for line, text in enumerate(raw, 1):  # noqa: B007 - the line is the answer
                try:
                    text.decode("utf-8")
                except UnicodeDecodeError as exc:
                    byte = text[exc.start]
                    break
        shown = f" (byte {byte:#04x})" if byte is not None else ""
        return (
            f"{self.path}, line {line}: not UTF-8 text{shown}; characters would be garbled "
            "in messages, so nothing is sent. Save the file as UTF-8 (Excel: 'CSV UTF-8'; "
            "Numbers and LibreOffice: choose UTF-8 as the character set) and run again"
        )

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


def _delimiter(header: str) -> str:
    """The separator of a CSV, from its header row: the most frequent of ``DELIMITERS``
    outside quotes (a header names its columns once, so the count is unambiguous)."""
    unquoted = "".join(header.split('"')[::2])
    counts = [unquoted.count(d) for d in DELIMITERS]
    return DELIMITERS[counts.index(max(counts))] if max(counts) else ","


def _readable_opt_in(cell: str | None) -> bool:
    """Whether ``Recipient`` can read an opt-in cell."""
    if cell is None:
        return True
    try:
        parse_opt_in(cell)
    except ValueError:
        return False
    return True


def normalise_phone(raw: str, region: str) -> str | None:
    """``raw`` in E.164 (``+12015550123``), or ``None`` when it is not a valid number."""
    found = phone_number(raw, region)
    return None if found is None else found[0]


def phone_number(raw: str, region: str) -> tuple[str, bool] | None:
    """``raw`` in E.164 and whether it is a landline (phonenumbers' FIXED_LINE: it cannot
    receive SMS; FIXED_LINE_OR_MOBILE, as all North American numbers, may), or ``None``
    when it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    landline = phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), landline


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
        # The digits after "+" (negated for a landline), 0 for no valid number.
        self._numbers = array("q")

    def normalise(self, row: int, raw: str, region: str) -> tuple[str, bool] | None:
        """``phone_number(raw, region)``, from the memo when the row is unchanged."""
        if row < len(self._hashes):
            if self._hashes[row] == hash(raw):
                number = self._numbers[row]
                return (f"+{abs(number)}", number < 0) if number else None
            return phone_number(raw, region)
        found = phone_number(raw, region)
        # Rows without a number leave gaps: -1 is never the hash of a str in CPython.
        missing = row - len(self._hashes)
        self._hashes.extend([-1] * missing)
        self._numbers.extend([0] * missing)
        self._hashes.append(hash(raw))
        if found is None:
            self._numbers.append(0)
        else:
            digits = int(found[0][1:])
            self._numbers.append(-digits if found[1] else digits)
        return found


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
        unreadable = isinstance(item, CsvRecipient) and f"{self.kind}_opt_in" in item.unreadable
        if self.kind == "sms":
            if item.phone is None:
                return self._skip("no phone number")
            if self.numbers is None:
                found = phone_number(item.phone, self.region)
            else:
                found = self.numbers.normalise(self._row, item.phone, self.region)
            if found is None:
                return self._skip(INVALID_PHONE, item.phone)
            address, landline = found
            if unreadable:
                return self._skip(INVALID_OPT_IN["sms"])
            wanted, opt_in = item.wants_sms, item.sms_opt_in
            reason = OPTED_OUT if opt_in is False else NO_SMS_OPT_IN
            if wanted and landline:
                return self._skip(NOT_MOBILE, address)
        else:
            if item.email is None:
                return self._skip("no email address")
            address = normalise_email(item.email)
            if address is None:
                return self._skip(INVALID_EMAIL, item.email)
            if unreadable:
                return self._skip(INVALID_OPT_IN["email"])
            wanted, opt_in, reason = item.wants_email, item.email_opt_in, OPTED_OUT
        if not wanted:
            if opt_in is False:
                self._opted_out.add(address)
            return self._skip(reason, address)
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
