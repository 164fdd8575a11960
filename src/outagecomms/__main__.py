"""``python -m outagecomms`` is the ``outagecomms`` command."""

import signal
import sys


def _interrupted_early(signum: int, frame: object) -> None:
    # Ctrl-C or SIGTERM while the CLI is still being imported: nothing has started yet.
    sys.stderr.write("Interrupted.\n")
    sys.exit(130)


for _sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_sig, _interrupted_early)

from .cli import main  # noqa: E402  (after the handlers, so an early signal exits 130)

main()
