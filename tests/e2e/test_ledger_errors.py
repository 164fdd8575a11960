"""A ledger that cannot be used: exit 2 with one line naming it (a PostgreSQL password never
shown), nothing sent; read-only commands still read a read-only ledger file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import PostgresServer

from .conftest import Run
from .test_bad_input import INCIDENT, SANDBOX, refused

LEDGER = ".outagecomms/ledger.db"


def no_outbox(shop: Path) -> None:
    assert not (shop / ".outagecomms" / "outbox").exists(), "nothing may be sent"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def use_ledger(shop: Path, url: str) -> None:
    config = shop / "channels.yaml"
    text = config.read_text().replace(f"ledger: sqlite:///{LEDGER}", f"ledger: {url}")
    assert url in text
    config.write_text(text)


# --- SQLite files that cannot be a ledger ---------------------------------------------------


def test_a_corrupt_ledger_file_is_refused_by_name(run: Run, shop: Path) -> None:
    (shop / ".outagecomms").mkdir()
    (shop / LEDGER).write_text("this is not a database\n" * 100)
    line = refused(run("send", INCIDENT, *SANDBOX, cwd=shop), "ledger.db")
    assert "not an outagecomms ledger" in line
    no_outbox(shop)
    shown = run("ledger", cwd=shop)
    assert shown.returncode == 2 and "ledger.db" in shown.stderr
    assert "Traceback" not in shown.stderr


def test_a_folder_as_ledger_is_refused_by_name(run: Run, shop: Path) -> None:
    (shop / LEDGER).mkdir(parents=True)
    line = refused(run("send", INCIDENT, *SANDBOX, cwd=shop), "ledger.db")
    assert "folder" in line
    for command in (["ledger"], ["report", "x"]):
        shown = run(*command, cwd=shop)
        assert shown.returncode == 2 and "ledger.db" in shown.stderr, shown.stderr


def test_a_ledger_whose_folder_cannot_exist_is_refused(run: Run, shop: Path) -> None:
    (shop / "afile").write_text("")
    use_ledger(shop, "sqlite:///afile/ledger.db")
    line = refused(run("send", INCIDENT, *SANDBOX, cwd=shop), "afile/ledger.db")
    assert "cannot be created" in line
    no_outbox(shop)


@pytest.fixture
def read_only(shop: Path, run: Run) -> Iterator[Path]:
    """A ledger with rows, made read-only (immutable as root, who ignores permissions)."""
    sent = run("send", INCIDENT, *SANDBOX, cwd=shop)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    path = shop / LEDGER
    root = os.geteuid() == 0
    if root:
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.fail(f"cannot make the ledger immutable: {made.stderr}")
    else:
        path.chmod(0o444)
    yield path
    if root:
        subprocess.run(["chattr", "-i", str(path)], check=False)
    else:
        path.chmod(0o644)


def test_a_read_only_ledger_refuses_a_send_but_can_be_read(
    run: Run, shop: Path, read_only: Path
) -> None:
    before = len(list((shop / ".outagecomms" / "outbox").rglob("*.*")))
    line = refused(run("send", INCIDENT, "--sandbox", "--yes", cwd=shop), "ledger.db")
    assert "read-only" in line
    assert len(list((shop / ".outagecomms" / "outbox").rglob("*.*"))) == before
    shown = run("ledger", "--format", "json", cwd=shop)
    assert shown.returncode == 0, shown.stderr
    # The rehearsal's rows as it left them: sent, and the audience rows it skipped (with why).
    assert {row["state"] for row in json.loads(shown.stdout)} == {"sent", "skipped"}
    report = run("report", "2026-11-22-email-outage", "--sandbox", cwd=shop)
    assert report.returncode == 0, report.stderr
    assert "investigating" in report.stdout


# --- the ledger URL -------------------------------------------------------------------------


def test_outagecomms_ledger_wins_over_the_config(run: Run, shop: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "ledger.db"
    env = {"OUTAGECOMMS_LEDGER": f"sqlite:///{elsewhere}"}
    sent = run("send", INCIDENT, *SANDBOX, cwd=shop, env=env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert elsewhere.is_file() and not (shop / LEDGER).exists()
    shown = run("ledger", "--format", "json", cwd=shop, env=env)
    assert json.loads(shown.stdout), "the ledger command reads the same ledger"


def test_a_password_in_channels_yaml_is_refused_and_not_shown(run: Run, shop: Path) -> None:
    use_ledger(shop, "postgresql://outagecomms:hunter2-secret@127.0.0.1:1/outagecomms")
    line = refused(run("send", INCIDENT, *SANDBOX, cwd=shop), "channels.yaml", "PGPASSWORD")
    assert "hunter2-secret" not in line
    no_outbox(shop)


# --- PostgreSQL that cannot be used ---------------------------------------------------------


def test_an_unreachable_postgresql_is_bad_config(run: Run, shop: Path) -> None:
    url = f"postgresql://outagecomms:s3cret-pw-77@127.0.0.1:{closed_port()}/outagecomms"
    result = run("send", INCIDENT, *SANDBOX, cwd=shop, env={"OUTAGECOMMS_LEDGER": url})
    line = refused(result, "ledger postgresql://outagecomms:***@127.0.0.1")
    assert "s3cret-pw-77" not in result.stdout + result.stderr
    assert "cannot connect" in line
    no_outbox(shop)


def test_a_wrong_password_is_bad_config_and_never_shown(
    run: Run, shop: Path, postgres: PostgresServer
) -> None:
    postgres.add_role("wrongpw", "right-pass-123")
    url = postgres.new_database(user="wrongpw:wrong-pass-999")
    result = run("send", INCIDENT, *SANDBOX, cwd=shop, env={"OUTAGECOMMS_LEDGER": url})
    line = refused(result, "ledger postgresql://wrongpw:***@", "password authentication failed")
    assert "wrong-pass-999" not in result.stdout + result.stderr + line
    no_outbox(shop)
    shown = run("ledger", cwd=shop, env={"OUTAGECOMMS_LEDGER": url})
    assert shown.returncode == 2 and "wrong-pass-999" not in shown.stdout + shown.stderr


def test_no_permission_to_create_tables_is_bad_config(
    run: Run, shop: Path, postgres: PostgresServer
) -> None:
    postgres.add_role("nocreate", "pass-nocreate-1")
    url = postgres.new_database(user="nocreate:pass-nocreate-1")
    result = run("send", INCIDENT, *SANDBOX, cwd=shop, env={"OUTAGECOMMS_LEDGER": url})
    refused(result, "ledger postgresql://nocreate:***@", "no permission")
    assert "pass-nocreate-1" not in result.stdout + result.stderr
    no_outbox(shop)
