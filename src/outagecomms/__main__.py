"""``python -m outagecomms`` is the ``outagecomms`` command."""

from .cli import main

main()
