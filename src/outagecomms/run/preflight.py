"""Preflight: render every message of every selected channel and check every limit,
before anything is sent. Any problem raises an ``InputError`` (exit 2, nothing sent)."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..audience import OPTED_OUT_ELSEWHERE, CsvAudience, NumberMemo, SkippedRow, Targets
from ..config import Config, DriverSettings, require_credentials
from ..errors import ConfigError, IncidentError
from ..limits import SmsLength, sms_length
from ..locales import display_locale
from ..models import BROADCAST, PER_RECIPIENT_KINDS, Incident, Kind, Message, Recipient
from ..render import Renderer
from .consent import Suppressions, make_renderer

AudienceInput = str | Path | Iterable[Recipient]


@dataclass(slots=True)
class ChannelPlan:
    """What preflight learnt about one channel: who it reaches and what it will say."""

    name: str
    kind: Kind
    settings: DriverSettings
    recipients: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    sample: Message | None = None
    #: For SMS: the longest message's length and the segments of all messages together.
    longest_sms: SmsLength | None = None
    total_segments: int = 0
    #: Addresses that a later row of the audience opted out: never sent to.
    excluded: frozenset[str] = frozenset()
    #: SMS: each row's number as preflight parsed it, for the sending pass.
    numbers: NumberMemo | None = None
    #: Messages per locale (``fr-CA``), and the first message in each, for the preview.
    locales: Counter[str] = field(default_factory=Counter)
    samples: dict[str, Message] = field(default_factory=dict)
    #: Recipients whose ``locale`` is not a language tag (they get organization.locale).
    invalid_locales: int = 0

    def observe(self, message: Message) -> None:
        self.recipients += 1
        if self.sample is None:
            self.sample = message
        locale = message.locale or ""
        self.locales[locale] += 1
        if locale not in self.samples:
            self.samples[locale] = message
        if self.kind == "sms":
            length = sms_length(message.text)
            self.total_segments += length.segments
            if self.longest_sms is None or length.units > self.longest_sms.units:
                self.longest_sms = length


@dataclass(slots=True)
class Plan:
    """The result of preflight: every selected channel, rendered and checked."""

    incident: Incident
    channels: dict[str, ChannelPlan]
    #: The suppression list as preflight read it; the send honours the same list.
    suppressions: Suppressions = field(default_factory=lambda: Suppressions({}))
    #: organization.locale: broadcasts, and recipients without a valid locale, get it.
    locale: str = "en"


class Audience:
    """The audience as something that can be walked more than once."""

    def __init__(self, source: AudienceInput) -> None:
        if isinstance(source, str | Path):
            self._items: Iterable[Recipient | SkippedRow] = CsvAudience(Path(source))
        elif iter(source) is source:
            # A one-shot iterator (e.g. a generator) is kept so later passes see it too.
            self._items = list(source)
        else:
            self._items = source

    def __iter__(self) -> Iterator[Recipient | SkippedRow]:
        return iter(self._items)


def select_channels(
    config: Config, incident: Incident, channels: Sequence[str] | None = None
) -> list[str]:
    """The channels a run uses: those asked for, else the incident's, else all configured."""
    configured = config.channels
    if channels:
        names, source = list(dict.fromkeys(channels)), "--channel"
    elif incident.channels is not None:
        names, source = list(dict.fromkeys(incident.channels)), "the incident's channels"
    else:
        return list(configured)
    for name in names:
        if name not in configured:
            hint = difflib.get_close_matches(name, configured, n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
            error = ConfigError if source == "--channel" else IncidentError
            raise error(
                f"{source} names '{name}', which is not a channel in {config.path} "
                f"(configured: {', '.join(configured) or 'none'}){suggestion}"
            )
    return names


def kind_of(config: Config, name: str) -> Kind:
    """The kind of message a channel sends (a fallback-only driver has none)."""
    settings = config.channels[name]
    if settings.kind is None:
        raise ConfigError(f"channel '{name}': driver '{settings.driver}' cannot be used alone")
    return settings.kind


def open_audience(config: Config, audience: AudienceInput | None) -> Audience:
    """The audience given, else the one channels.yaml names."""
    source = audience if audience is not None else config.audience
    if source is None:
        raise ConfigError(
            f"no audience: set 'audience:' in {config.path} or pass --audience FILE.csv"
        )
    if isinstance(source, str | Path):
        source = config.resolve(Path(source)) if audience is None else Path(source)
    return Audience(source)


def require_all_credentials(config: Config, names: Sequence[str]) -> None:
    """Raise one ``ConfigError`` naming every channel that lacks credentials (not just
    the first), and how to send through the others meanwhile."""
    problems: list[str] = []
    for name in names:
        try:
            require_credentials(name, config.channels[name])
        except ConfigError as exc:
            problems.append(str(exc).split(" in the environment")[0])
    if not problems:
        return
    ready = [name for name in names if not any(f"'{name}'" in p for p in problems)]
    others = (
        f"; meanwhile '--channel {' --channel '.join(ready)}' sends through the others"
        if ready
        else ""
    )
    raise ConfigError(
        "; ".join(problems) + " in the environment or in a .env file next to channels.yaml"
        f" ('outagecomms check' lists them{others}; or try --sandbox, which needs none)"
    )


def preflight(
    config: Config,
    incident: Incident,
    channels: Sequence[str] | None,
    audience: AudienceInput | None,
    credentials: bool,
) -> tuple[Plan, Renderer, Audience | None]:
    """Render and check every message; the plan, the renderer and the audience it read."""
    names = select_channels(config, incident, channels)
    plans = {
        name: ChannelPlan(name, kind_of(config, name), config.channels[name]) for name in names
    }
    if credentials:
        require_all_credentials(config, names)
    renderer = make_renderer(config, incident, names)
    people = [p for p in plans.values() if p.kind in PER_RECIPIENT_KINDS]
    source = open_audience(config, audience) if people else None
    suppressions = Suppressions.of(config) if people else Suppressions({})
    if source is not None:
        _observe_audience(config, renderer, people, source, suppressions)
    for p in plans.values():
        if p.kind not in PER_RECIPIENT_KINDS:
            p.observe(renderer.message(p.name, p.kind, p.settings, address=BROADCAST))
    return (
        Plan(incident, plans, suppressions, display_locale(renderer.default_locale)),
        renderer,
        source,
    )


def _observe_audience(
    config: Config,
    renderer: Renderer,
    people: list[ChannelPlan],
    source: Audience,
    suppressions: Suppressions,
) -> None:
    """Render every person's message on every per-recipient channel, counting skips
    (a suppressed address as ``suppressed (<source>)``)."""
    for p in people:
        p.numbers = NumberMemo() if p.kind == "sms" else None
    targets = {
        p.name: Targets(p.kind, config.default_region, numbers=p.numbers)  # type: ignore[arg-type]
        for p in people
    }
    for item in source:
        for p in people:
            address = targets[p.name].address(item)
            if address is None or not isinstance(item, Recipient):
                continue
            suppressed = suppressions.reason(address)
            if suppressed is not None:
                targets[p.name].skipped[suppressed] += 1
                continue
            p.observe(renderer.message(p.name, p.kind, p.settings, address=address, recipient=item))
            if item.locale is not None and renderer.invalid_locale(item.locale):
                p.invalid_locales += 1
    for p in people:
        # Only those observed: a suppressed address was counted as such already.
        late = {a for a in targets[p.name].late_opt_outs() if suppressions.reason(a) is None}
        if late:
            # Observed before their "no" turned up: take them back out.
            p.recipients -= len(late)
            targets[p.name].skipped[OPTED_OUT_ELSEWHERE] += len(late)
            p.excluded = frozenset(late)
        p.skipped = dict(targets[p.name].skipped)
