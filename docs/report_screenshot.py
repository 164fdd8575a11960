"""Make the README's picture of the html impact report: ``python docs/report_screenshot.py``.

The benchmark's synthetic incident (``bench/report.py``: 30,000 ledger rows over two
announcements, every state and skip reason among them) reported by the real
``outagecomms report --format html``, photographed by Debian's headless Chromium.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import INCIDENT_ID, OUTAGECOMMS, Workspace, clean_env  # noqa: E402
from bench.report import fill  # noqa: E402

ROWS = 30_000
CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="outagecomms-report-shot-") as folder:
        workspace = Workspace(Path(folder) / "shop").write()
        fill(workspace, ROWS)
        page = Path(folder) / "report.html"
        report = [OUTAGECOMMS, "--config", str(workspace.config), "report", INCIDENT_ID]
        subprocess.run(
            [*report, "--format", "html", "--output", str(page)],
            env=clean_env(),
            check=True,
        )
        target = ROOT / "docs" / "report.png"
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={Path(folder) / 'chromium'}",
                f"--screenshot={target}",
                "--window-size=1000,1450",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
