"""``outagecomms serve``: the public status page, its Atom feed, the status JSON, the
embeddable banner, and the provider webhooks, over the ledger that ``send`` writes.

Modules: ``app`` (the route table), ``board`` (what the page knows, from the
announcements), ``reader`` (reading the store off the event loop), ``pages``,
``feed``, ``api`` (status JSON and banner.js), ``hooks`` and ``unsubscribe``
(DESIGN §13), ``templating`` (the page templates), ``server`` (run and stop).
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
