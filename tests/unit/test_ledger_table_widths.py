"""The ledger table's wrapping columns keep words whole when the terminal has room."""

from __future__ import annotations

from outagecomms.views import TABLE_COLUMNS, fitting_columns, wrap_widths

ROW = {
    "Announcement": "investigating (sandbox)",
    "Channel": "sms",
    "Recipient": "+442079460958",
    "State": "skipped",
    "Updated": "11-29 21:46:39",
    "Error": "not a mobile number",
    "Attempts": "0",
    "Provider": "",
    "Provider id": "",
}


def test_at_80_columns_every_word_is_whole_and_the_table_fits() -> None:
    columns = fitting_columns(80, announcement=True)
    widths = wrap_widths(columns, [ROW], 80)
    assert widths["Recipient"] == len("+442079460958")
    assert widths["Announcement"] >= len("investigating") and widths["Error"] >= len("mobile")
    fixed = sum(max(len(c.title), len(ROW[c.title])) for c in columns if c.title not in widths)
    assert fixed + sum(widths.values()) + 3 * len(columns) - 1 <= 80


def test_no_widths_when_every_cell_fits_on_one_line() -> None:
    assert wrap_widths(list(TABLE_COLUMNS), [ROW], 200) == {}


def test_no_widths_when_not_even_the_words_fit() -> None:
    columns = fitting_columns(40, announcement=True)
    assert wrap_widths(columns, [ROW], 40) == {}


def test_a_word_longer_than_its_column_folds() -> None:
    row = ROW | {"Recipient": "someone.with.a.long.name@example.com"}
    widths = wrap_widths(fitting_columns(80, announcement=True), [row], 80)
    assert 14 <= widths["Recipient"] < len(row["Recipient"]), "its minimum, then spare room"
    assert widths["Announcement"] == len("investigating") and widths["Error"] == len("mobile")
