"""The ``outagecomms`` command: a thin Typer + Rich layer over ``Announcer``.

It speaks to the person running it: a preview before sending, a
confirmation, a progress bar per channel, a summary table, and errors that
say what to do next. Exit codes: 0 all delivered, 1 some deliveries failed
or unknown, 2 bad input or config (nothing sent), 130 interrupted.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import OutageCommsError
from .redact import RedactingFilter, redact

if TYPE_CHECKING:
    from aiohttp import web

    from .announcer import Announcer, ChannelPlan, Plan
    from .models import Incident, Message
    from .result import ChannelResult, Result
    from .store import Row
    from .views import RowFilter

#: How ``--help`` names what an option takes: words, not Python types (``<bool>``).
_TYPE_WORDS = {"int": "NUMBER", "float": "NUMBER", "str": "TEXT", "path": "PATH", "bool": ""}


def _type_in_words(param: Any, ctx: Any) -> str | None:
    """``--help``'s type column: NUMBER, TEXT, PATH (``...`` when repeatable); nothing
    for a flag. Replaces Typer's ``<bool>``, ``<list[str]>`` and ``<path>``."""
    if getattr(param, "is_flag", False):
        return None
    if isinstance(param, typer.core.TyperOption) and param.metavar is not None:
        return param.metavar
    label = param.display_type(ctx).strip("<>")
    many = label.startswith("list[")
    word = _TYPE_WORDS.get(label.removeprefix("list[").removesuffix("]"), label.upper())
    return (word + ("..." if many else "")) or None


typer.core.TyperOption.display_type_rich = _type_in_words  # type: ignore[method-assign]
typer.core.TyperArgument.display_type_rich = _type_in_words  # type: ignore[method-assign]

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


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"outagecomms {__version__}")
        raise typer.Exit(0)


#: Options of the command as a whole, accepted after a subcommand too (``ledger --config x``).
_GLOBAL_WITH_VALUE = ("--config",)
_GLOBAL_FLAGS = ("--verbose", "-v")


def global_options_first(argv: list[str]) -> list[str]:
    """``argv`` with the global options that follow the subcommand moved before it, so
    ``outagecomms ledger --config x`` means ``outagecomms --config x ledger``. Anything
    after ``--`` is left alone."""
    commands = {c.name or getattr(c.callback, "__name__", "") for c in app.registered_commands}
    head: list[str] = []
    index = 0
    while index < len(argv) and argv[index] not in commands:
        if argv[index] in _GLOBAL_WITH_VALUE:
            head.append(argv[index])
            index += 1
        if index < len(argv):
            head.append(argv[index])
        index += 1
    moved: list[str] = []
    rest: list[str] = []
    tail = argv[index:]
    position = 0
    while position < len(tail):
        arg = tail[position]
        if arg == "--":
            rest += tail[position:]
            break
        if arg in _GLOBAL_FLAGS or arg.startswith("--config="):
            moved.append(arg)
        elif arg in _GLOBAL_WITH_VALUE and position + 1 < len(tail):
            moved += [arg, tail[position + 1]]
            position += 1
        else:
            rest.append(arg)
        position += 1
    return head + moved + rest


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
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_show_version, help="Show the version and exit."
        ),
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
        app(args=global_options_first(sys.argv[1:]), prog_name="outagecomms")
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

    _refuse_missing_config()
    return Announcer.from_config(state.config)


def _refuse_missing_config() -> None:
    """A missing channels.yaml, explained: where it was looked for, how to point to
    another, and ``init`` only when nothing here suggests a set-up folder already."""
    from .config import CONFIG_ENV, config_path
    from .errors import ConfigError

    file = config_path(state.config)
    if file.is_file():
        return
    if state.config:
        source = "--config"
    elif os.environ.get(CONFIG_ENV):
        source = f"${CONFIG_ENV}"
    else:
        source = "the current folder"
    message = f"no config file at {file.resolve()} (from {source})"
    cwd = Path.cwd()
    nearby = sorted(p.parent.name for p in cwd.glob("*/channels.yaml"))
    ledgers = [d for d in (cwd, *cwd.parents) if (d / ".outagecomms").is_dir()]
    if nearby:
        also = f" (or {', '.join(nearby[1:4])}{', …' if nearby[4:] else ''})" if nearby[1:] else ""
        message += f"; a set-up folder is right here: cd {nearby[0]}{also}"
    elif ledgers:
        message += (
            f"; {ledgers[0] / '.outagecomms'} holds a ledger, so outagecomms was set up near "
            "here: run the command in the folder that has channels.yaml"
        )
    else:
        message += "; run the command in the folder that has channels.yaml"
    message += f", or point to the file with --config PATH or {CONFIG_ENV}=PATH"
    if not nearby and not ledgers:
        message += "; to start afresh, 'outagecomms init' creates one"
    raise ConfigError(message)


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
        f"  {where}{_this_command()} send examples/incident-investigating.yaml --sandbox --yes"
    )


def _this_command() -> str:
    """How to run this very outagecomms again from any folder: ``outagecomms`` when that
    is what the shell finds, else its full path (a venv that is not activated), else
    ``python -m outagecomms`` with this interpreter."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "outagecomms":
        mine = argv0.resolve()
        found = shutil.which("outagecomms")
        if found and Path(found).resolve() == mine:
            return "outagecomms"
        return str(argv0.absolute())
    return f"{sys.executable} -m outagecomms"


# --- check ----------------------------------------------------------------------


#: Audience rows ``check`` reads to see that the file parses (it never reads a million).
CHECK_AUDIENCE_ROWS = 200


@app.command()
def check() -> None:
    """Validate config, templates, the audience file and credentials. Sends nothing."""
    with _errors():
        announcer = _announcer()
        _check_templates(announcer)
    out.print(f"Config {escape(str(announcer.config.path))}: OK\nTemplates: OK")
    audience_ok = _check_audience(announcer)
    with _errors():
        results = announcer.check()
    missing = _missing_variables(announcer)
    table = Table(title="Credentials", title_justify="left")
    for column in ("Channel", "Driver", "Result"):
        table.add_column(column, no_wrap=True)
    table.add_column("Detail", overflow="fold")
    styles = {"accepted": "green", "refused": "red", "error": "red", "not checkable": "dim"}
    for name, outcome in results.items():
        settings = announcer.config.channels[name]
        driver = settings.driver + (f" → {settings.fallback.driver}" if settings.fallback else "")
        detail = "not set (see below)" if name in missing else redact(outcome.detail)
        table.add_row(
            escape(name), driver, f"[{styles[outcome.status]}]{outcome.status}[/]", escape(detail)
        )
    out.print(table)
    if missing:
        # One name a line, whole: they are copied into a .env file, never cut or wrapped.
        out.print("Set these in the environment, or in a .env file next to channels.yaml:")
        for name, variables in missing.items():
            out.print(f"  channel {escape(name)}:")
            for variable in variables:
                out.print(f"    {variable}", soft_wrap=True, overflow="ignore", crop=False)
    bad = [n for n, r in results.items() if r.status in ("refused", "error")]
    if bad:
        out.print(
            f"[red]Not accepted:[/] {escape(', '.join(bad))}. Fix the credentials named above; "
            "until then 'send --channel NAME' sends through the others."
        )
    if not audience_ok:
        raise typer.Exit(2)
    if bad:
        raise typer.Exit(1)


def _missing_variables(announcer: Announcer) -> dict[str, list[str]]:
    """Per channel, the environment variables of the credentials it lacks."""
    from .config import env_name

    missing: dict[str, list[str]] = {}
    for name, settings in announcer.config.channels.items():
        for path, current in (((name,), settings), ((name, "fallback"), settings.fallback)):
            if current is not None:
                for key in current.missing_secrets():
                    missing.setdefault(name, []).append(env_name(*path, key))
    return missing


def _check_audience(announcer: Announcer) -> bool:
    """The audience file exists, has a usable header and its first rows parse; prints
    what it found. False when it cannot be used."""
    from collections import Counter

    from .errors import InputError
    from .models import Recipient
    from .run.preflight import open_audience

    config = announcer.config
    if config.audience is None:
        out.print("[yellow]Audience:[/] none configured; pass --audience FILE.csv to send")
        return True
    shown = escape(str(config.audience))
    usable, skipped = 0, Counter[str]()
    try:
        for item in itertools.islice(open_audience(config, None), CHECK_AUDIENCE_ROWS):
            if isinstance(item, Recipient):
                usable += 1
            else:
                skipped[item.reason] += 1
    except InputError as exc:
        out.print(f"[red]Audience {shown}:[/] {escape(redact(str(exc)))}", soft_wrap=True)
        return False
    read = usable + sum(skipped.values())
    if read == 0:
        out.print(f"[red]Audience {shown}:[/] has a header but no rows; nobody would be told")
        return False
    reasons = ", ".join(f"{count} {reason}" for reason, count in skipped.most_common())
    out.print(
        f"Audience {shown}: OK (first {read} rows: {usable} usable"
        + (f"; not usable: {escape(reasons)}" if reasons else "")
        + ")"
    )
    return True


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
    _show_plan(plan, announcer.config.organization.timezone)


def _show_plan(plan: Plan, zone: str = "UTC") -> None:
    from .views import both_times

    incident = plan.incident
    out.print(
        f"[bold]{escape(incident.title)}[/] — {incident.status}, {incident.severity} "
        f"(announcement [cyan]{escape(incident.key)}[/])"
    )
    out.print(
        f"Started {both_times(incident.started_at, zone)}"
        + (f"; expected fix {both_times(incident.eta, zone)}" if incident.eta else "")
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
        quiet = getattr(p.settings, "quiet_hours", None)
        if quiet:
            out.print(
                f"[dim]Quiet hours {quiet} in each recipient's time: messages inside them wait "
                "for a later send (--ignore-quiet-hours sends them now).[/]"
            )


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
    ignore_quiet_hours: Annotated[
        bool,
        typer.Option(
            "--ignore-quiet-hours", help="Send SMS now even inside quiet_hours (critical only)."
        ),
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
            # A ledger that cannot be opened, or an edited incident under a key already
            # sent: exit 2 before anything is shown as going out.
            announcer.refuse_changed_content(incident, sandbox=sandbox, source=incident_file)
            left = _messages_left(announcer, plan, sandbox=sandbox)
    _show_plan(plan, announcer.config.organization.timezone)
    if dry_run:
        out.print("\n[bold]Dry run:[/] nothing was sent or recorded.")
        return
    where = "the sandbox outbox" if sandbox else "customers"
    asked = not yes and sys.stdin.isatty() and left > 0
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
                ignore_quiet_hours=ignore_quiet_hours,
            ),
            plan,
        )
    _show_result(result, announcer)
    raise typer.Exit(result.exit_code)


def _messages_left(announcer: Announcer, plan: Plan, *, sandbox: bool) -> int:
    """About how many messages a send would still deliver (0: nothing to confirm).

    Counts the planned messages not yet delivered; an interrupted earlier run's
    unplanned rest counts too, as planned minus recorded."""
    from .store import DONE_STATES

    key = plan.incident.key
    left = 0
    with announcer.open_store(sandbox=sandbox, recover=False) as store:
        for name, p in plan.channels.items():
            counts = store.counts(key, name)
            recorded = sum(counts.values())
            done = sum(counts[state] for state in DONE_STATES if state in counts)
            left += (recorded - done) + max(0, max(p.recipients, 1) - recorded)
    return left


def _RateColumn() -> Any:
    """A progress column: messages per second (``1,234/s``), blank until known. Outcomes
    are counted a batch at a time, so a channel done in one batch gives rich a single
    sample and no speed: the rate is then the messages done over the time taken."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None and task.completed and task.elapsed:
                speed = task.completed / task.elapsed
            return Text("" if speed is None else f"{speed:,.0f}/s", style="cyan")

    return RateColumn()


def _run_with_progress(start: Callable[[Any, Any], Any], plan: Plan) -> Result:
    """Run a send with one progress bar per channel; SIGINT/SIGTERM stop it gracefully."""
    import asyncio  # here, not at the top: it costs ~40 ms of every `outagecomms --help`

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .announcer import RunControl

    progress = Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
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
            _styled(counts["pending"] + counts["sending"] + _never_planned(c), "yellow"),
            str(counts["skipped"]),
        )
    out.print()
    out.print(table)
    for name, c in result.channels.items():
        unplanned = _never_planned(c)
        if unplanned:
            out.print(
                f"[yellow]{name}: {unplanned:,} not reached yet when the run stopped (counted "
                "under Pending); run the same command again to send them.[/]"
            )
        if c.republished:
            out.print(f"{name}: republished with the current state (a banner shows what is now).")
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
    deferred = _show_deferred(result)
    if result.interrupted:
        out.print("[yellow]Interrupted.[/] Run the same command again to send the rest.")
    elif result.ok and deferred:
        out.print(
            f"[yellow]Done for now:[/] every message that may go now was delivered{where}; "
            f"run the same command again after {escape(deferred)} for the rest."
        )
    elif result.ok and result.nothing_new:
        out.print(f"Nothing new to send: every message was already delivered{where}.")
    elif result.ok:
        out.print(f"[green]Done:[/] every message was delivered{where}.")
    else:
        out.print(
            "[red]Some messages were not delivered.[/] See above; run the same command again "
            "to retry what failed or is pending."
        )


def _never_planned(c: ChannelResult) -> int:
    """Messages of the plan that a stopped run never recorded (not even ``pending``).
    Skipped audience rows are no messages: a stopped run has recorded only some of them."""
    recorded = sum(c.counts.values()) - c.counts["skipped"]
    return max(0, c.planned - recorded)


def _show_deferred(result: Result) -> str | None:
    """Say which SMS wait for quiet hours to end; when the last of them may go."""
    from datetime import datetime

    latest: str | None = None
    for name, c in result.channels.items():
        if c.deferred and c.deferred_until:
            out.print(
                f"[yellow]{name}: {c.deferred} deferred by quiet hours (the recipient's night) "
                f"until {c.deferred_until} at the latest; --ignore-quiet-hours sends now.[/]"
            )
            if latest is None or datetime.fromisoformat(c.deferred_until) > datetime.fromisoformat(
                latest
            ):
                latest = c.deferred_until
    return latest


def _styled(count: int, style: str) -> str:
    return f"[{style}]{count}[/]" if count else "0"


# --- ledger ----------------------------------------------------------


@app.command()
def ledger(
    incident_id: Annotated[
        str | None, typer.Argument(metavar="[INCIDENT_ID]", help="Only this incident.")
    ] = None,
    output: Annotated[
        str, typer.Option("--format", "-f", metavar="FORMAT", help="table, json or csv.")
    ] = "table",
    channel: Annotated[
        list[str] | None,
        typer.Option("--channel", "-c", metavar="NAME", help="Only this channel (repeatable)."),
    ] = None,
    state_filter: Annotated[
        list[str] | None,
        typer.Option(
            "--state", metavar="STATE", help="Only rows in this state (repeatable), e.g. failed."
        ),
    ] = None,
    announcement: Annotated[
        str | None,
        typer.Option("--announcement", metavar="KEY", help="Only this announcement key."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", metavar="NUMBER", min=1, help="Show at most this many rows."),
    ] = None,
) -> None:
    """Show the deliveries recorded in the ledger (json and csv stream any number of rows)."""
    from .store import STATES
    from .views import RowFilter

    if output not in ("table", "json", "csv"):
        _usage_error(f"--format must be table, json or csv, not '{output}'")
    unknown = sorted(set(state_filter or ()) - set(STATES))
    if unknown:
        _usage_error(f"--state '{unknown[0]}' is not a state; use one of {', '.join(STATES)}")
    rows_filter = RowFilter(
        channels=frozenset(channel) if channel else None,
        states=frozenset(state_filter) if state_filter else None,
        announcement=announcement,
        limit=limit,
    )
    with _errors():
        announcer = _announcer()
        book = announcer.view_store()
        if book is None:
            _show_ledger(output, iter(()), rows_filter, incident_id, announcer)
            return
        with book:
            _show_ledger(output, book.rows(incident_id), rows_filter, incident_id, announcer)


def _usage_error(message: str) -> NoReturn:
    err.print(f"[bold red]Error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


def _show_ledger(
    output: str,
    rows: Iterator[Row],
    rows_filter: RowFilter,
    incident_id: str | None,
    announcer: Announcer,
) -> None:
    from .views import write_csv, write_json

    selected = rows_filter.apply(rows)
    if output == "json":
        write_json(selected, sys.stdout)
    elif output == "csv":
        write_csv(selected, sys.stdout)
    else:
        _ledger_table(selected, rows_filter, incident_id, announcer)


#: Rows a table shows when the output is not a terminal (a file, a pipe): beyond that, csv.
TABLE_ROWS_OFF_SCREEN = 1000


def _ledger_table(
    rows: Iterator[Row], rows_filter: RowFilter, incident_id: str | None, announcer: Announcer
) -> None:
    """At most a screenful (or ``--limit``) as a table that fits the terminal's width; the
    rest counted, with the commands that show or export all of it."""
    from rich import box

    from .views import TABLE_COLUMNS, WRAPPING, fitting_columns, wrap_widths

    if rows_filter.limit is not None:
        room = rows_filter.limit
    elif out.is_terminal:
        room = max(out.size.height - 10, 10)
    else:
        room = TABLE_ROWS_OFF_SCREEN
    shown = list(itertools.islice(rows, room))
    more = sum(1 for _ in rows)
    if not shown:
        out.print("The ledger is empty" + (f" for {escape(incident_id)}." if incident_id else "."))
        return
    incidents = {row.incident for row in shown}
    announcements = {(row.announcement, row.sandbox) for row in shown}
    one_incident = len(incidents) == 1 and (incident_id is not None or more == 0)
    one_announcement = len(announcements) == 1 and more == 0
    zone = announcer.config.organization.timezone
    title = "Ledger"
    if one_announcement:
        key, sandbox = next(iter(announcements))
        title += f" of announcement {key}" + (" (sandbox)" if sandbox else "")
    elif one_incident:
        title += f" of incident {next(iter(incidents))}"
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    columns = fitting_columns(out.width, announcement=not one_announcement)
    shown_cells = [_ledger_cells(row, zone, one_incident=one_incident) for row in shown]
    widths = wrap_widths(columns, shown_cells, out.width)
    for column in columns:
        header = f"Updated ({zone})" if column.title == "Updated" else column.title
        table.add_column(
            header,
            overflow="fold",
            no_wrap=column.title not in WRAPPING,
            min_width=min(column.width, 7),
            width=widths.get(column.title),
        )
    for row, cells in zip(shown, shown_cells, strict=True):
        style = STATE_STYLES.get(row.state, "")
        table.add_row(
            *(
                f"[{style}]{escape(cells[c.title])}[/]"
                if c.title == "State" and style
                else escape(cells[c.title])
                for c in columns
            )
        )
    out.print(table)
    hidden = [c.title for c in TABLE_COLUMNS if c not in columns and c.title != "Announcement"]
    if hidden:
        out.print(
            f"[dim]Not shown at this width: {', '.join(hidden)} (see --format csv).[/]",
            soft_wrap=False,
        )
    if more:
        which = f" {incident_id}" if incident_id else ""
        out.print(
            f"… and {more:,} more row(s). See them with "
            f"[bold]outagecomms ledger{escape(which)} --format csv > ledger.csv[/] (or json), "
            "or narrow the list with --channel, --state, --announcement or --limit.",
            soft_wrap=False,
        )


def _ledger_cells(row: Row, zone: str, *, one_incident: bool) -> dict[str, str]:
    """A ledger row's cells as the table shows them; the incident is said once, in the
    title, when the table holds one."""
    label = row.announcement
    if one_incident:
        label = label.removeprefix(f"{row.incident}/")
    from .views import local_time

    return {
        "Announcement": label + (" (sandbox)" if row.sandbox else ""),
        "Channel": row.channel,
        "Recipient": row.recipient,
        "State": row.state,
        "Updated": local_time(row.updated_at, zone),
        "Error": row.error or "",
        "Attempts": str(row.attempts),
        "Provider": row.provider or "",
        "Provider id": row.provider_id or "",
    }


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
from . import cli_campaigns, cli_consent, cli_report  # noqa: E402, F401  (import for the side effect)
