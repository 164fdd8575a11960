"""The page templates: ``templates/pages/`` of the config first, then the packaged ones.

A company restyles its status page by copying one file (``base.html.j2`` holds
the look) into its own ``templates/pages/`` folder; every file it does not copy
comes from the package. HTML templates are autoescaped: incident text is always
inserted as text. Undefined variables are errors, found when the server starts.
"""

from __future__ import annotations

from datetime import UTC, datetime

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from ..config import Config
from ..errors import TemplateError
from ..render import PACKAGED_TEMPLATES

PAGES_FOLDER = "pages"
#: Every template the server renders (a missing or broken one stops it at start).
PAGE_TEMPLATES = (
    "base.html.j2",
    "_macros.html.j2",
    "index.html.j2",
    "incident.html.j2",
    "not_found.html.j2",
    "banner.js.j2",
    "unsubscribe.html.j2",
)
STATUS_LABELS = {
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
}


def utc_text(value: datetime | None) -> str:
    """``22 Nov 2026, 09:40 UTC``: the time every reader sees, JavaScript or not."""
    return "" if value is None else value.astimezone(UTC).strftime("%d %b %Y, %H:%M UTC")


def rfc3339(value: datetime | None) -> str | None:
    """``2026-11-22T09:40:00Z`` (for ``<time datetime>``, JSON and the feed)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def duration_text(start: datetime, end: datetime) -> str:
    """``2 h 20 min``: how long an incident lasted."""
    minutes = max(0, round((end - start).total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min"]
    return " ".join(p for p in parts if p and not (p == "0 min" and (days or hours)))


def page_environment(config: Config) -> SandboxedEnvironment:
    """The Jinja environment of the pages, checked: every page template must compile."""
    folders = [config.resolve(config.templates) / PAGES_FOLDER, PACKAGED_TEMPLATES / PAGES_FOLDER]
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(f) for f in folders if f.is_dir()]),
        autoescape=lambda name: name is not None and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(utc=utc_text, rfc3339=rfc3339, status_label=_status_label)
    env.globals["duration"] = duration_text
    for name in PAGE_TEMPLATES:
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"{exc.filename}, line {exc.lineno}: page template error: {exc.message}"
            ) from None
        except jinja2.TemplateNotFound:
            raise TemplateError(
                f"page template {name} is missing from {folders[0]} and from the package"
            ) from None
    return env


def _status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.capitalize())
