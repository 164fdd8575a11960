"""``outagecomms report``: the impact report of one incident (DESIGN §14).

Registered on the ``outagecomms`` app by ``cli.py``; the numbers come from
``report.py``, the terminal tables from ``report_table.py``, the html from
``report_html.py`` (the only place matplotlib is imported).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .cli import _announcer, _errors, app, err, out

_FORMATS = ("table", "json", "html")


@app.command()
def report(
    incident_id: Annotated[str, typer.Argument(metavar="INCIDENT_ID", help="The incident's id.")],
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table, json or html.")
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file instead."),
    ] = None,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Report on the sandbox rehearsal instead.")
    ] = False,
) -> None:
    """Impact report: per channel planned, sent, delivered, failed, skipped; how fast it went
    out; how many people were reached; opt-outs. html: a file with charts for a post-mortem."""
    from .report import build_report

    if output_format not in _FORMATS:
        err.print(
            f"[bold red]Error:[/] --format must be table, json or html, not "
            f"'{escape(output_format)}'",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    html = output_format == "html"
    if html and output is None and sys.stdout.isatty():
        output = Path(f"report-{incident_id}.html")
    with _errors():
        announcer = _announcer()
        kinds = {name: announcer.kind_of(name) for name in announcer.config.channels}
        store = announcer.view_store()
        if store is None:
            err.print(
                f"[bold red]Error:[/] no incident '{escape(incident_id)}': nothing was sent "
                "yet with this configuration",
                soft_wrap=True,
            )
            raise typer.Exit(2)
        with store:
            result = build_report(store, incident_id, sandbox=sandbox, kinds=kinds, timeline=html)
    if html:
        from .report_html import render_html

        text = render_html(result)
    elif output_format == "json":
        text = json.dumps(result.as_json(), indent=2, ensure_ascii=False) + "\n"
    else:
        from .report_table import report_tables

        if output is None:
            out.print(report_tables(result))
            return
        console = Console(record=True, width=100, file=io.StringIO())
        console.print(report_tables(result))
        text = console.export_text()
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        reason = escape(exc.strerror or str(exc))
        err.print(f"[bold red]Error:[/] cannot write {escape(str(output))}: {reason}")
        raise typer.Exit(2) from None
    out.print(f"Wrote the report to {escape(str(output))}")
