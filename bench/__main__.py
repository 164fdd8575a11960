"""``python -m bench [fanout|overhead|startup|memory|senders|report|all] [--n N] [--latency S] ...``

Run ``python -m bench --help`` for every option.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import ROOT, command_line, machine


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="outagecomms benchmarks; each prints its numbers and its command.",
    )
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["fanout", "overhead", "startup", "memory", "senders", "report", "all"],
    )
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="recipients (fanout/overhead: 20,000; memory: 1M); report: ledger rows (1M)",
    )
    parser.add_argument(
        "--latency", type=float, default=None, help="fake provider latency, s (0.05; senders: 0.2)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="SMS requests in flight (50; senders: 16)"
    )
    parser.add_argument(
        "--email-n", type=int, default=100_000, help="fanout: emails, same content (100,000)"
    )
    parser.add_argument(
        "--email-concurrency",
        type=int,
        default=4,
        help="SendGrid requests in flight (4, the product's default)",
    )
    parser.add_argument(
        "--names-n",
        type=int,
        default=100_000,
        help="fanout: emails greeting each recipient by name (100,000)",
    )
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=500,
        help="fanout: messages the sync-SDK loop is timed on (500)",
    )
    parser.add_argument(
        "--parts",
        default="sms,email,email-names",
        help="fanout: which parts to run (sms,email,email-names)",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="fanout: runs of each sender, median shown (3)"
    )
    parser.add_argument("--repeat", type=int, default=10, help="startup: runs of each command (10)")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    results: dict[str, Any] = {}
    everything = ["startup", "overhead", "fanout", "senders", "memory", "report"]
    todo = everything if args.what == "all" else [args.what]
    for what in todo:
        if what == "fanout":
            from . import fanout

            results["fanout"] = fanout.run(
                fanout.Options(
                    n=args.n or 20_000,
                    latency=args.latency or 0.05,
                    concurrency=args.concurrency or 50,
                    email_n=args.email_n,
                    email_concurrency=args.email_concurrency,
                    names_n=args.names_n,
                    baseline_sample=args.baseline_sample,
                    runs=args.runs,
                    parts=tuple(p.strip() for p in args.parts.split(",") if p.strip()),
                )
            )
        elif what == "overhead":
            from . import overhead

            results["overhead"] = overhead.run(
                n=args.n or 20_000, concurrency=args.concurrency or 50
            )
        elif what == "startup":
            from . import startup

            results["startup"] = startup.run(repeat=args.repeat)
        elif what == "senders":
            from . import senders

            results["senders"] = senders.run(
                senders.Options(
                    n=args.n or 4000,
                    latency=args.latency or 0.2,
                    concurrency=args.concurrency or 16,
                )
            )
        elif what == "memory":
            from . import memory

            results["memory"] = memory.run(n=args.n or 1_000_000)
        elif what == "report":
            from . import report

            results["report"] = report.run(n=args.n or 1_000_000)
    if args.json:
        payload = {"command": command_line(), "machine": machine(), "results": results}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nnumbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
