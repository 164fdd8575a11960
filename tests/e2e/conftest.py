"""End-to-end helpers: run the real ``outagecomms`` command in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "outagecomms"]

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """``run("send", "x.yaml", env={...}, cwd=...)``: the CLI's result (stdout, stderr, code)."""

    def _run(
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("OUTAGECOMMS_")}
        clean.update({"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})
        return subprocess.run(
            [*CLI, *args],
            cwd=cwd or tmp_path,
            env=clean,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    return _run


# A folder made by ``outagecomms init`` once per module; each test gets its own copy.
@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scaffold")
    made = subprocess.run([*CLI, "init"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return folder


@pytest.fixture
def shop(scaffold: Path, tmp_path: Path) -> Path:
    shutil.copytree(scaffold, tmp_path, dirs_exist_ok=True)
    return tmp_path
