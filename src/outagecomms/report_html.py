"""The impact report as one self-contained html file a marketing lead can attach to a
post-mortem: the numbers as tables and two charts inlined as SVG; no script, no
stylesheet, font or image to fetch."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from .report import Report, clock, duration, wave_name

_TEMPLATES = Path(__file__).parent / "report_templates"
_HEADERS = ("Planned", "Sent", "Delivered", "Undelivered", "Failed", "Unknown", "Pending")
_STYLES = {"failed": "bad", "unknown": "warn", "undelivered": "warn", "pending": "warn"}


def render_html(report: Report) -> str:
    """The whole html document (``report.timeline`` must be filled for the time chart)."""
    from .report_charts import funnel_svg, sent_over_time_svg

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    sent_chart = sent_over_time_svg(report)
    funnel_chart = funnel_svg(report)
    return environment.get_template("report.html.j2").render(
        **_context(report),
        # Our own SVG from matplotlib: every text in it was escaped by matplotlib.
        sent_chart=Markup(sent_chart) if sent_chart else None,
        funnel_chart=Markup(funnel_chart) if funnel_chart else None,
    )


def _context(report: Report) -> dict[str, Any]:
    incident = report.incident
    facts = [incident.severity or "", f"started {clock(incident.started_at)} UTC"]
    facts.append(
        f"resolved {clock(incident.resolved_at)} UTC" if incident.resolved_at else "not resolved"
    )
    channels = report.channels.items()
    return {
        "incident": incident,
        "facts": " · ".join(f for f in facts if f),
        "sandbox": report.sandbox,
        "reach": report.reach,
        "sent": sum(c.sent for _, c in channels),
        "problems": sum(c.failed + c.unknown for _, c in channels),
        "opt_outs_total": report.opt_outs_total,
        "opt_outs": report.opt_outs,
        "headers": _HEADERS,
        "channel_rows": [
            {
                "name": name,
                "kind": c.kind or "",
                "cells": [
                    {"value": getattr(c, key.lower()), "style": _cell_style(key.lower(), c)}
                    for key in _HEADERS
                ],
                "skipped": sum(c.skipped.values()),
            }
            for name, c in channels
        ],
        "speed_rows": [
            {
                "name": name,
                "first": duration(c.first_sent_after_s),
                "p50": duration(c.p50_sent_after_s),
                "p95": duration(c.p95_sent_after_s),
            }
            for name, c in channels
        ],
        "skipped_rows": [
            {"name": name, "reason": reason, "count": count}
            for name, c in channels
            for reason, count in c.skipped.items()
        ],
        "announcements": [
            {
                "name": wave_name(line.key, incident.id),
                "status": line.status,
                "first": clock(line.first_sent_at),
                "last": clock(line.last_sent_at),
            }
            for line in report.announcements
        ],
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
    }


def _cell_style(key: str, channel: Any) -> str | None:
    return _STYLES.get(key) if getattr(channel, key) else None
