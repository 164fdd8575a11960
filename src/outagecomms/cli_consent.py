"""The ``suppress`` and ``why`` commands: the suppression list, and what happened to one
address. They register themselves on the main app when ``cli.py`` imports this module;
the work is in ``suppressions``."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .cli import STATE_STYLES, _errors, app, err, out, state

suppress_app = typer.Typer(
    name="suppress",
    help="The suppression list: addresses that never get a message (STOP replies, "
    "unsubscribes, additions by hand). One list for live and sandbox.",
    no_args_is_help=True,
)

FormatOption = Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")]
SUPPRESSION_KEYS = ("address", "kind", "source", "reason", "created_at")


def _config():  # type: ignore[no-untyped-def]
    from .config import load_config

    return load_config(state.config)


def _check_format(value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        err.print(
            f"[bold red]Error:[/] --format must be {', '.join(allowed[:-1])} or {allowed[-1]}, "
            f"not '{escape(value)}'",
            soft_wrap=True,
        )
        raise typer.Exit(2)


@suppress_app.command("add")
def add(
    addresses: Annotated[list[str], typer.Argument(metavar="ADDRESS...", help="Emails or phones.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for later readers.")] = None,
) -> None:
    """Never send to these addresses again (an email address or a phone number each)."""
    from .suppressions import suppress

    with _errors():
        added = suppress(_config(), addresses, reason=reason)
    already = len(set(addresses)) - added
    out.print(f"Suppressed {added} address(es)." + (f" {already} already were." if already else ""))


@suppress_app.command("remove")
def remove(
    addresses: Annotated[list[str], typer.Argument(metavar="ADDRESS...", help="Emails or phones.")],
) -> None:
    """Lift the suppression of these addresses: they get the next announcement again."""
    from .suppressions import unsuppress

    with _errors():
        removed = unsuppress(_config(), addresses)
    missing = len(set(addresses)) - removed
    out.print(
        f"Removed {removed} address(es) from the suppression list."
        + (f" {missing} were not on it." if missing > 0 else "")
    )


@suppress_app.command("list")
def list_(output: FormatOption = "table") -> None:
    """Show every suppressed address, where its opt-out came from, and when."""
    from .suppressions import suppressions

    _check_format(output, ("table", "json", "csv"))
    with _errors():
        items = [
            {key: getattr(s, key) for key in SUPPRESSION_KEYS} for s in suppressions(_config())
        ]
    if output == "json":
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
    elif output == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=SUPPRESSION_KEYS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(items)
    elif not items:
        out.print("The suppression list is empty.")
    else:
        table = Table()
        for column in ("Address", "Kind", "Source", "Reason", "Since"):
            # Addresses are copied from here: wrap them, never cut them.
            table.add_column(column, overflow="fold")
        for item in items:
            table.add_row(*(escape(str(item[key] or "")) for key in SUPPRESSION_KEYS))
        out.print(table)
        out.print(f"{len(items)} suppressed address(es).")


@suppress_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="Columns: address[, reason].")],
) -> None:
    """Suppress every address of a CSV file (columns address and, optionally, reason)."""
    from .suppressions import import_suppressions

    with _errors():
        result = import_suppressions(_config(), file)
    out.print(
        f"Imported {result.added} address(es)"
        + (f"; {result.already} were already suppressed" if result.already else "")
        + "."
    )
    for line, text in result.invalid[:10]:
        out.print(f"[yellow]line {line}: '{escape(text)}' is not an email address or phone[/]")
    if len(result.invalid) > 10:
        out.print(f"[yellow]… and {len(result.invalid) - 10} more lines without an address[/]")


def why(
    address: Annotated[str, typer.Argument(metavar="ADDRESS", help="An email or a phone.")],
    incident_id: Annotated[
        str | None, typer.Argument(metavar="[INCIDENT_ID]", help="Only this incident.")
    ] = None,
    output: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Look at the --sandbox rehearsals instead.")
    ] = False,
) -> None:
    """Why did this person get (or not get) a message? Every delivery, skip and receipt."""
    from .consent.suppression import SOURCES
    from .suppressions import why as explain

    _check_format(output, ("text", "json"))
    with _errors():
        found = explain(_config(), address, incident_id, sandbox=sandbox)
    if output == "json":
        document = {
            "deliveries": [d.as_dict() for d in found.deliveries],
            "suppressions": [
                {key: getattr(s, key) for key in SUPPRESSION_KEYS} for s in found.suppressions
            ],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    scope = f" in incident {incident_id}" if incident_id else ""
    label = {"email": "email address", "sms": "phone number"}.get(found.kind or "", "as written")
    out.print(f"[bold]{escape(found.address)}[/] ({label}){escape(scope)}")
    for s in found.suppressions:
        meaning = SOURCES.get(s.source, s.source)
        extra = f" ({escape(s.reason)})" if s.reason else ""
        out.print(
            f"[red]Suppressed[/] since {s.created_at}: {escape(s.source)}, {meaning}{extra}. "
            "Nothing is sent to it; 'outagecomms suppress remove' lifts it."
        )
    if not found.deliveries:
        where = " (sandbox)" if sandbox else ""
        out.print(f"No message to it was planned, sent or skipped{escape(scope)}{where}.")
        return
    table = Table()
    for column in ("Announcement", "Channel", "State", "Reason or provider id", "Updated"):
        table.add_column(column)
    for d in found.deliveries:
        style = STATE_STYLES.get(d.state, "")
        shown = f"[{style}]{d.state}[/]" if style else d.state
        detail = d.reason or d.provider_id or ""
        table.add_row(escape(d.announcement), d.channel, shown, escape(detail), d.updated_at)
    out.print(table)
    for r in found.receipts:
        out.print(
            f"Receipt {r['at']}: {escape(str(r['event']))} for {escape(str(r['announcement']))} "
            f"on {r['channel']}: {escape(str(r['detail'] or ''))}"
        )


app.add_typer(suppress_app)
app.command("why")(why)
