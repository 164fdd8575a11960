"""The website banner: ``status.json`` (for the site's code) and ``banner.html`` (a snippet).

The ``file`` driver writes both into a folder the website serves, atomically
(a temporary file renamed over the old one, so the site never reads half a
file); the ``http`` driver sends the same JSON to an endpoint with a bearer token.
A resolved incident gets an ``expires_at`` after which the site should hide it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import Config, FileBannerSettings, HttpBannerSettings
from ..models import Incident, Message, Outcome
from .base import Channel, CheckResult, HttpChannel, http_failure, short, unreadable_success

#: How long a "resolved" banner stays up before the site should hide it.
RESOLVED_BANNER_HOURS = 24


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def status_document(
    incident: Incident, config: Config, now: datetime | None = None
) -> dict[str, Any]:
    """The machine-readable banner: what the site shows, and until when."""
    now = now or datetime.now(UTC)
    org = config.organization
    document: dict[str, Any] = {
        "id": incident.id,
        "title": incident.title,
        "status": incident.status,
        "severity": incident.severity,
        "summary": incident.summary,
        "affected": incident.affected,
        "started_at": _iso(incident.started_at),
        "eta": _iso(incident.eta),
        "updated_at": _iso(now),
        "url": org.status_url or org.website,
    }
    if incident.status == "resolved":
        document["expires_at"] = _iso(now + timedelta(hours=RESOLVED_BANNER_HOURS))
    return document


def write_atomic(path: Path, content: str) -> None:
    """Replace ``path`` with ``content`` so that readers see the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def publish_banner(folder: Path, message: Message, config: Config) -> str:
    """Write ``status.json`` and ``banner.html`` into ``folder``; return its ``updated_at``."""
    document = status_document(message.incident, config)
    write_atomic(folder / "banner.html", message.text + "\n")
    # status.json last: a site polling it then finds the matching banner already in place.
    write_atomic(folder / "status.json", json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return str(document["updated_at"])


class FileBanner(Channel):
    settings: FileBannerSettings

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        folder = self.config.resolve(self.settings.path)
        return [
            Outcome.sent(f"{folder / 'status.json'}@{publish_banner(folder, m, self.config)}")
            for m in messages
        ]

    async def check(self) -> CheckResult:
        folder = self.config.resolve(self.settings.path)
        parent = folder if folder.exists() else folder.parent
        if os.access(parent, os.W_OK):
            return CheckResult("accepted", f"{folder} is writable")
        return CheckResult("refused", f"cannot write to {folder}; check the path and permissions")


class HttpBanner(HttpChannel):
    settings: HttpBannerSettings

    def client_options(self) -> dict[str, Any]:
        token = self.settings.token
        return {"headers": {"Authorization": f"Bearer {token.get_secret_value()}"}} if token else {}

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        outcomes = []
        for message in messages:
            document = status_document(message.incident, self.config)
            document["html"] = message.text
            response = await self.http.request(
                self.settings.method, self.settings.url, json=document
            )
            if response.is_success:
                outcomes.append(
                    unreadable_success("The banner endpoint", response)
                    or Outcome.sent(response.headers.get("etag") or document["updated_at"])
                )
            else:
                outcomes.append(http_failure(response, None, short(response.text)))
        return outcomes

    async def check(self) -> CheckResult:
        return CheckResult(
            "not checkable", "an HTTP banner endpoint cannot be checked without publishing"
        )
