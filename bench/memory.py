"""Memory: peak RSS of ``outagecomms send --sandbox`` with a 1,000,000-row audience CSV.

The audience must be streamed (DESIGN §4): a million rows must not need a million
objects in memory. The run is the real command on the bench workspace (an SMS and
an email channel, both per recipient), writing every message into the sandbox
outbox; its peak RSS is read with ``getrusage`` by a small wrapper process whose
only child is ``outagecomms``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .common import (
    OUTAGECOMMS,
    Workspace,
    clean_env,
    header,
    line,
    scratch,
    verdict,
    write_audience,
)

TARGET_MB = 250

_WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, capture_output=True, text=True)
seconds = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": done.returncode, "seconds": seconds, "peak_kb": peak_kb,
                  "tail": (done.stdout + done.stderr)[-2000:]}))
"""


def run(n: int = 1_000_000, channels: tuple[str, ...] = ("sms", "email")) -> dict[str, float]:
    header(f"memory: peak RSS of send --sandbox, {n:,}-row audience, channels {','.join(channels)}")
    with scratch("memory") as folder:
        workspace = Workspace(folder / "shop").write()
        started = time.perf_counter()
        audience = write_audience(folder / f"audience-{n}.csv", n, names=True)
        line(
            "audience written",
            f"{audience.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s",
        )
        args = [OUTAGECOMMS, "--config", str(workspace.config), "send", str(workspace.incident)]
        args += ["--sandbox", "--yes", "--audience", str(audience)]
        for channel in channels:
            args += ["--channel", channel]
        done = subprocess.run(
            [sys.executable, "-c", _WRAPPER, *args],
            cwd=workspace.root,
            env=clean_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        report = json.loads(done.stdout)
        if report["code"] != 0:
            raise RuntimeError(f"send --sandbox exited {report['code']}:\n{report['tail']}")
        sent = {c: workspace.ledger_summary(c).sent for c in channels}
        if any(count != n for count in sent.values()):
            raise RuntimeError(f"expected {n} messages per channel in the ledger, got {sent}")
        peak_mb = report["peak_kb"] / 1024
        line("messages written to the outbox", ", ".join(f"{c} {k:,}" for c, k in sent.items()))
        line("wall time", f"{report['seconds']:.1f} s")
        line(
            "peak RSS",
            f"{peak_mb:.0f} MB (target < {TARGET_MB} MB: {verdict(peak_mb < TARGET_MB)})",
        )
        print("  (removing the outbox and the audience...)", flush=True)
    return {"n": n, "peak_mb": peak_mb, "seconds": report["seconds"]}
