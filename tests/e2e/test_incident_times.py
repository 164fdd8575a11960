"""Timestamps in an incident file are timestamps: what a person writes naturally either
means what they meant or is refused with the forms that work (never 00:12 on 1 January 1970)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Run

FORMS = "write a date and a time, e.g. 2026-11-22T12:00:00Z, 2026-11-22 12:00 (read as UTC)"


def incident(shop: Path, lines: str) -> str:
    (shop / "incident.yaml").write_text(
        "id: mail-down\ntitle: Mail is down\nsummary: Orders are safe.\n" + lines
    )
    return "incident.yaml"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("started_at: 2026-11-22T09:40:00Z\neta: 12:00\n", "'eta' is a number"),
        ("started_at: 2026-11-22T09:40:00Z\neta: '12:00'\n", "'eta' is not a date and time"),
        ("started_at: 2026-11-22T09:40:00Z\neta: 1764000000\n", "'eta' is a number"),
        ("started_at: 9:40\n", "'started_at' is a number"),
        ("started_at: 2026-11-22\n", "'started_at' is not a date and time"),
        (
            "started_at: 2026-11-22T09:40:00Z\neta: 2026-11-22 08:00\n",
            "line 5: 'eta' (2026-11-22T08:00:00Z) is before 'started_at' (2026-11-22T09:40:00Z)",
        ),
    ],
    ids=["yaml-sexagesimal", "bare-time", "epoch", "start-bare-time", "date-only", "eta-first"],
)
def test_a_time_that_is_not_a_timestamp_is_refused(
    run: Run, shop: Path, lines: str, expected: str
) -> None:
    result = run("send", incident(shop, lines), "--sandbox", "--yes")
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    if "before" not in expected:
        assert FORMS in result.stderr
    assert "line " in result.stderr and "Traceback" not in result.stderr
    assert not (shop / ".outagecomms").exists(), "nothing sent or recorded"


@pytest.mark.parametrize(
    ("eta", "utc"),
    [
        ("2026-11-22 12:00", "2026-11-22T12:00:00Z"),
        ("2026-11-22T12:00:00Z", "2026-11-22T12:00:00Z"),
        ("2026-11-22T13:00+01:00", "2026-11-22T12:00:00Z"),
        ("'2026-11-22 07:00 -05:00'", "2026-11-22T12:00:00Z"),
    ],
)
def test_accepted_forms_and_offsets_reach_the_banner_in_utc(
    run: Run, shop: Path, eta: str, utc: str
) -> None:
    path = incident(shop, f"status: Identified\nstarted_at: 2026-11-22T09:40:00Z\neta: {eta}\n")
    result = run("send", path, "--sandbox", "--yes", "--channel", "banner")
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads((shop / ".outagecomms/outbox/banner/status.json").read_text())
    assert status["eta"] == utc
    assert status["status"] == "identified", "'Identified' is the identified status"
