from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from outagecomms import Incident, IncidentError

EXAMPLES = Path(__file__).parents[2] / "examples"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "incident.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_incidents_load() -> None:
    statuses = {Incident.load(p).status for p in EXAMPLES.glob("incident-*.yaml")}
    assert statuses == {"investigating", "identified", "monitoring", "resolved"}


def test_fields_and_announcement_key(tmp_path: Path) -> None:
    incident = Incident.load(
        write(
            tmp_path,
            "id: mail-down\ntitle: Mail is down\nstatus: identified\n"
            "started_at: 2026-11-22T09:40:00Z\neta: 2026-11-22T12:00:00+01:00\n",
        )
    )
    assert incident.key == "mail-down/identified"
    assert incident.severity == "major"
    assert incident.eta == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    assert incident.model_copy(update={"update": "2"}).key == "mail-down/identified/2"


def test_started_at_defaults_to_now() -> None:
    incident = Incident(id="x", title="T")
    assert (datetime.now(UTC) - incident.started_at).total_seconds() < 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id: a\ntitle: T\ncolour: red\n", "line 3: 'colour' is not a known key"),
        ("title: T\n", "'id' is required but missing"),
        ("id: a\n", "'title' is required but missing"),
        ("id: a\ntitle: T\nstatus: fixed\n", "line 3: 'status'"),
        ("id: a\ntitle: T\nseverity: huge\n", "line 3: 'severity'"),
        ("id: a\ntitle: T\neta: tomorrow\n", "line 3: 'eta'"),
        ("id: a\ntitle: T\nstarted_at: 2026-13-45\n", "line 3: 'started_at'"),
        ("id: Bad_ID\ntitle: T\n", "line 1: 'id'"),
        ("id: a\ntitle: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a YAML mapping"),
    ],
)
def test_bad_incident_names_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(IncidentError) as caught:
        Incident.load(write(tmp_path, text))
    message = str(caught.value)
    assert expected in message
    assert "incident.yaml" in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IncidentError, match="not found"):
        Incident.load(tmp_path / "nope.yaml")
