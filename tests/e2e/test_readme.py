"""Every code block of the README, run as a reader would run it.

Shell blocks run line by line, in order, in a copy of the repository whose ``.venv`` is
this test's own environment and with a bare ``PATH``: ``outagecomms`` is found only
after the README's ``source .venv/bin/activate``, exactly as for a new user. Real sends
have no credentials here, so they must stop before sending (exit 2); ``check`` exits 1
for the same reason. ``make demo`` runs for real; ``make test``, ``format``, ``lint``,
``bench`` and ``screenshots`` run as ``make -n`` (this suite is ``make test``: running
it here would recurse). The benchmark line runs with small numbers. Python blocks run in
the folder ``init`` made; YAML blocks are loaded as an incident or merged into
channels.yaml; the ``.env`` block is written to ``.env`` and ``check`` must then find
its variables set; the HTML snippet's script is fetched from a running ``serve``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest
import yaml

from outagecomms import Incident
from outagecomms.config import load_config
from outagecomms.errors import ConfigError

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```$", README, flags=re.M | re.S)
HANDLED = {"bash", "yaml", "python", "dotenv", "html", "nginx"}
DRY_RUN_TARGETS = {"test", "format", "lint", "bench", "screenshots"}


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCKS if lang == language]


def test_every_block_is_of_a_kind_this_file_runs() -> None:
    assert BLOCKS and {lang for lang, _ in BLOCKS} <= HANDLED


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh checkout's files, its ``.venv`` this test's environment (up to date)."""
    folder = tmp_path_factory.mktemp("clone")
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copy(ROOT / "channels.yaml", folder / "channels.yaml")
    shutil.copytree(ROOT / "examples", folder / "examples")
    shutil.copytree(ROOT / "templates", folder / "templates")
    venv = folder / ".venv"
    venv.mkdir()
    (venv / "bin").symlink_to(Path(sys.executable).parent)
    for marker in (".installed", ".installed-dev"):
        (venv / marker).touch()
    return folder


class Shell:
    """Runs README lines as a terminal would, remembering ``cd`` and ``source``."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(cwd),
            "LANG": "C.UTF-8",
            "COLUMNS": "100",
            "NO_COLOR": "1",
        }

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        words = shlex.split(line, comments=True)
        if words[0] == "cd":
            self.cwd = self.cwd / words[1]
            assert self.cwd.is_dir(), line
            return subprocess.CompletedProcess(words, 0, "", "")
        if words[:2] == ["source", ".venv/bin/activate"]:
            assert (self.cwd / ".venv" / "bin" / "activate").is_file()
            self.env["PATH"] = f"{self.cwd / '.venv' / 'bin'}:{self.env['PATH']}"
            return subprocess.CompletedProcess(words, 0, "", "")
        cwd = self.cwd
        if words[0] == "make" and words[1] in DRY_RUN_TARGETS:
            words = ["make", "-n", words[1]]
            cwd = ROOT
        if words[-2:] == ["-m", "bench"] or words[1:4] == ["-m", "bench", "fanout"]:
            words += ["--n", "200", "--email-n", "200", "--names-n", "200"]
            cwd = ROOT
        return subprocess.run(
            words, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=300
        )


def expected_exit(line: str) -> int:
    """What a line must exit with here, where no provider credentials are set."""
    words = shlex.split(line, comments=True)
    if words[1:2] == ["check"]:
        return 1
    if words[1:2] == ["send"] and "--sandbox" not in words:
        return 2
    if words[1:2] == ["report"] and "--sandbox" not in words:
        return 2  # only the sandbox was sent to here: it says to add --sandbox
    if words[1:2] == ["campaigns"]:
        return 2  # SendGrid Marketing Campaigns need a key: refused before any request
    return 0


def shell_lines(body: str) -> Iterator[str]:
    for line in body.splitlines():
        if shlex.split(line, comments=True):
            yield line


@contextlib.contextmanager
def serving(shell: Shell, line: str) -> Iterator[str]:
    """``outagecomms serve`` from the README, on a free port; its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    words = [*shlex.split(line, comments=True), "--listen", f"127.0.0.1:{port}"]
    server = subprocess.Popen(
        words, cwd=shell.cwd, env=shell.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), urlopen(base + "/", timeout=2) as page:
                assert page.status == 200
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"serve did not answer: {line}")
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)


def test_shell_blocks_run_as_written(repo: Path) -> None:
    shell = Shell(repo)
    for body in blocks("bash"):
        shell.cwd = repo  # each section starts where the reader cloned the repository
        for line in shell_lines(body):
            if " serve" in line:
                with serving(shell, line) as base, urlopen(base + "/", timeout=5) as page:
                    assert b"Email delivery is delayed" in page.read()
                continue
            result = shell.run(line)
            output = result.stdout + result.stderr
            assert result.returncode == expected_exit(line), f"{line}\n{output}"
            if expected_exit(line) == 2:
                assert ("has no credentials" in output and "--channel" in output) or (
                    "no SendGrid key" in output
                    or "only sent in the sandbox: add --sandbox" in output
                ), output
    shop = repo / "my-shop"
    assert (shop / ".outagecomms" / "outbox" / "sms").is_dir(), "the rehearsal went out"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTAGECOMMS_")}
    made = subprocess.run(
        [sys.executable, "-m", "outagecomms", "init", "shop"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return tmp_path / "shop"


def test_python_blocks_run(shop: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(shop)
    session: dict[str, object] = {"__name__": "__readme__"}  # one session, as a reader's
    first, *later = blocks("python")
    exec(compile(first, "README.md", "exec"), session)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("True 0 ") and printed[-1] == "1"
    for body in later:
        if "campaigns(" in body:  # needs a SendGrid key: refused before any request
            with pytest.raises(ConfigError, match="no SendGrid key"):
                exec(compile(body, "README.md", "exec"), session)
        else:
            exec(compile(body, "README.md", "exec"), session)


def test_yaml_blocks_load(shop: Path) -> None:
    for body in blocks("yaml"):
        data = yaml.safe_load(body)
        if "id" in data:
            incident = Incident.model_validate(data)
            assert incident.key == "2026-11-22-email-outage/investigating"
            continue
        config = yaml.safe_load((shop / "channels.yaml").read_text())
        config.update(data)
        (shop / "channels.yaml").write_text(yaml.safe_dump(config))
        loaded = load_config(shop / "channels.yaml")
        for key, value in data.get("organization", {}).items():
            assert getattr(loaded.organization, key) == value


def test_dotenv_block_sets_what_check_asks_for(shop: Path) -> None:
    [body] = blocks("dotenv")
    names = [line.split("=", 1)[0] for line in body.splitlines() if line.strip()]
    (shop / ".env").write_text(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTAGECOMMS_")}
    checked = subprocess.run(
        [sys.executable, "-m", "outagecomms", "check"],
        cwd=shop,
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "120"},
        timeout=120,
    )
    still_missing = checked.stdout.split("Set these in the environment", 1)[-1]
    for name in names:
        assert name not in still_missing, f"{name} is not what check asks for"
    assert "OUTAGECOMMS_CHANNELS__SOCIAL__CONSUMER_KEY" in still_missing, "the others still are"


def test_html_snippet_is_served_and_nginx_forwards_to_serve(repo: Path) -> None:
    shell = Shell(repo)
    shell.run("make demo")
    [snippet] = blocks("html")
    src = re.search(r'src="([^"]+)"', snippet)
    assert src is not None
    path = urlsplit(src.group(1)).path
    with (
        serving(shell, ".venv/bin/outagecomms serve --sandbox") as base,
        urlopen(base + path, timeout=5) as script,
    ):
        assert script.status == 200 and b"outagecomms-banner" in script.read()
    [nginx] = blocks("nginx")
    forwarded = re.search(r"proxy_pass http://([\d.]+:\d+);", nginx)
    assert forwarded is not None
    assert forwarded.group(1) == load_config(repo / "channels.yaml").serve.listen
