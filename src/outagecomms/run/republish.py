"""Republishing the website banner on every send.

The banner is a state, not a message: it shows what the incident is now. Sending it
again is always safe, so every send that goes ahead writes it once more, even when the
ledger says it was delivered: a banner that was overwritten, lost in a deploy or left
stale by an earlier failure is repaired by running the same command again. Only the
incident's latest announcement is republished, so re-running an old one never turns
the banner back in time.
"""

from __future__ import annotations

import logging

from ..channels import build_channel
from ..config import Config, OutboxSettings
from ..models import BROADCAST
from ..redact import redact
from ..render import Renderer
from ..result import ChannelResult
from ..store import Store
from .delivery import StoreThread
from .preflight import ChannelPlan

log = logging.getLogger(__name__)


async def republish_banners(
    config: Config,
    plans: dict[str, ChannelPlan],
    results: dict[str, ChannelResult],
    renderer: Renderer,
    store: Store,
    io: StoreThread,
    *,
    sandbox: bool,
) -> None:
    """Write every banner channel of this run again when its row was delivered by an
    earlier run; the outcome is in ``results[name].republished`` (or ``stopped``).
    Store calls go through the run's store thread ``io``."""
    incident = renderer.incident
    recorded = await io.call(store.announcements, incident.id)
    if not recorded or recorded[-1].key != incident.key:
        return
    for name, plan in plans.items():
        result = results[name]
        if plan.kind != "banner" or result.sent_now or result.stopped:
            continue
        states = await io.call(store.states, incident.key, name, [BROADCAST])
        if states.get(BROADCAST) != "sent":
            continue
        settings = OutboxSettings(path=config.outbox) if sandbox else plan.settings
        message = renderer.message(name, "banner", plan.settings, address=BROADCAST)
        try:
            async with build_channel(name, "banner", settings, config) as channel:
                [outcome] = await channel.send([message])
        except Exception as exc:  # the banner target is down: say so, the rest stands
            log.debug("banner %s: republishing failed", name, exc_info=True)
            result.stopped = f"could not republish the banner: {redact(str(exc)) or exc}"
            continue
        if outcome.state == "sent":
            result.republished = True
        else:
            result.stopped = f"could not republish the banner: {outcome.error_text}"
