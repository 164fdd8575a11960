"""What a marketing person meets at the command line: a changed incident refused under a
key already sent, the banner repaired by a re-run, the ledger readable at 80 columns and
safe in a spreadsheet, ``check`` naming what to set, and errors that say where to look."""

from __future__ import annotations

import csv
import email
import io
import json
import os
import pty
import shutil
import subprocess
import sys
import time
from email import policy
from pathlib import Path

from outagecomms.store import open_store

from .conftest import CLI, Run

INCIDENT = "examples/incident-investigating.yaml"
SANDBOX = ("--sandbox", "--yes")
KEY = "2026-11-22-email-outage/investigating"


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def outbox(shop: Path) -> Path:
    return shop / ".outagecomms" / "outbox"


# --- content changed under a key already sent; the banner is a state ----------------------------


def test_an_edited_eta_is_refused_then_sent_as_an_update(run: Run, shop: Path) -> None:
    ok(run("send", INCIDENT, *SANDBOX))
    sms_before = sorted((outbox(shop) / "sms").iterdir())
    edited = (shop / INCIDENT).read_text().replace("T12:00:00Z", "T13:30:00Z")
    (shop / "later.yaml").write_text(edited)

    refused = run("send", "later.yaml", *SANDBOX)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "eta: 2026-11-22T12:00:00Z -> 2026-11-22T13:30:00Z" in refused.stderr
    assert f"the incident changed since announcement {KEY} was sent" in refused.stderr
    assert "add 'update: <label>'" in refused.stderr and refused.stdout == ""
    assert sorted((outbox(shop) / "sms").iterdir()) == sms_before, "nothing sent"
    status = json.loads((outbox(shop) / "banner" / "status.json").read_text())
    assert status["eta"] == "2026-11-22T12:00:00Z"

    (shop / "later.yaml").write_text(edited + "update: eta-1330\n")
    ok(run("send", "later.yaml", *SANDBOX))
    status = json.loads((outbox(shop) / "banner" / "status.json").read_text())
    assert status["eta"] == "2026-11-22T13:30:00Z", "the update reached the banner"
    texts = [f.read_text() for f in (outbox(shop) / "sms").glob("*eta-1330*")]
    assert any("Expected fix by 1:30 PM UTC." in text for text in texts), "en-US writes 1:30 PM"
    assert all("1:30 PM UTC" in text or "13:30" in text for text in texts), "the new eta"
    assert not any("12:00" in text for text in texts), "no text keeps the old eta"


def test_a_rerun_repairs_a_stale_banner(run: Run, shop: Path) -> None:
    ok(run("send", INCIDENT, *SANDBOX))
    banner = outbox(shop) / "banner" / "banner.html"
    published = banner.read_text()
    banner.write_text("<div>someone's old banner</div>")
    texts_before = sorted((outbox(shop) / "sms").iterdir())

    again = ok(run("send", INCIDENT, *SANDBOX))
    assert "Nothing new to send" in again and "banner: republished" in again
    assert banner.read_text() == published
    sms = json.loads(ok(run("ledger", "--format", "json", "--channel", "sms")))
    attempts = {(row["state"], row["attempts"]) for row in sms}
    assert attempts == {("sent", 1), ("skipped", 0)}, "only the banner is written again"
    assert sorted((outbox(shop) / "sms").iterdir()) == texts_before


def test_an_older_announcement_does_not_turn_the_banner_back(run: Run, shop: Path) -> None:
    ok(run("send", INCIDENT, *SANDBOX))
    ok(run("send", "examples/incident-resolved.yaml", *SANDBOX))
    again = ok(run("send", INCIDENT, *SANDBOX))
    assert "republished" not in again
    status = json.loads((outbox(shop) / "banner" / "status.json").read_text())
    assert status["status"] == "resolved"


# --- the ledger -----------------------------------------------------------------------------------


def test_ledger_filters_and_a_table_at_80_columns(run: Run, shop: Path) -> None:
    ok(run("send", INCIDENT, *SANDBOX))
    ok(run("send", "examples/incident-resolved.yaml", *SANDBOX))
    narrow = {"COLUMNS": "80"}

    table = ok(run("ledger", "2026-11-22-email-outage", "--channel", "sms", env=narrow))
    lines = table.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "Ledger of incident 2026-11-22-email-outage" in table
    assert "+12015550123" in table and "…" not in table, "cells wrap, never cut"
    assert "2026-11-22-email-outage/" not in table, "the incident id is said once, in the title"
    assert "investigating" in table and "resolved" in table
    assert "Not shown at this width: Attempts, Provider, Provider id" in table

    one = json.loads(ok(run("ledger", "--announcement", KEY, "--channel", "team", "-f", "json")))
    assert [(r["announcement"], r["channel"]) for r in one] == [(KEY, "team")]
    sent = json.loads(ok(run("ledger", "--state", "sent", "--limit", "3", "--format", "json")))
    assert len(sent) == 3 and {r["state"] for r in sent} == {"sent"}
    assert ok(run("ledger", "--state", "failed", "--format", "json")) == "[]\n"
    assert ok(run("ledger", "not-an-incident", "--format", "json")) == "[]\n"

    bad = run("ledger", "--state", "sendt")
    assert bad.returncode == 2 and "'sendt' is not a state; use one of pending" in bad.stderr


def test_ledger_in_a_zone_shows_local_times(run: Run, shop: Path) -> None:
    config = shop / "channels.yaml"
    config.write_text(config.read_text().replace("  timezone: UTC ", "  timezone: Asia/Tokyo ", 1))
    ok(run("send", INCIDENT, *SANDBOX, "--channel", "team"))
    [row] = json.loads(ok(run("ledger", "--format", "json")))
    utc_hour = int(row["updated_at"][11:13])
    table = ok(run("ledger"))
    assert "Started 2026-11-22 09:40 UTC (18:40 Asia/Tokyo)" in ok(run("preview", INCIDENT))
    assert "Updated (Asia/Tokyo)" in table
    assert f" {(utc_hour + 9) % 24:02d}:" in table


def test_ledger_table_of_more_than_a_screen_says_how_to_export(run: Run, shop: Path) -> None:
    with open_store("sqlite:///.outagecomms/ledger.db", base_dir=shop) as store:
        store.add_pending(
            KEY, "2026-11-22-email-outage", "sms", [f"+1201555{n:04d}" for n in range(1500)]
        )
    table = ok(run("ledger"))
    assert "… and 500 more row(s)" in table
    assert "outagecomms ledger --format csv > ledger.csv" in table
    assert table.count("+1201555") == 1000


def test_rich_markup_and_spreadsheet_formulas_are_harmless(run: Run, shop: Path) -> None:
    nasty = [
        '=HYPERLINK("http://evil")',
        "@SUM(A1)",
        "-2+3",
        "+1+cmd|' /C calc'!A0",
        "[/]",
        "[bold]x",
    ]
    phone = "+12015550123"
    with open_store("sqlite:///.outagecomms/ledger.db", base_dir=shop) as store:
        store.add_pending(KEY, "2026-11-22-email-outage", "email", [*nasty, phone])
    assert run("ledger", "[/]").returncode == 0
    table = ok(run("ledger", env={"COLUMNS": "200"}))
    assert "[bold]x" in table and "[/]" in table, "markup shown as written"

    rows = list(csv.DictReader(io.StringIO(ok(run("ledger", "--format", "csv")))))
    cells = {row["recipient"] for row in rows}
    assert {"'" + value for value in nasty if value[0] in "=@+-"} <= cells
    assert "[/]" in cells and "[bold]x" in cells
    assert phone in cells, "a phone number stays as it is: it cannot hold a formula"
    assert all(not c.startswith(("=", "@", "-")) for row in rows for c in row.values())


# Forks the command from a small process and reports its peak memory: measured straight
# from pytest, the child's peak would include pytest's own memory at the fork.
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "outagecomms", *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"{usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _peak_rss_kib(args: list[str], cwd: Path) -> tuple[int, bytes]:
    """Run ``outagecomms *args``; its peak resident memory (KiB) and its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTAGECOMMS_")}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], cwd=cwd, capture_output=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return int(done.stderr.decode().strip().splitlines()[-1]), done.stdout


def test_json_and_csv_stream_in_constant_memory(shop: Path) -> None:
    """Ten times the rows must not cost ten times the memory: the output is written as
    the store pages the rows in (a list of them all grew ~0.6 KiB a row)."""
    peaks: dict[int, dict[str, int]] = {}
    for count in (20_000, 200_000):
        ledger = shop / f"l{count}"
        ledger.mkdir()
        shutil.copy(shop / "channels.yaml", ledger / "channels.yaml")
        with open_store("sqlite:///.outagecomms/ledger.db", base_dir=ledger) as store:
            store.add_pending(
                KEY, "2026-11-22-email-outage", "sms", [f"+1{n:010d}" for n in range(count)]
            )
        peaks[count] = {}
        for form in ("json", "csv"):
            peak, output = _peak_rss_kib(["ledger", "--format", form], ledger)
            peaks[count][form] = peak
            if form == "json":
                assert len(json.loads(output)) == count
            else:
                assert output.count(b"\n") == count + 1
    for form in ("json", "csv"):
        growth = peaks[200_000][form] - peaks[20_000][form]
        assert growth < 25_000, f"{form}: {growth} KiB more for 180,000 more rows ({peaks})"


# --- check ----------------------------------------------------------------------------------------


def test_check_prints_variable_names_whole_and_checks_the_audience(run: Run, shop: Path) -> None:
    result = run("check", env={"COLUMNS": "80"})
    assert result.returncode == 1, result.stdout + result.stderr
    names = [line.strip() for line in result.stdout.splitlines() if "OUTAGECOMMS_" in line]
    assert "OUTAGECOMMS_CHANNELS__SOCIAL__CONSUMER_KEY" in names
    assert "OUTAGECOMMS_CHANNELS__SOCIAL__CONSUMER_SECRET" in names
    assert "OUTAGECOMMS_CHANNELS__EMAIL__FALLBACK__API_KEY" in names
    assert "…" not in result.stdout
    assert "Audience examples/audience.csv: OK (first 20 rows: 20 usable" in result.stdout

    (shop / "examples" / "audience.csv").unlink()
    missing = run("check")
    assert missing.returncode == 2
    assert "Audience examples/audience.csv:" in missing.stdout and "not found" in missing.stdout

    (shop / "examples" / "audience.csv").write_text("mail,mobile\nada@example.com,+1201\n")
    header = run("check")
    assert header.returncode == 2 and "no 'email' or 'phone' column" in header.stdout


# --- getting around -------------------------------------------------------------------------------


def test_wrong_folder_says_where_it_looked(run: Run, shop: Path) -> None:
    ok(run("send", INCIDENT, *SANDBOX))
    inside = run("ledger", cwd=shop / "examples")
    assert inside.returncode == 2
    assert f"no config file at {shop / 'examples' / 'channels.yaml'}" in inside.stderr
    assert (
        "holds a ledger" in inside.stderr and "--config PATH or OUTAGECOMMS_CONFIG" in inside.stderr
    )
    assert "init" not in inside.stderr, "a set-up folder is near: no advice to start afresh"

    above = shop / "above"
    (above / "my-shop").mkdir(parents=True)
    shutil.copy(shop / "channels.yaml", above / "my-shop" / "channels.yaml")
    assert "a set-up folder is right here: cd my-shop," in run("ledger", cwd=above).stderr

    after = run(
        "ledger", "--config", str(shop / "channels.yaml"), "--format", "json", cwd=shop / "examples"
    )
    assert after.returncode == 0 and json.loads(after.stdout), "global options after the command"


def test_version_and_option_types_in_words(run: Run) -> None:
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("outagecomms 0.")
    helped = run("send", "--help")
    assert "<bool>" not in helped.stdout and "<list" not in helped.stdout
    assert "<path>" not in helped.stdout and "PATH" in helped.stdout


def _in_a_terminal(args: list[str], cwd: Path, answer: bytes | None) -> tuple[int, str]:
    """Run the CLI with a terminal as its input (so it may ask); answer once if given."""
    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTAGECOMMS_")}
    process = subprocess.Popen(
        [*CLI, *args],
        cwd=cwd,
        stdin=child,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**env, "COLUMNS": "120"},
    )
    os.close(child)
    if answer is not None:
        os.write(main, answer)
    try:
        output, _ = process.communicate(timeout=60)
    finally:
        os.close(main)
    return process.returncode, output.decode()


def test_no_confirmation_when_nothing_is_left_to_send(shop: Path) -> None:
    code, output = _in_a_terminal(["send", INCIDENT, "--sandbox"], shop, b"y\n")
    assert code == 0 and "Send this announcement to the sandbox outbox?" in output
    code, output = _in_a_terminal(["send", INCIDENT, "--sandbox"], shop, None)
    assert code == 0, output
    assert "Send this announcement" not in output and "Nothing new to send" in output


def test_team_message_names_the_channels_used_and_calms_down_when_recovering(
    run: Run, shop: Path
) -> None:
    ok(run("send", INCIDENT, *SANDBOX, "--channel", "sms", "--channel", "team"))
    [alert] = [f.read_text() for f in (outbox(shop) / "team").iterdir()]
    assert ":rotating_light:" in alert and "by sms (twilio)." in alert and "smtp" not in alert
    ok(run("send", "examples/incident-monitoring.yaml", *SANDBOX, "--channel", "team"))
    texts = [f.read_text() for f in (outbox(shop) / "team").iterdir()]
    calm = next(t for t in texts if "monitoring" in t)
    assert ":rotating_light:" not in calm and "Only the team is told" in calm


def test_progress_shows_rate_and_time_left(run: Run, shop: Path) -> None:
    result = run("send", INCIDENT, *SANDBOX, "--channel", "sms")
    line = next(line for line in result.stderr.splitlines() if line.startswith("sms"))
    assert "/s" in line and "left" in line, line


def test_the_email_greets_by_first_name_and_has_clean_parts(run: Run, shop: Path) -> None:
    config = shop / "channels.yaml"
    config.write_text(
        config.read_text().replace(
            "  name: Acme Shop\n",
            "  name: Acme Shop\n  postal_address: 1 Market St, Springfield\n"
            "  brand_color: '#aa3300'\n",
        )
    )
    ok(run("send", "examples/incident-resolved.yaml", *SANDBOX, "--channel", "email"))
    [eml] = (outbox(shop) / "email").glob("*--ada@example.com.eml")
    mail = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert text.startswith("Hi Ada,") and "Lovelace" not in text
    assert "is behind us" not in text and "The problem is fixed." in text
    assert "SORRY10" in text and "SORRY10" in html
    assert "1 Market St, Springfield" in text and "1 Market St, Springfield" in html
    assert "#aa3300" in html and '<meta charset="utf-8">' in html
    assert all(part["MIME-Version"] is None for part in mail.iter_parts())


def test_init_next_hint_runs_as_written(tmp_path: Path) -> None:
    """``init`` run through the venv's script without activating it: the hint it prints
    must work as typed after ``cd`` (no 'command not found')."""
    script = Path(sys.executable).with_name("outagecomms")
    made = subprocess.run(
        [str(script), "init", "my-shop"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    hint = made.stdout.strip().splitlines()[-1].strip()
    assert hint.startswith("cd my-shop && ")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        hint, shell=True, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every message was delivered to the sandbox outbox" in done.stdout


def test_after_ctrl_c_the_summary_counts_what_was_never_reached(tmp_path: Path) -> None:
    """Rows are planned in chunks as the audience is read: stopped early, most of a large
    audience has no row yet. The summary must count them as not sent, not hide them."""
    import signal as signals

    from tests.fakes import FakeProviders

    from .test_faults import finish, prepare, start_send

    shutil.copytree(Path(__file__).parents[2] / "examples", tmp_path / "examples")
    with FakeProviders() as fakes:
        env, phones, _ = prepare(tmp_path, fakes, people=2000)
        fakes.twilio.latency = 0.3
        sending = start_send(tmp_path, env)
        while len(fakes.twilio.messages) < 20 and sending.poll() is None:
            time.sleep(0.01)
        sending.send_signal(signals.SIGINT)
        stdout, stderr = finish(sending, 60)
    assert sending.returncode == 130, stdout + stderr
    row = next(line for line in stdout.splitlines() if line.startswith("│ sms"))
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    sent_now, pending = int(cells[2]), int(cells[6])
    assert sent_now + pending + int(cells[4]) + int(cells[5]) == len(phones), row
    assert pending > 1000, "the unplanned rest is counted"
    assert "not reached yet when the run stopped" in stdout
