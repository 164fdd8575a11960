"""The fake providers in a process of their own: ``python -m bench.serve --latency 0.05``.

On a 2-core machine a fake served from a thread of the measured process would
share its interpreter (and its GIL) and slow it down; in its own process it
gets the other core. It reuses the test fakes (``tests/fakes``) unchanged.

Protocol, one line each way: the process prints one JSON line (base URLs,
credentials, the ``OUTAGECOMMS_CHANNELS__...`` environment) once the fakes
listen, then answers commands read from stdin:

* ``stats``        a JSON line with what each fake received;
* ``reset``        forget everything received;
* ``latency S``    answer after S seconds from now on;
* ``quit`` or EOF  stop.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _stats(providers: Any) -> dict[str, int]:
    sent = providers.sendgrid.requests_sent
    return {
        "twilio_messages": len(providers.twilio.messages),
        "twilio_unique": len({m["to"] for m in providers.twilio.messages}),
        "twilio_faulted": providers.twilio.faulted,
        "sendgrid_requests": len(sent),
        "sendgrid_recipients": sum(len(s["body"]["personalizations"]) for s in sent),
        "x_posts": len(providers.x.requests),
    }


def main(argv: list[str] | None = None) -> None:
    from tests.fakes import FakeProviders

    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer")
    args = parser.parse_args(argv)
    with FakeProviders(latency=args.latency) as providers:
        hello = {
            "twilio": providers.twilio.base_url,
            "sendgrid": providers.sendgrid.base_url,
            "x": providers.x.base_url,
            "account_sid": providers.twilio.account_sid,
            "auth_token": providers.twilio.auth_token,
            "sendgrid_api_key": providers.sendgrid.api_key,
            "env": providers.env(sms="sms", social=None, email="email", team=None),
        }
        print(json.dumps(hello), flush=True)
        for command in sys.stdin:
            word, _, rest = command.strip().partition(" ")
            if word == "stats":
                print(json.dumps(_stats(providers)), flush=True)
            elif word == "reset":
                providers.reset()
                print("{}", flush=True)
            elif word == "latency":
                for fake in providers.all:
                    fake.latency = float(rest)
                print("{}", flush=True)
            elif word == "quit":
                break


@dataclass
class FakeProcess:
    """The fake providers running in a child process (see the module docstring)."""

    latency: float = 0.05

    def __enter__(self) -> FakeProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.serve", "--latency", str(self.latency)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first:
            self.proc.wait(10)
            raise RuntimeError("the fake providers did not start (python -m bench.serve)")
        self.info: dict[str, Any] = json.loads(first)
        return self

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._ask("stats").items()}

    def reset(self) -> None:
        self._ask("reset")

    def cpu(self) -> float:
        """CPU seconds the fake process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def set_latency(self, seconds: float) -> None:
        self._ask(f"latency {seconds}")

    @property
    def env(self) -> dict[str, str]:
        return dict(self.info["env"])

    def __exit__(self, *exc_info: object) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    main()
