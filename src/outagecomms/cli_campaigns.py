"""``outagecomms campaigns list|pause|resume``: the scheduled marketing emails at SendGrid
(DESIGN §15). Registered on the ``outagecomms`` app by ``cli.py``; the work is done in
``campaigns.py``, this module only says what happened."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .cli import _announcer, _errors, app, err, out

if TYPE_CHECKING:
    from .campaigns import CampaignChange, CampaignsResult

campaigns_app = typer.Typer(
    help="Pause the marketing emails scheduled at SendGrid while your mail is broken, "
    "and resume them afterwards.",
    no_args_is_help=True,
)
app.add_typer(campaigns_app, name="campaigns")

IncidentId = Annotated[
    str, typer.Argument(metavar="INCIDENT_ID", help="The incident's id.", show_default=False)
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]


@campaigns_app.command("list")
def list_campaigns() -> None:
    """The Single Sends scheduled at SendGrid now."""
    from .campaigns import list_scheduled

    with _errors():
        scheduled = list_scheduled(_announcer().config)
    if not scheduled:
        out.print("No Single Send is scheduled at SendGrid.")
        return
    table = Table(title="Scheduled at SendGrid", title_justify="left")
    for column in ("Name", "Sends at (UTC)", "Id"):
        table.add_column(column)
    for single_send in sorted(scheduled, key=lambda s: s.send_at or ""):
        table.add_row(escape(single_send.name), single_send.send_at or "-", single_send.id)
    out.print(table)


@campaigns_app.command()
def pause(incident_id: IncidentId, dry_run: DryRun = False) -> None:
    """Unschedule every scheduled Single Send and remember them under the incident."""
    with _errors():
        result = _announcer().pause_campaigns(incident_id, dry_run=dry_run)
    verb = "Would pause" if dry_run else "Paused"
    if result.changed:
        out.print(f"{verb} {len(result.changed)} scheduled campaign(s) for {escape(incident_id)}:")
        _list(result.changed, lambda c: f"was due {c.send_at or '-'}")
    elif result.error is None:
        out.print("Nothing to pause: no Single Send is scheduled at SendGrid.")
    _finish(result, f"outagecomms campaigns resume {incident_id}")


@campaigns_app.command()
def resume(
    incident_id: IncidentId,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="ISO_TIME",
            help="When to send those whose time has passed (e.g. 2026-11-23T10:00:00Z, or now).",
        ),
    ] = None,
    dry_run: DryRun = False,
) -> None:
    """Reschedule what the incident paused: at the original time while it is still ahead,
    else at --at."""
    with _errors():
        result = _announcer().resume_campaigns(incident_id, at, dry_run=dry_run)
    verb = "Would reschedule" if dry_run else "Rescheduled"
    if result.changed:
        out.print(f"{verb} {len(result.changed)} campaign(s) paused for {escape(incident_id)}:")
        _list(result.changed, _resumed_at)
    for change in result.closed:
        out.print(f"[yellow]Left alone:[/] {escape(change.name)}: {escape(change.note or '')}")
    if result.waiting:
        out.print(
            f"[yellow]{len(result.waiting)} paused campaign(s) missed their time[/] and stay "
            "unscheduled; give a new time with --at:"
        )
        _list(result.waiting, lambda c: f"was due {c.send_at or '-'}")
    if not (result.changed or result.closed or result.waiting or result.error):
        out.print(f"Nothing to resume: no campaign is paused for {escape(incident_id)}.")
    _finish(result, None)


def _resumed_at(change: CampaignChange) -> str:
    original = change.new_send_at == change.send_at
    return f"at {change.new_send_at}" + (" (its original time)" if original else "")


def _list(changes: list[CampaignChange], detail: Callable[[CampaignChange], str]) -> None:
    for change in changes:
        out.print(f"  {escape(change.name)}  [dim]{escape(detail(change))}  ({change.id})[/]")


def _finish(result: CampaignsResult, next_step: str | None) -> None:
    if result.dry_run:
        out.print("[bold]Dry run:[/] nothing was changed at SendGrid or recorded.")
    elif next_step and result.changed:
        out.print(f"When the incident is over: {escape(next_step)}")
    if result.error is not None:
        done = " The ones listed above were done and recorded;" if result.changed else ""
        err.print(
            f"[bold red]Error:[/] {escape(result.error)}.{done} run the same command again "
            "to finish.",
            soft_wrap=True,
        )
    raise typer.Exit(result.exit_code)
