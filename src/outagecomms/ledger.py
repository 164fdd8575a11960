"""The import path of the ledger in earlier versions; the store now lives in ``outagecomms.store``.

Kept so that code written against ``outagecomms.ledger.Ledger`` keeps working.
"""

from __future__ import annotations

from .store import DONE_STATES, STATES, Ledger, Mode, Row, State, now

__all__ = ["DONE_STATES", "STATES", "Ledger", "Mode", "Row", "State", "now"]
