"""Refusing to send changed content under an announcement key that already went out.

A key stands for one wave of messages. When the incident file is edited (the usual
case: a new ``eta``) and sent again under the same key, the people already told would
never hear the change and the rest would hear something else: so the send is refused,
saying what changed and how to send it as an update (``update: <label>``, a new key).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import IncidentError
from ..models import Incident
from ..store import AnnouncementRecord, Store
from .planning import announcement_record

#: How much of a changed value the refusal shows.
_SHOWN = 60


def changes(recorded: AnnouncementRecord, incident: Incident) -> list[str]:
    """``key: old -> new`` for every content field that differs from what was recorded."""
    before = json.loads(recorded.content)
    after = json.loads(announcement_record(incident, sandbox=recorded.sandbox).content)
    return [
        f"{key}: {_short(before.get(key))} -> {_short(after.get(key))}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]


def refuse_changed_content(store: Store, incident: Incident, source: Path | None = None) -> None:
    """Raise ``IncidentError`` when ``incident`` says something else than what its key
    recorded (and so, possibly, already sent)."""
    recorded = store.announcement(incident.key)
    if recorded is None:
        return
    changed = changes(recorded, incident)
    if not changed:
        return
    where = f"{source}: " if source else ""
    sent = "was sent" if recorded.first_sent_at else "was prepared"
    raise IncidentError(
        f"{where}the incident changed since announcement {incident.key} {sent} "
        f"({'; '.join(changed)}); nothing was sent. To tell customers the new content, add "
        f"'update: <label>' to the incident (e.g. update: {_label(changed)}), which sends it "
        "as a new wave; or undo the change to finish sending the earlier one"
    )


def _short(value: object) -> str:
    text = "(none)" if value is None else json.dumps(value, ensure_ascii=False).strip('"')
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _label(changed: list[str]) -> str:
    """A suggested update label: the first changed field, e.g. ``eta-2``."""
    return changed[0].partition(":")[0].replace("_", "-") + "-2"
