"""The ``outagecomms`` command: a thin Typer + Rich layer over ``Announcer``.

It speaks to the person running it: a preview before sending, a
confirmation, a progress bar per channel, a summary table, and errors that
say what to do next. Exit codes: 0 all delivered, 1 some deliveries failed
or unknown, 2 bad input or config (nothing sent), 130 interrupted.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import OutageCommsError
from .redact import RedactingFilter, redact

if TYPE_CHECKING:
    from aiohttp import web

    from .announcer import Announcer, ChannelPlan, Plan
    from .models import Incident, Message
    from .result import Result

app = typer.Typer(
    name="outagecomms",
    help="Tell customers about an outage on every channel at once: SMS, social, website "
    "banner and email, from one incident file, never twice.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# No emoji codes: ":rotating_light:" in a Slack template must preview as written, not as 🚨.
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, emoji=False)
T = TypeVar("T")

STATE_STYLES = {"sent": "green", "delivered": "green", "failed": "red", "unknown": "yellow"}


class State:
    config: Path | None = None


state = State()


@app.callback()
def _global(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="OUTAGECOMMS_CONFIG",
            help="channels.yaml to use (default: ./channels.yaml).",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug log on stderr (secrets redacted).")
    ] = False,
) -> None:
    state.config = config
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])


class _Interrupted(BaseException):
    """SIGINT or SIGTERM outside a send's delivery phase (click would turn a
    KeyboardInterrupt into "Aborted!" and exit 1; this passes through it)."""


def _on_signal(signum: int, frame: object) -> None:
    raise _Interrupted(signum)


def main() -> None:
    """Console-script entry point: exit 130 on SIGINT or SIGTERM at any moment."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    try:
        app()
    except (KeyboardInterrupt, _Interrupted):
        err.print("Interrupted.")
        sys.exit(130)
    except Exception:
        # A bug: show the traceback, but never a secret that an exception carried.
        import traceback

        sys.stderr.write(redact(traceback.format_exc()))
        sys.exit(1)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn our errors into one plain line on stderr and the documented exit code."""
    try:
        yield
    except OutageCommsError as exc:
        # soft_wrap: one line whatever the terminal's width, so logs and grep see all of it.
        err.print(f"[bold red]Error:[/] {escape(redact(str(exc)))}", soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def _announcer() -> Announcer:
    from .announcer import Announcer

    return Announcer.from_config(state.config)


def _incident(path: Path) -> Incident:
    from .models import Incident

    return Incident.load(path)


# --- init -----------------------------------------------------------------------


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to set up (created if needed).")] = Path(
        "."
    ),
) -> None:
    """Create channels.yaml, templates/ and an example incident and audience."""
    from .render import PACKAGED_TEMPLATES

    scaffold = Path(__file__).parent / "scaffold"
    directory.mkdir(parents=True, exist_ok=True)
    created: list[str] = []
    for source, target in (
        (scaffold / "channels.yaml", directory / "channels.yaml"),
        (PACKAGED_TEMPLATES, directory / "templates"),
        (scaffold / "examples", directory / "examples"),
    ):
        if target.exists():
            err.print(f"[yellow]Kept[/] {escape(str(target))} (it already exists)")
            continue
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)
        created.append(str(target))
    for path in created:
        out.print(f"Created {escape(path)}")
    where = "" if directory == Path(".") else f"cd {escape(str(directory))} && "
    out.print(
        "\nNext: try it in the sandbox (nothing real is sent):\n"
        f"  {where}outagecomms send examples/incident-investigating.yaml --sandbox --yes"
    )


# --- check ----------------------------------------------------------------------


@app.command()
def check() -> None:
    """Validate config, templates and credentials. Sends nothing."""
    with _errors():
        announcer = _announcer()
        _check_templates(announcer)
        results = announcer.check()
    table = Table(title="Credentials", title_justify="left")
    for column in ("Channel", "Driver", "Result", "Detail"):
        table.add_column(column)
    styles = {"accepted": "green", "refused": "red", "error": "red", "not checkable": "dim"}
    for name, outcome in results.items():
        settings = announcer.config.channels[name]
        driver = settings.driver + (f" → {settings.fallback.driver}" if settings.fallback else "")
        table.add_row(
            escape(name),
            driver,
            f"[{styles[outcome.status]}]{outcome.status}[/]",
            escape(redact(outcome.detail)),
        )
    out.print(f"Config {escape(str(announcer.config.path))}: OK\nTemplates: OK")
    out.print(table)
    bad = [n for n, r in results.items() if r.status in ("refused", "error")]
    if bad:
        out.print(
            f"[red]Not accepted:[/] {escape(', '.join(bad))}. Fix the credentials named above."
        )
        raise typer.Exit(1)


def _check_templates(announcer: Announcer) -> None:
    """Render every channel at every status, in every language that has templates, with
    sample data, to catch template mistakes."""
    from datetime import UTC, datetime, timedelta

    from .models import PER_RECIPIENT_KINDS, Incident, Recipient
    from .render import Renderer

    sample = Recipient(email="sample@example.com", phone="+12015550123", name="Sam Sample")
    for status in ("investigating", "identified", "monitoring", "resolved"):
        incident = Incident(
            id="outagecomms-check",
            title="Sample incident",
            status=status,  # type: ignore[arg-type]
            summary="A sample summary.",
            eta=datetime.now(UTC) + timedelta(hours=1),
        )
        renderer = Renderer(announcer.config, incident)
        for name in announcer.config.channels:
            kind = announcer.kind_of(name)
            person = sample if kind in PER_RECIPIENT_KINDS else None
            for locale in renderer.template_locales():
                renderer.render_parts(name, kind, person, locale)


# --- preview --------------------------------------------------------------------

IncidentArgument = Annotated[
    Path, typer.Argument(metavar="INCIDENT", help="Incident YAML.", show_default=False)
]
ChannelOption = Annotated[
    list[str] | None, typer.Option("--channel", "-c", help="Only this channel (repeatable).")
]
AudienceOption = Annotated[
    Path | None, typer.Option("--audience", help="Audience CSV instead of the configured one.")
]


@app.command()
def preview(
    incident_file: IncidentArgument,
    channel: ChannelOption = None,
    audience: AudienceOption = None,
) -> None:
    """Render every channel; show the text, its length or segments, and how many it reaches."""
    with _errors():
        announcer = _announcer()
        incident = _incident(incident_file)
        plan = announcer.preflight(incident, channel, audience=audience)
    _show_plan(plan)


def _show_plan(plan: Plan) -> None:
    incident = plan.incident
    out.print(
        f"[bold]{escape(incident.title)}[/] — {incident.status}, {incident.severity} "
        f"(announcement [cyan]{escape(incident.key)}[/])"
    )
    for name, p in plan.channels.items():
        reach = "broadcast" if p.kind not in ("sms", "email") else f"{p.recipients} recipients"
        out.rule(f"[bold]{escape(name)}[/] ({p.settings.driver}, {p.kind}) — {reach}", align="left")
        if p.sample is None:
            out.print("[yellow]Nobody to send to on this channel.[/]")
        elif len(p.samples) > 1:
            # One sample per language in use, most common first.
            for locale, count in p.locales.most_common():
                out.print(f"[bold]{escape(locale)}[/] — {count} recipient(s):")
                _show_sample(p, p.samples[locale])
        else:
            _show_sample(p, p.sample)
        if p.kind == "sms" and p.longest_sms is not None:
            out.print(
                f"[dim]Longest message {p.longest_sms.segments} segment(s) of max "
                f"{getattr(p.settings, 'max_segments', '?')}; about {p.total_segments} SMS "
                "billed in total[/]"
            )
        if p.invalid_locales:
            default = escape(plan.locale)
            out.print(
                f"[yellow]{p.invalid_locales} recipient(s) have a locale that is not a language "
                f"tag such as en or fr-CA; they get the {default} text.[/]"
            )
        if p.skipped:
            reasons = ", ".join(f"{count} {reason}" for reason, count in p.skipped.items())
            out.print(f"[dim]Not sent to: {escape(reasons)}[/]")


def _show_sample(p: ChannelPlan, message: Message) -> None:
    """One rendered message of a channel, with its length against the channel's limit."""
    from .limits import sms_length, social_limit

    if p.kind == "sms":
        length = sms_length(message.text)
        out.print(escape(message.text))
        out.print(
            f"[dim]{length.characters} characters, {length.encoding}, "
            f"{length.segments} segment(s)[/]"
        )
    elif p.kind == "social":
        rule = social_limit(p.settings.driver)
        out.print(escape(message.text))
        out.print(
            f"[dim]{rule.measure(message.text)}/{rule.maximum} {rule.unit} on {rule.network}[/]"
        )
    elif p.kind == "email":
        out.print(f"Subject: {escape(message.subject or '')}")
        out.print(escape(message.text))
        out.print(f"[dim]html part: {len(message.html or '')} characters[/]")
    else:
        out.print(escape(message.text))
        out.print(f"[dim]{len(message.text)} characters[/]")


# --- send -----------------------------------------------------------------------


@app.command()
def send(
    incident_file: IncidentArgument,
    channel: ChannelOption = None,
    audience: AudienceOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render and count only; send and record nothing.")
    ] = False,
    sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Write every message to .outagecomms/outbox/ instead."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    retry_unknown: Annotated[
        bool,
        typer.Option("--retry-unknown", help="Also resend messages whose earlier fate is unknown."),
    ] = False,
) -> None:
    """Send an incident to every channel; only what was not delivered before goes out."""
    with _errors():
        announcer = _announcer()
        incident = _incident(incident_file)
        plan = announcer.preflight(
            incident, channel, audience=audience, credentials=not (dry_run or sandbox)
        )
        if not dry_run:
            # A ledger that cannot be opened: exit 2 before anything is shown as going out.
            announcer.open_store(sandbox=sandbox, recover=False).close()
    _show_plan(plan)
    if dry_run:
        out.print("\n[bold]Dry run:[/] nothing was sent or recorded.")
        return
    where = "the sandbox outbox" if sandbox else "customers"
    asked = not yes and sys.stdin.isatty()
    if asked and not typer.confirm(f"\nSend this announcement to {where}?", default=False):
        out.print("Nothing sent.")
        raise typer.Exit(0)
    with _errors():
        result = _run_with_progress(
            lambda progress, control: announcer.send_async(
                incident,
                channel,
                audience=audience,
                sandbox=sandbox,
                retry_unknown=retry_unknown,
                progress=progress,
                control=control,
                plan=plan,
            ),
            plan,
        )
    _show_result(result, announcer)
    raise typer.Exit(result.exit_code)


def _run_with_progress(start: Callable[[Any, Any], Any], plan: Plan) -> Result:
    """Run a send with one progress bar per channel; SIGINT/SIGTERM stop it gracefully."""
    import asyncio  # here, not at the top: it costs ~40 ms of every `outagecomms --help`

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .announcer import RunControl

    progress = Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    tasks = {
        name: progress.add_task(escape(name), total=max(p.recipients, 1))
        for name, p in plan.channels.items()
    }

    def on_progress(channel: str, done: int, total: int) -> None:
        progress.update(tasks[channel], completed=done, total=max(total, done, 1))

    async def run() -> Result:
        control = RunControl()
        loop = asyncio.get_running_loop()

        def interrupt() -> None:
            if control.stopping.is_set():
                # A second signal: stop waiting; messages in flight are marked unknown.
                control.abort()
                return
            control.stop()
            err.print("[yellow]Stopping: letting messages in flight finish (again to stop now)…[/]")

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, interrupt)
        result: Result = await start(on_progress, control)
        return result

    with _signal_handlers_kept(), progress:
        return asyncio.run(run())


@contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Closing an asyncio loop resets SIGTERM to the default (killed, exit -15): put ours back."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)


def _show_result(result: Result, announcer: Announcer) -> None:
    table = Table(title=f"Announcement {escape(result.announcement)}", title_justify="left")
    for column in (
        "Channel",
        "Carried by",
        "Sent now",
        "Already sent",
        "Failed",
        "Unknown",
        "Pending",
        "Skipped",
    ):
        table.add_column(column, justify="left" if column in ("Channel", "Carried by") else "right")
    for name, c in result.channels.items():
        carriers = ", ".join(f"{d} {n}" for d, n in c.providers.items()) or c.driver
        counts = c.counts
        table.add_row(
            escape(name),
            escape(carriers),
            str(c.sent_now),
            str(counts["sent"] + counts["delivered"] - c.sent_now),
            _styled(counts["failed"], "red"),
            _styled(counts["unknown"], "yellow"),
            _styled(counts["pending"] + counts["sending"], "yellow"),
            str(counts["skipped"]),
        )
    out.print()
    out.print(table)
    for name, c in result.channels.items():
        if c.fallback_reason:
            primary = announcer.config.channels[name].driver
            fallback = announcer.config.channels[name].fallback
            out.print(
                f"[yellow]{escape(name)}: {primary} was unavailable "
                f"({escape(c.fallback_reason)}); "
                f"the fallback {fallback.driver if fallback else '?'} carried the mail.[/]"
            )
        if c.stopped and c.stopped != "interrupted":
            out.print(f"[red]{escape(name)}: {escape(c.stopped)}[/]")
        if c.busy_elsewhere:
            out.print(
                f"[yellow]{escape(name)}: {c.busy_elsewhere} being sent by another run "
                "right now.[/]"
            )
        if c.unknown_kept:
            out.print(
                f"[yellow]{escape(name)}: {c.unknown_kept} with an unknown outcome were not "
                "resent; "
                "check them, then use --retry-unknown to resend.[/]"
            )
    if result.recovered_unknown:
        out.print(
            f"[yellow]{result.recovered_unknown} message(s) were caught mid-send by an earlier "
            "run that stopped; they are marked unknown.[/]"
        )
    for failure in result.failures[:10]:
        out.print(
            f"[red]{failure.state}[/] {escape(failure.channel)} {escape(failure.recipient)}: "
            f"{escape(failure.error or '')}"
        )
    if len(result.failures) > 10:
        out.print(
            f"… and {len(result.failures) - 10} more: outagecomms ledger {result.incident.id}"
        )
    where = " to the sandbox outbox (.outagecomms/outbox/)" if result.sandbox else ""
    if result.interrupted:
        out.print("[yellow]Interrupted.[/] Run the same command again to send the rest.")
    elif result.ok and result.nothing_new:
        out.print(f"Nothing new to send: every message was already delivered{where}.")
    elif result.ok:
        out.print(f"[green]Done:[/] every message was delivered{where}.")
    else:
        out.print(
            "[red]Some messages were not delivered.[/] See above; run the same command again "
            "to retry what failed or is pending."
        )


def _styled(count: int, style: str) -> str:
    return f"[{style}]{count}[/]" if count else "0"


# --- ledger ----------------------------------------------------------


@app.command()
def ledger(
    incident_id: Annotated[
        str | None, typer.Argument(metavar="[INCIDENT_ID]", help="Only this incident.")
    ] = None,
    output: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
) -> None:
    """Show every delivery recorded in the ledger."""
    if output not in ("table", "json", "csv"):
        err.print(
            f"[bold red]Error:[/] --format must be table, json or csv, not '{escape(output)}'",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    rows = []
    with _errors():
        book = _announcer().view_store()
        if book is not None:
            with book:
                rows = [row.as_dict() for row in book.rows(incident_id)]
    if output == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif output == "csv":
        buffer = io.StringIO()
        fields = list(rows[0]) if rows else ["announcement", "channel", "recipient", "state"]
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
    elif not rows:
        out.print("The ledger is empty" + (f" for {incident_id}." if incident_id else "."))
    else:
        table = Table()
        for column in (
            "Announcement",
            "Channel",
            "Recipient",
            "State",
            "Provider",
            "Provider id",
            "Attempts",
            "Updated",
            "Error",
        ):
            table.add_column(column)
        for row in rows:
            style = STATE_STYLES.get(str(row["state"]), "")
            label = f"{row['announcement']}" + (" (sandbox)" if row["sandbox"] else "")
            table.add_row(
                escape(label),
                str(row["channel"]),
                escape(str(row["recipient"])),
                f"[{style}]{row['state']}[/]" if style else str(row["state"]),
                str(row["provider"] or ""),
                escape(str(row["provider_id"] or "")),
                str(row["attempts"]),
                str(row["updated_at"]),
                escape(str(row["error"] or "")),
            )
        out.print(table)


# --- serve ----------------------------------------------------------------------


@app.command()
def serve(
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help="Address to listen on (default: serve.listen in channels.yaml, else "
            "127.0.0.1:8080).",
        ),
    ] = None,
    sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Show the announcements of 'send --sandbox' instead."),
    ] = False,
) -> None:
    """Serve the status page, its Atom feed, the status JSON and banner.js; Ctrl-C stops it."""
    from .config import load_config, parse_listen
    from .errors import ConfigError

    with _errors():
        config = load_config(state.config)
        try:
            host, port = parse_listen(listen or config.serve.listen)
        except ValueError as exc:
            raise ConfigError(f"--listen {exc}") from None
        from .serve import create_app

        application = create_app(config, sandbox=sandbox)

        def ready(url: str) -> None:
            which = "sandbox announcements" if sandbox else "live announcements"
            out.print(
                f"Status page of {escape(config.organization.name)} ({which}) on {url}/ "
                "— Ctrl-C to stop."
            )
            if config.serve.public_url is None:
                out.print(
                    "[dim]serve.public_url is not set: links use the address each request "
                    "came to. Set it when customers reach this server through a proxy.[/]"
                )

        _run_server(application, host, port, ready)
    out.print("Stopped.")


def _run_server(
    application: web.Application, host: str, port: int, ready: Callable[[str], None]
) -> None:
    """Run the server until SIGINT or SIGTERM, then stop it gracefully (exit 0)."""
    import asyncio

    from .serve.server import serve as run_server

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_server(application, host, port, stop=stop, ready=ready)

    with _signal_handlers_kept():
        asyncio.run(run())


# Commands kept in their own modules register themselves on ``app`` when imported.
from . import cli_campaigns, cli_report  # noqa: E402, F401  (import for the side effect)
