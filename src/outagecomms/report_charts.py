"""The two charts of the html report, drawn with matplotlib as inline SVG.

Only ``report --format html`` imports this module (matplotlib takes a while to
load). Figures are made without pyplot, so no global backend or state is
touched and a library caller's own matplotlib setup is left alone. Text is
drawn as paths, so the SVG needs no font and no network to look the same
everywhere.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from itertools import accumulate

from matplotlib import rc_context
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from .report import Report, wave_name

#: One color per channel, the same in both charts (matplotlib's tab10, colour-blind aware).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_STYLE = {
    "svg.fonttype": "path",
    "svg.hashsalt": "outagecomms-report",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
#: Kinds whose providers send delivery receipts (§13); posts, banners and Slack have none.
RECEIPT_KINDS = frozenset({"sms", "email"})
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def channel_colors(report: Report) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(report.channels)}


def sent_over_time_svg(report: Report) -> str | None:
    """Messages sent so far per channel against the clock, with each announcement marked;
    None when nothing was sent."""
    if not report.timeline:
        return None
    colors = channel_colors(report)
    with rc_context(_STYLE):
        figure = Figure(figsize=(8, 3.4), layout="constrained")
        axes = figure.add_subplot()
        end = max(_time(points[-1][0]) for points in report.timeline.values())
        for name, points in report.timeline.items():
            # From zero at its first bucket, on to the chart's end: a channel that sent
            # one post still shows as a step.
            times = [_time(points[0][0])] + [_time(bucket) for bucket, _ in points] + [end]
            totals = [0, *accumulate(count for _, count in points)]
            totals.append(totals[-1])
            axes.step(
                times,
                totals,
                where="post",
                label=name,
                color=colors.get(name, PALETTE[-1]),
                linewidth=2,
            )
        for line in report.announcements:
            if line.first_sent_at:
                moment = _time(line.first_sent_at)
                axes.axvline(moment, color="#999999", linestyle=":", linewidth=1)
                axes.annotate(
                    wave_name(line.key, report.incident.id),
                    (moment, 1),
                    xycoords=("data", "axes fraction"),
                    rotation=90,
                    va="top",
                    ha="right",
                    fontsize=8,
                    color="#555555",
                )
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        axes.set_xlabel("time (UTC)")
        axes.set_ylabel("messages sent so far")
        axes.set_ylim(bottom=0)
        axes.legend(loc="lower right", frameon=False)
        return _svg(figure)


def funnel_svg(report: Report) -> str | None:
    """Per channel, planned → sent → delivered as bars on the channel's own scale."""
    if not report.channels:
        return None
    colors = channel_colors(report)
    names = list(report.channels)
    with rc_context(_STYLE):
        figure = Figure(figsize=(8, 0.4 + 0.85 * len(names)), layout="constrained")
        grid = figure.subplots(len(names), 1, squeeze=False)
        for axes, name in zip(grid[:, 0], names, strict=True):
            channel = report.channels[name]
            receipts = channel.kind in RECEIPT_KINDS or channel.delivered > 0
            stages = ("planned", "sent", "delivered") if receipts else ("planned", "sent")
            values = [getattr(channel, stage) for stage in stages]
            color = colors[name]
            bars = axes.barh(stages, values, color=color, height=0.7)
            for bar, alpha in zip(bars, (0.35, 0.7, 1.0), strict=False):
                bar.set_alpha(alpha)
            top = max(values) or 1
            for y, value in enumerate(values):
                share = f" ({value / channel.planned:.0%})" if channel.planned and y else ""
                axes.text(value + top * 0.01, y, f"{value:,}{share}", va="center", fontsize=8)
            axes.set_xlim(0, top * 1.25)
            axes.set_ylim(2.5, -0.5)  # the same bar height whether or not there are receipts
            axes.set_xticks([])
            axes.spines["bottom"].set_visible(False)
            axes.set_ylabel(name, rotation=0, ha="right", va="center", fontweight="bold")
        return _svg(figure)


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element to put inside html: no XML prologue, no
    metadata block (its links name vocabularies; nothing is fetched, but a reader of
    the file should find no address in it at all)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = _PROLOGUE.sub("", buffer.getvalue(), count=1)
    return _METADATA.sub("", text)
