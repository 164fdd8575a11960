"""A throwaway PostgreSQL server for the tests (PROVIDERS.md's recipe).

Started once per test session on a free port of 127.0.0.1, with its data in a temporary
folder, run as the ``postgres`` user when the tests run as root. Missing binaries skip
the PostgreSQL tests locally and fail them in CI (``CI`` set): they never skip there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)


def _bin_dir() -> Path | None:
    for candidate in (os.environ.get("PG_BIN"), *_BIN_DIRS):
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    """A running server; ``url(db)`` is a DSN for one of its databases."""

    port: int
    user: str = "postgres"

    def url(self, database: str = "postgres", user: str | None = None) -> str:
        return f"postgresql://{user or self.user}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def add_role(self, name: str, password: str) -> None:
        """A login role with a password and no privilege beyond PostgreSQL's defaults
        (since 15 it may not create tables in a database it does not own)."""
        self.admin(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")

    def new_database(self, user: str | None = None) -> str:
        """A fresh, empty database (owned by the superuser); its DSN for ``user``."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.admin(f"CREATE DATABASE {name}")
        return self.url(name, user)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        message = "PostgreSQL binaries (initdb, pg_ctl) not found; .ci/run installs them"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    root = os.geteuid() == 0
    data = Path(tempfile.mkdtemp(prefix="outagecomms-pg-"))
    if root:
        shutil.chown(data, "postgres", "postgres")
    as_user = ["runuser", "-u", "postgres", "--"] if root else []
    port = _free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "check": True}
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "initdb"),
            "-D",
            str(data / "db"),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        **quiet,
    )
    # The superuser connects without a password; every other role needs its password.
    (data / "db" / "pg_hba.conf").write_text(
        "local all all trust\n"
        "host all postgres 127.0.0.1/32 trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data / "db"),
            "-w",
            "-l",
            str(data / "log"),
            "-o",
            options,
            "start",
        ],
        **quiet,
    )
    try:
        yield PostgresServer(port)
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(data, ignore_errors=True)
