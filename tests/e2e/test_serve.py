"""``outagecomms serve`` as a user runs it: a real process, real HTTP, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from .conftest import CLI, Run

READY_SECONDS = 30


@contextmanager
def serving(*args: str, cwd: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start ``outagecomms serve ARGS`` on a free port; yield its address and process."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OUTAGECOMMS_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    process = subprocess.Popen(
        [*CLI, "serve", "--listen", "127.0.0.1:0", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()  # "Status page of ... on http://127.0.0.1:PORT/ — ..."
        assert " on http://127.0.0.1:" in line, line + process.stderr.read()
        url = line.split(" on ", 1)[1].split("/ ", 1)[0]
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=READY_SECONDS)
        process.stdout.close()
        process.stderr.close()


def set_in_config(folder: Path, line: str, replacement: str) -> None:
    """Change one line of the scaffold's channels.yaml (its serve: block)."""
    config = folder / "channels.yaml"
    text = config.read_text()
    assert line in text
    config.write_text(text.replace(line, replacement))


@pytest.fixture
def shop(run: Run, tmp_path: Path) -> Path:
    """A folder made by ``outagecomms init``, as a newcomer has it."""
    assert run("init", "shop").returncode == 0
    return tmp_path / "shop"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_and_stops_gracefully_on_a_signal(shop: Path, sig: signal.Signals):
    with serving(cwd=shop) as (url, process):
        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200
        assert "All systems operational" in page.text and "Acme Shop" in page.text
        process.send_signal(sig)
        assert process.wait(timeout=READY_SECONDS) == 0
        assert "Stopped." in process.stdout.read()
        assert process.stderr.read() == ""


def test_sandbox_send_then_sandbox_serve_shows_the_incident(run: Run, shop: Path):
    sent = run("send", "examples/incident-investigating.yaml", "--sandbox", "--yes", cwd=shop)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    with serving("--sandbox", cwd=shop) as (url, process):
        page = httpx.get(url + "/", timeout=10).text
        assert "Email delivery is delayed" in page and "no customer saw them" in page
        status = httpx.get(url + "/api/status.json", timeout=10).json()
        assert [i["id"] for i in status["incidents"]] == ["2026-11-22-email-outage"]
        incident = httpx.get(status["incidents"][0]["url"], timeout=10)
        assert incident.status_code == 200 and "Email delivery is delayed" in incident.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=READY_SECONDS) == 0
    # The live page does not show a rehearsal.
    with serving(cwd=shop) as (url, process):
        assert "All systems operational" in httpx.get(url + "/", timeout=10).text
        assert httpx.get(url + "/api/status.json", timeout=10).json()["incidents"] == []


def test_a_send_while_serving_shows_within_seconds(run: Run, shop: Path):
    with serving("--sandbox", cwd=shop) as (url, _process):
        assert httpx.get(url + "/api/status.json", timeout=10).json()["incidents"] == []
        sent = run("send", "examples/incident-investigating.yaml", "--sandbox", "--yes", cwd=shop)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        deadline = time.monotonic() + 5
        while True:
            incidents = httpx.get(url + "/api/status.json", timeout=10).json()["incidents"]
            if incidents or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [i["id"] for i in incidents] == ["2026-11-22-email-outage"]


def test_port_in_use_is_one_line_exit_2(run: Run, shop: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--listen", f"127.0.0.1:{port}", cwd=shop, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert f"127.0.0.1:{port}: the port is already in use" in result.stderr
    assert "--listen" in result.stderr


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("nonsense", "--listen 'nonsense' is not HOST:PORT such as 127.0.0.1:8080"),
        ("127.0.0.1:99999", "the port must be between 0 and 65535"),
        (
            "no-such-host.invalid:8080",
            "no-such-host.invalid:8080: this machine has no such address",
        ),
        ("192.0.2.1:8080", "192.0.2.1:8080: this machine has no such address"),
    ],
)
def test_bad_listen_is_one_line_exit_2(run: Run, shop: Path, listen: str, message: str):
    result = run("serve", "--listen", listen, cwd=shop, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr


def test_bad_serve_config_is_exit_2(run: Run, shop: Path):
    set_in_config(shop, "# public_url: https://status.shop.example", "public_url: not-a-url")
    result = run("serve", cwd=shop, timeout=30)
    assert result.returncode == 2
    assert "serve.public_url" in result.stderr and "is not a web address" in result.stderr


def test_listen_comes_from_channels_yaml(run: Run, shop: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        set_in_config(shop, "listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}")
        result = run("serve", cwd=shop, timeout=30)
    assert (
        result.returncode == 2 and f"127.0.0.1:{port}: the port is already in use" in result.stderr
    )


def test_serve_help_names_its_options():
    result = subprocess.run([*CLI, "serve", "--help"], capture_output=True, text=True, check=True)
    assert "--listen" in result.stdout and "--sandbox" in result.stdout
