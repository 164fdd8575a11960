"""``outagecomms report`` on a rehearsed incident: the JSON object of DESIGN §14, the
terminal table at 80 columns, and the self-contained html file with its charts."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from .conftest import Run

INCIDENT = "2026-11-22-email-outage"
CHANNEL_KEYS = {
    "kind",
    "planned",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "unknown",
    "pending",
    "skipped",
    "first_sent_after_s",
    "p50_sent_after_s",
    "p95_sent_after_s",
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scaffold's story rehearsed in the sandbox: investigating, then resolved."""
    import os
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("report")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OUTAGECOMMS_")}
    cli = [sys.executable, "-m", "outagecomms"]
    subprocess.run([*cli, "init", "shop"], cwd=root, env=env, check=True, capture_output=True)
    for name in ("investigating", "resolved"):
        subprocess.run(
            [*cli, "send", f"examples/incident-{name}.yaml", "--sandbox", "--yes"],
            cwd=root / "shop",
            env=env,
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
    return root / "shop"


def test_json_is_one_object_with_exactly_the_documented_keys(run: Run, shop: Path) -> None:
    done = run("report", INCIDENT, "--sandbox", "--format", "json", cwd=shop)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"incident", "announcements", "channels", "reach", "opt_outs"}
    assert report["incident"]["id"] == INCIDENT
    assert report["incident"]["title"] == "Email delivery is back to normal"
    assert report["incident"]["resolved_at"] == report["announcements"][1]["first_sent_at"]
    assert [a["status"] for a in report["announcements"]] == ["investigating", "resolved"]
    for channel in report["channels"].values():
        assert set(channel) == CHANNEL_KEYS
    outbox = shop / ".outagecomms" / "outbox"
    sms = report["channels"]["sms"]
    assert sms["sent"] == len(list((outbox / "sms").glob("*.txt")))
    assert sms["planned"] == sms["sent"] and sms["failed"] == sms["unknown"] == 0
    assert all(isinstance(n, int) for n in sms["skipped"].values())
    email = report["channels"]["email"]
    assert email["sent"] == len(list((outbox / "email").glob("*.eml")))
    assert report["channels"]["social"]["sent"] == 2  # one post per announcement
    assert 0 <= email["first_sent_after_s"] <= email["p50_sent_after_s"]
    assert email["p50_sent_after_s"] <= email["p95_sent_after_s"]
    assert report["reach"] > 0
    assert report["opt_outs"] == {"total": 0, "by_source": {}}


def test_table_fits_80_columns_and_names_the_incident_once(run: Run, shop: Path) -> None:
    done = run("report", INCIDENT, "--sandbox", env={"COLUMNS": "80"}, cwd=shop)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, done.stdout
    assert done.stdout.count(INCIDENT) == 1
    assert "investigating" in done.stdout and "resolved" in done.stdout
    assert "Messages" in done.stdout and "Reached" in done.stdout


class _Page(HTMLParser):
    """Everything in an html file that a browser could fetch, and what the test looks for."""

    def __init__(self) -> None:
        super().__init__()
        self.fetchable: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        self._in_title = tag == "title"
        for name in ("src", "href", "xlink:href", "srcset", "data", "poster"):
            value = (found.get(name) or "").strip()
            if value and not value.startswith("#"):
                self.fetchable.append(f"{tag} {name}={value}")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


def test_html_is_one_self_contained_file_with_the_numbers_and_charts(run: Run, shop: Path) -> None:
    target = shop / "post-mortem.html"
    done = run("report", INCIDENT, "--sandbox", "-f", "html", "--output", str(target), cwd=shop)
    assert done.returncode == 0, done.stderr
    assert "Wrote the report to" in done.stdout
    text = target.read_text()
    page = _Page()
    page.feed(text)
    assert page.fetchable == []
    assert re.findall(r"url\(\s*['\"]?(?!#)", text) == []  # only url(#clip-path) inside
    assert "@import" not in text
    tags = [tag for tag, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags
    assert page.title == "Impact report: Email delivery is back to normal"
    figures = [attrs.get("id") for tag, attrs in page.tags if tag == "figure"]
    assert figures == ["chart-sent-over-time", "chart-funnel"]
    assert tags.count("svg") == 2
    report = json.loads(run("report", INCIDENT, "--sandbox", "-f", "json", cwd=shop).stdout)
    sms = report["channels"]["sms"]
    assert f"<td>{sms['sent']:,}</td>" in text and "<td>sms</td>" in text
    assert "Sandbox rehearsal" in text


def test_html_goes_to_stdout_when_it_is_piped(run: Run, shop: Path) -> None:
    done = run("report", INCIDENT, "--sandbox", "--format", "html", cwd=shop)
    assert done.returncode == 0 and done.stdout.startswith("<!doctype html>")


def test_table_and_json_go_to_a_file_with_output(run: Run, shop: Path) -> None:
    done = run("report", INCIDENT, "--sandbox", "--output", "report.txt", cwd=shop)
    assert done.returncode == 0 and "Wrote the report to report.txt" in done.stdout
    text = (shop / "report.txt").read_text()
    assert "Messages" in text and "\x1b[" not in text  # plain text, no colour codes
    done = run("report", INCIDENT, "--sandbox", "-f", "json", "-o", "report.json", cwd=shop)
    assert json.loads((shop / "report.json").read_text())["incident"]["id"] == INCIDENT


def test_bad_input_exits_2(run: Run, shop: Path) -> None:
    live = run("report", INCIDENT, cwd=shop)
    assert live.returncode == 2 and "only sent in the sandbox: add --sandbox" in live.stderr
    unknown = run("report", "2026-11-22-email-outag", "--sandbox", cwd=shop)
    assert unknown.returncode == 2 and f"did you mean '{INCIDENT}'" in unknown.stderr
    fmt = run("report", INCIDENT, "--sandbox", "--format", "pdf", cwd=shop)
    assert fmt.returncode == 2 and "table, json or html" in fmt.stderr
    where = run(
        "report", INCIDENT, "--sandbox", "-o", str(shop / "no" / "such" / "r.html"), cwd=shop
    )
    assert where.returncode == 2 and "cannot write" in where.stderr


def test_nothing_recorded_yet_exits_2(run: Run, tmp_path: Path) -> None:
    assert run("init", "empty").returncode == 0
    done = run("report", INCIDENT, cwd=tmp_path / "empty")
    assert done.returncode == 2 and f"no incident '{INCIDENT}'" in done.stderr
