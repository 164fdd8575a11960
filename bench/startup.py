"""Start-up: wall time of ``outagecomms --help`` and ``outagecomms preview`` (a scaffolded
folder from ``outagecomms init``), and which heavy packages each one imports.

Python caches compiled bytecode after a command's first run; the runs here are
timed after one warm-up, with the cache in a temporary folder
(``PYTHONPYCACHEPREFIX``) so the repository is not touched. The same commands
with ``PYTHONDONTWRITEBYTECODE=1`` (outagecomms compiled on every run, as in an
environment that never writes bytecode) are shown too.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import OUTAGECOMMS, clean_env, header, line, median, scratch, verdict

TARGET_HELP = 0.3  # seconds
HEAVY = (
    "twilio",
    "tweepy",
    "sendgrid",
    "aiohttp",
    "httpx",
    "jinja2",
    "pydantic",
    "phonenumbers",
    "twitter_text",
)

_WHICH_IMPORTS = """
import runpy, sys
sys.argv = ["outagecomms", *sys.argv[1:]]
try:
    runpy.run_module("outagecomms", run_name="__main__")
except SystemExit:
    pass
print("IMPORTED:" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def _time(args: list[str], cwd: Path, env: dict[str, str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [OUTAGECOMMS, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        times.append(time.perf_counter() - started)
    return times


def _imports(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _WHICH_IMPORTS.format(heavy=HEAVY), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    found = [ln for ln in done.stderr.splitlines() if ln.startswith("IMPORTED:")]
    return (found[-1].removeprefix("IMPORTED:") or "none") if found else "?"


def run(repeat: int = 10) -> dict[str, float]:
    header(f"start-up: {repeat} runs each after a warm-up")
    results: dict[str, float] = {}
    with scratch("startup") as folder, tempfile.TemporaryDirectory() as pycache:
        warm = clean_env({"PYTHONPYCACHEPREFIX": pycache})
        warm.pop("PYTHONDONTWRITEBYTECODE", None)
        # As this sandbox runs Python: nothing written, so outagecomms is compiled every time.
        cold = clean_env({"PYTHONDONTWRITEBYTECODE": "1"})
        cold.pop("PYTHONPYCACHEPREFIX", None)
        subprocess.run(
            [OUTAGECOMMS, "init", "shop"], cwd=folder, env=warm, check=True, capture_output=True
        )
        shop = folder / "shop"
        commands = {
            "outagecomms --help": ["--help"],
            "outagecomms preview examples/incident-investigating.yaml": [
                "preview",
                "examples/incident-investigating.yaml",
            ],
        }
        bare = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=warm, check=True)
            bare.append(time.perf_counter() - started)
        line("python -c pass (the interpreter alone)", f"median {median(bare):.3f} s")
        for label, args in commands.items():
            _time(args, shop, warm, 1)  # warm-up: compiles and caches the bytecode
            times = _time(args, shop, warm, repeat)
            first = median(_time(args, shop, cold, 3))
            key = "help" if "--help" in args else "preview"
            results[key] = median(times)
            results[f"{key}_min"] = min(times)
            results[f"{key}_nocache"] = first
            target = f" (target < {TARGET_HELP} s: {verdict(median(times) < TARGET_HELP)})"
            line(
                label,
                f"median {median(times):.3f} s, min {min(times):.3f} s"
                + (target if key == "help" else ""),
            )
            line("  with PYTHONDONTWRITEBYTECODE=1 (no cache)", f"median {first:.3f} s")
            line("  heavy packages imported", _imports(args, shop, warm))
    return results
