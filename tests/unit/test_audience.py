"""The audience CSV as people export it from a spreadsheet or a CRM, odd bytes included."""

from __future__ import annotations

import itertools
import shutil
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest

from outagecomms import Announcer, AudienceError, Incident, Recipient
from outagecomms.audience import CsvAudience, CsvRecipient, SkippedRow, Targets, normalise_phone

ROOT = Path(__file__).parents[2]

HEADER = "email,phone,name,locale,sms_opt_in,email_opt_in\n"


def csv_file(tmp_path: Path, content: str | bytes, name: str = "audience.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def address(
    items: Iterable[Recipient | SkippedRow], kind: str, region: str = "US"
) -> tuple[list[str], Counter[str]]:
    """What a channel of ``kind`` would send to, in order, and what it skipped, by reason."""
    targets = Targets(kind, region)  # type: ignore[arg-type]
    addresses = [a for item in items if (a := targets.address(item)) is not None]
    return addresses, targets.skipped


# --- addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(201) 555-0123", "US", "+12015550123"),
        ("201-555-0123", "US", "+12015550123"),
        ("2015550123", "US", "+12015550123"),
        ("+1 201 555 0123", "US", "+12015550123"),
        ("+1 201 555 0123", "GB", "+12015550123"),  # an explicit country code wins
        ("07911 123456", "GB", "+447911123456"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", "US", "+33612345678"),
        ("020 7946 0958", "US", None),  # a UK number without +44 is not a US number
        ("12345", "US", None),
        ("555-1234", "US", None),
        ("call me", "US", None),
    ],
)
def test_phone_numbers_become_e164_in_the_default_region(
    tmp_path: Path, raw: str, region: str, expected: str | None
) -> None:
    assert normalise_phone(raw, region) == expected
    path = csv_file(tmp_path, f'phone,sms_opt_in\n"{raw}",yes\n')
    sent, skipped = address(CsvAudience(path), "sms", region)
    assert sent == ([expected] if expected else [])
    assert skipped == ({} if expected else {"invalid phone": 1})


@pytest.mark.parametrize(
    ("sms_cell", "email_cell", "gets_sms", "gets_email"),
    [
        ("true", "true", True, True),
        ("yes", "yes", True, True),
        ("1", "1", True, True),
        ("TRUE", "Yes", True, True),
        (" yes ", " 1 ", True, True),
        ("false", "false", False, False),
        ("no", "no", False, False),
        ("0", "0", False, False),
        ("No", "FALSE", False, False),
        ("", "", False, True),  # empty = missing: no for SMS, yes for email
        ("  ", "  ", False, True),
    ],
)
def test_opt_in_cells(
    tmp_path: Path, sms_cell: str, email_cell: str, gets_sms: bool, gets_email: bool
) -> None:
    path = csv_file(
        tmp_path, HEADER + f"ada@example.com,+12015550123,Ada,en,{sms_cell},{email_cell}\n"
    )
    sms, sms_skipped = address(CsvAudience(path), "sms")
    email, email_skipped = address(CsvAudience(path), "email")
    assert sms == (["+12015550123"] if gets_sms else [])
    reason = "no sms opt-in" if not sms_cell.strip() else "opted out"
    assert sms_skipped == ({} if gets_sms else {reason: 1})
    assert email == (["ada@example.com"] if gets_email else [])
    assert email_skipped == ({} if gets_email else {"opted out": 1})


def test_without_opt_in_columns_email_is_yes_and_sms_is_no(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "email,phone\nada@example.com,+12015550123\n")
    assert address(CsvAudience(path), "email") == (["ada@example.com"], Counter())
    assert address(CsvAudience(path), "sms") == ([], Counter({"no sms opt-in": 1}))


def test_an_unreadable_opt_in_cell_skips_only_its_own_channel(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        HEADER
        + "ada@example.com,+12015550123,Ada,en,yes,yes\n"
        + "bob@example.com,+12125550147,Bob,en,maybe,yes\n"
        + "cy@example.com,+12025550199,Cy,en,yes,perhaps\n",
    )
    items = list(CsvAudience(path))
    assert address(items, "sms") == (
        ["+12015550123", "+12025550199"],
        Counter({"invalid sms opt-in": 1}),
    )
    assert address(items, "email") == (
        ["ada@example.com", "bob@example.com"],
        Counter({"invalid email opt-in": 1}),
    )
    with pytest.raises(ValueError, match="maybe"):
        Recipient(email="ada@example.com", sms_opt_in="maybe")


@pytest.mark.parametrize(
    ("phone", "region", "reason"),
    [
        ("+44 20 7946 0958", "US", "not a mobile number"),  # a London landline
        ("01 23 45 67 89", "FR", "not a mobile number"),  # a Paris landline
        ("+44 7911 123456", "US", None),  # a UK mobile
        ("(201) 555-0123", "US", None),  # North America: fixed line or mobile, kept
    ],
)
def test_a_landline_is_skipped_for_sms_and_kept_for_email(
    tmp_path: Path, phone: str, region: str, reason: str | None
) -> None:
    path = csv_file(tmp_path, HEADER + f'ada@example.com,"{phone}",Ada,en,yes,yes\n')
    sent, skipped = address(CsvAudience(path), "sms", region)
    assert skipped == ({reason: 1} if reason else {})
    assert len(sent) == (0 if reason else 1)
    assert address(CsvAudience(path), "email", region) == (["ada@example.com"], Counter())


@pytest.mark.parametrize("delimiter", [";", "\t"], ids=["semicolon", "tab"])
def test_a_semicolon_or_tab_separated_file_is_read_like_a_comma_separated_one(
    tmp_path: Path, delimiter: str
) -> None:
    d = delimiter
    lines = [
        f"email{d}phone{d}name{d}sms_opt_in",
        f"ada@example.com{d}(201) 555-0123{d}Lovelace, Ada{d}yes",
        f'bob@example.com{d}+1 212 555 0147{d}"""Bob""{d} Robert"{d}no',
    ]
    path = csv_file(tmp_path, "\n".join(lines) + "\n")
    items = list(CsvAudience(path))
    assert [item.name for item in items if isinstance(item, Recipient)] == [
        "Lovelace, Ada",
        f'"Bob"{delimiter} Robert',
    ]
    assert address(items, "sms") == (["+12015550123"], Counter({"opted out": 1}))
    assert address(items, "email")[0] == ["ada@example.com", "bob@example.com"]


def test_invalid_addresses_are_skipped_and_counted_by_reason(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        HEADER
        + "ada@example.com,(201) 555-0123,Ada,en,yes,yes\n"
        + "barbara@example,555-1234,Barbara,en,yes,yes\n"  # bad email, bad phone
        + '"hedy, lamarr"@example.com,12345,Hedy,en,yes,yes\n'
        + "a@@example.com,+1 201 555 012,Al,en,yes,yes\n"
        + f"{'x' * 250}@example.com,,Long,en,yes,yes\n"
        + "o'brien+outage@Mail.Example.CO.UK,+44 20 7946 0958,Pat,en,yes,yes\n",
    )
    assert address(CsvAudience(path), "email") == (
        ["ada@example.com", "o'brien+outage@mail.example.co.uk"],
        Counter({"invalid email": 4}),
    )
    assert address(CsvAudience(path), "sms") == (
        ["+12015550123"],
        Counter({"invalid phone": 3, "no phone number": 1, "not a mobile number": 1}),
    )


def test_duplicates_are_addressed_once_and_counted(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        HEADER
        + "Ada@Example.com,(201) 555-0123,Ada,en,yes,yes\n"
        + "ada@example.com,201-555-0123,Ada again,en,yes,yes\n"
        + " ADA@EXAMPLE.COM ,+1 201 555 0123,Ada thrice,en,yes,yes\n"
        + "grace@example.com,2015550123,Grace (shares Ada's phone),en,yes,yes\n",
    )
    assert address(CsvAudience(path), "email") == (
        ["ada@example.com", "grace@example.com"],
        Counter({"duplicate": 2}),
    )
    assert address(CsvAudience(path), "sms") == (["+12015550123"], Counter({"duplicate": 3}))


def test_an_explicit_no_holds_for_later_rows_of_the_same_person(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        HEADER
        + "ada@example.com,(201) 555-0123,Ada,en,no,no\n"
        + "ADA@example.com,201-555-0123,Ada again,en,,\n"  # empty cells are no opinion
        + "bob@example.com,(212) 555-0147,Bob,en,,\n"
        + "bob@example.com,212-555-0147,Bob again,en,yes,\n",  # an empty SMS cell is no "no"
    )
    assert address(CsvAudience(path), "email") == (
        ["bob@example.com"],
        Counter({"opted out": 1, "opted out in another row": 1, "duplicate": 1}),
    )
    assert address(CsvAudience(path), "sms") == (
        ["+12125550147"],
        Counter({"opted out": 1, "no sms opt-in": 2}),
    )


def test_a_no_after_a_yes_still_wins_when_sending(tmp_path: Path) -> None:
    """Streaming meets the "no" after the "yes": preflight reports the address and the
    announcer skips it from its first row on, so the person gets nothing at all."""
    shutil.copyfile(ROOT / "channels.yaml", tmp_path / "channels.yaml")
    path = csv_file(
        tmp_path,
        HEADER
        + "ada@example.com,(201) 555-0123,Ada,en,yes,yes\n"
        + "bob@example.com,(212) 555-0147,Bob,en,yes,yes\n"
        + "ADA@example.com,201-555-0123,Ada again,en,no,no\n",
    )
    announcer = Announcer.from_config(tmp_path / "channels.yaml")
    incident = Incident.load(ROOT / "examples/incident-investigating.yaml")
    plan = announcer.preflight(incident, ["sms", "email"], audience=path)
    assert plan.channels["email"].recipients == 1
    assert plan.channels["email"].skipped == {
        "opted out": 1,
        "opted out in another row": 1,
    }
    result = announcer.send(incident, ["sms", "email"], audience=path, sandbox=True)
    assert result.counts["sms"]["sent"] == 1 and result.counts["email"]["sent"] == 1
    outbox = tmp_path / ".outagecomms" / "outbox"
    sent = [f.read_text() for f in (outbox / "sms").iterdir()] + [
        f.read_text() for f in (outbox / "email").iterdir()
    ]
    assert len(sent) == 2 and not any("ada@example.com" in t or "+12015550123" in t for t in sent)


def test_a_row_with_neither_email_nor_phone_is_counted_on_both_channels(tmp_path: Path) -> None:
    path = csv_file(tmp_path, HEADER + ",,Nobody,en-US,yes,yes\nada@example.com,,Ada,en,,\n")
    assert len(list(CsvAudience(path))) == 2, "no row is dropped by the reader"
    assert address(CsvAudience(path), "sms") == ([], Counter({"no phone number": 2}))
    assert address(CsvAudience(path), "email") == (
        ["ada@example.com"],
        Counter({"no email address": 1}),
    )


# --- unusable files --------------------------------------------------------------------------


def one_line_error(path: Path) -> str:
    with pytest.raises(AudienceError) as caught:
        list(CsvAudience(path))
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.exit_code == 2
    assert str(path) in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    message = one_line_error(tmp_path / "customers.csv")
    assert "audience file not found" in message and "--audience" in message


def test_a_folder_instead_of_a_file(tmp_path: Path) -> None:
    assert "cannot read the audience file" in one_line_error(tmp_path)


def test_no_email_or_phone_column(tmp_path: Path) -> None:
    message = one_line_error(csv_file(tmp_path, "name,locale,mail\nAda,en,ada@example.com\n"))
    assert "line 1: no 'email' or 'phone' column (found: name, locale, mail)" in message


def test_empty_file(tmp_path: Path) -> None:
    assert "the audience file is empty" in one_line_error(csv_file(tmp_path, b""))


def test_a_header_without_rows_is_an_empty_audience(tmp_path: Path) -> None:
    assert list(CsvAudience(csv_file(tmp_path, HEADER))) == []


def test_a_quote_never_closed_names_the_line_where_the_row_starts(tmp_path: Path) -> None:
    # The open quote takes in the rest of the file as one field, over the csv module's limit.
    rows = "".join(f"p{n}@example.com,+1201555{n:04d},P {n},en,yes,yes\n" for n in range(3000))
    path = csv_file(
        tmp_path,
        HEADER + "ada@example.com,+12015550123,Ada,en,yes,yes\n"
        '"bob@example.com,+12125550147,Bob,en,yes,yes\n' + rows,
    )
    assert "line 3: cannot read this row" in one_line_error(path)


# --- what spreadsheets produce ---------------------------------------------------------------


def test_excel_export_bom_crlf_blank_lines_extra_columns_quotes_and_odd_headers(
    tmp_path: Path,
) -> None:
    content = (
        "\ufeffCustomer ID, E-Mail Status , EMAIL ,Phone , Name,SMS_Opt_In,Email_OPT_IN,Notes\r\n"
        '17,ok,ada@example.com,(201) 555-0123,"Lovelace, Ada",yes,yes,'
        '"likes ""quotes"", commas"\r\n'
        "\r\n"
        ",,,,,,,\r\n"
        '18,ok,grace@example.com,"+1 212 555 0147","Hopper, Grace",1,0,"multi\r\nline note"\r\n'
        "\r\n"
    )
    items = list(CsvAudience(csv_file(tmp_path, content)))
    assert items == [
        Recipient(
            email="ada@example.com",
            phone="(201) 555-0123",
            name="Lovelace, Ada",
            sms_opt_in=True,
            email_opt_in=True,
        ),
        Recipient(
            email="grace@example.com",
            phone="+1 212 555 0147",
            name="Hopper, Grace",
            sms_opt_in=True,
            email_opt_in=False,
        ),
    ]
    assert address(items, "sms") == (["+12015550123", "+12125550147"], Counter())
    assert address(items, "email") == (["ada@example.com"], Counter({"opted out": 1}))


def test_short_rows_leave_the_missing_cells_empty(tmp_path: Path) -> None:
    path = csv_file(tmp_path, HEADER + "ada@example.com\n,+12015550123,Bo,en,yes\n")
    assert list(CsvAudience(path)) == [
        Recipient(email="ada@example.com"),
        Recipient(phone="+12015550123", name="Bo", locale="en", sms_opt_in=True),
    ]


def test_a_file_that_is_not_utf8_is_refused_naming_the_line_never_garbled(
    tmp_path: Path,
) -> None:
    content = (
        HEADER.encode()
        + b"bob@example.com,+12125550147,Bob,en,yes,yes\n"
        + "zoë@example.com,+12015550123,José,fr,yes,yes\n".encode("latin-1")
    )
    message = one_line_error(csv_file(tmp_path, content))
    assert "audience.csv, line 3: not UTF-8 text (byte 0xeb)" in message
    assert "Save the file as UTF-8" in message


def test_every_iteration_reads_the_file_afresh(tmp_path: Path) -> None:
    path = csv_file(tmp_path, HEADER + "ada@example.com,,Ada,en,,\n")
    audience = CsvAudience(path)
    assert len(list(audience)) == 1
    path.write_text(HEADER + "ada@example.com,,Ada,en,,\nbob@example.com,,Bob,en,,\n")
    assert len(list(audience)) == 2


# --- a million rows --------------------------------------------------------------------------


def test_a_million_rows_are_streamed_not_loaded(tmp_path: Path) -> None:
    rows = 1_000_000
    path = tmp_path / "million.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER)
        for start in range(0, rows, 10_000):
            handle.write(
                "".join(
                    f"person{n}@example.com,+1201555{n % 10_000:04d},Person {n},en-US,"
                    f"{'maybe' if n % 1000 == 999 else 'yes'},yes\n"
                    for n in range(start, start + 10_000)
                )
            )
    size = path.stat().st_size
    assert size > 60_000_000

    # CPU time, not wall time: the bound is about this code, not a busy shared machine.
    started = time.process_time()
    counts: Counter[str] = Counter()
    last = None
    for item in CsvAudience(path):
        counts[type(item).__name__] += 1
        last = item
    assert counts == {"Recipient": 999_000, "CsvRecipient": 1_000}
    assert isinstance(last, CsvRecipient) and last.unreadable == {"sms_opt_in"}
    assert time.process_time() - started < 30

    # Memory, over the first 50,000 rows (tracing every allocation makes Python ~6x slower):
    # reading the file whole, or keeping the rows, would show up at once as megabytes.
    stream = iter(CsvAudience(path))
    tracemalloc.start()
    try:
        seen = sum(1 for _ in itertools.islice(stream, 50_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        stream.close()  # type: ignore[attr-defined]
    assert seen == 50_000
    assert peak < 1_000_000, f"peak {peak} bytes while streaming a {size}-byte file"


def test_the_sending_pass_reuses_the_numbers_preflight_parsed_unless_a_row_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from outagecomms import audience

    rows: list[Recipient | SkippedRow] = [
        Recipient(phone="(201) 555-0123", sms_opt_in="yes"),
        SkippedRow(line=3, reason="bad row"),
        Recipient(phone="not a number", sms_opt_in="yes"),
        Recipient(phone="(201) 555-0124", sms_opt_in="yes"),
    ]
    memo = audience.NumberMemo()
    targets = audience.Targets("sms", "US", numbers=memo)
    first = [targets.address(row) for row in rows]
    assert first == ["+12015550123", None, None, "+12015550124"]

    parsed: list[str] = []
    real = audience.phone_number
    monkeypatch.setattr(
        audience, "phone_number", lambda raw, region: parsed.append(raw) or real(raw, region)
    )
    rows[3] = Recipient(phone="(201) 555-0199", sms_opt_in="yes")  # edited in between
    targets = audience.Targets("sms", "US", numbers=memo)
    again = [targets.address(row) for row in rows]
    assert again == ["+12015550123", None, None, "+12015550199"]
    assert parsed == ["(201) 555-0199"], "only the changed row is parsed again"
