"""The impact report as Rich tables for the terminal: the quick look, readable at 80 columns.

The incident id is written once, in the title; announcements are named by what
follows it (``investigating``, ``monitoring/2``).
"""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .report import Report, clock, duration, wave_name

_NUMBERS = ("planned", "sent", "delivered", "undelivered", "failed", "unknown", "pending")
_HEADERS = ("Planned", "Sent", "Deliv.", "Undeliv.", "Failed", "Unknown", "Pending")
_ALERT = {"failed": "red", "unknown": "yellow", "undelivered": "yellow", "pending": "yellow"}


def report_tables(report: Report) -> RenderableType:
    """Title, announcements, messages per channel, speed, skips, reach and opt-outs."""
    incident = report.incident
    parts: list[RenderableType] = [_title(report)]
    waves = _table("Announcements", ("Announcement", "First sent (UTC)", "Last sent (UTC)"))
    for line in report.announcements:
        waves.add_row(
            escape(wave_name(line.key, incident.id)),
            clock(line.first_sent_at),
            clock(line.last_sent_at),
        )
    parts.append(waves)
    messages = _table("Messages", ("Channel", *_HEADERS))
    speed = _table(
        "Time to send, from each announcement's start",
        ("Channel", "First", "Median", "95%"),
    )
    for name, channel in report.channels.items():
        values = [getattr(channel, key) for key in _NUMBERS]
        cells = [
            f"[{_ALERT[key]}]{value:,}[/]" if value and key in _ALERT else f"{value:,}"
            for key, value in zip(_NUMBERS, values, strict=True)
        ]
        messages.add_row(escape(name), *cells)
        speed.add_row(
            escape(name),
            duration(channel.first_sent_after_s),
            duration(channel.p50_sent_after_s),
            duration(channel.p95_sent_after_s),
        )
    parts += [messages, speed]
    skipped = [
        f"  {escape(name)}: "
        + ", ".join(f"{count:,} {escape(reason)}" for reason, count in channel.skipped.items())
        for name, channel in report.channels.items()
        if channel.skipped
    ]
    if skipped:
        parts.append(Text.from_markup("[bold]Not sent to[/]\n" + "\n".join(skipped)))
    opt_outs = ", ".join(f"{n:,} {escape(source)}" for source, n in report.opt_outs.items())
    parts.append(
        Text.from_markup(
            f"\n[bold]Reached[/] {report.reach:,} people on at least one channel.\n"
            f"[bold]Opt-outs[/] {report.opt_outs_total:,}" + (f" ({opt_outs})" if opt_outs else "")
        )
    )
    return Group(*parts)


def _title(report: Report) -> Text:
    incident = report.incident
    head = f"[bold]Incident {escape(incident.id)}[/]"
    if report.sandbox:
        head += " [yellow](sandbox rehearsal)[/]"
    facts = [incident.severity or "", f"started {clock(incident.started_at)}"]
    if incident.resolved_at:
        facts.append(f"resolved {clock(incident.resolved_at)}")
    else:
        facts.append("not resolved")
    title = escape(incident.title or "")
    return Text.from_markup(f"{head}\n{title}\n[dim]{escape(' · '.join(f for f in facts if f))}[/]")


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    return table
