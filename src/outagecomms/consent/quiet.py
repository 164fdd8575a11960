"""Quiet hours for SMS: no message while it is night where the recipient may be.

A window such as ``"21:00-08:00"`` is in the recipient's local time. The
recipient's zone is not always known, so a message is quiet when it falls in
the window in *any* candidate zone: the audience's ``timezone`` column when
set, else every zone ``phonenumbers`` gives for the number (a US toll-free
number gives all of North America's), else the organization's zone.

Everything here takes ``now``: nothing reads the clock, so the rules can be
tested at any instant.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
#: ``phonenumbers`` answers this when it does not know the number's zone.
_UNKNOWN_ZONE = "Etc/Unknown"
#: Windows of several zones can chain into each other; this bounds the search.
_MAX_STEPS = 64


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in local time, ``start`` included, ``end`` excluded; it may span
    midnight (``21:00-08:00``)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``"HH:MM-HH:MM"``; ``ValueError`` with a plain explanation otherwise."""
        match = _WINDOW.match(text or "")
        if match is None:
            raise ValueError(f"'{text}' is not a window like \"21:00-08:00\" (HH:MM-HH:MM)")
        hours_start, minutes_start, hours_end, minutes_end = (int(g) for g in match.groups())
        try:
            start, end = time(hours_start, minutes_start), time(hours_end, minutes_end)
        except ValueError:
            raise ValueError(f"'{text}' has a time that does not exist (00:00 to 23:59)") from None
        if start == end:
            raise ValueError(f"'{text}' starts and ends at the same time; give a real window")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, local: datetime) -> datetime:
        """When the window ``local`` (an aware datetime inside it) is in ends, same zone."""
        day: date = local.date()
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)
        assert local.tzinfo is not None
        end = datetime.combine(day, self.end, tzinfo=local.tzinfo)
        # A wall time skipped by a DST change resolves to an instant not after ``local``
        # only in pathological zones; never answer a moment in the past.
        return end if end > local else local + timedelta(minutes=1)


@functools.cache
def _zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@functools.lru_cache(maxsize=4096)
def _number_zones(number: str) -> tuple[str, ...]:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in phone_timezones.time_zones_for_number(parsed) if z != _UNKNOWN_ZONE)


def candidate_zones(
    number: str, timezone: str | None = None, default: str = "UTC"
) -> tuple[tzinfo, ...]:
    """The zones the owner of ``number`` (E.164) may be in, most specific source first:
    the audience's ``timezone`` when it is a known zone, else the number's, else ``default``."""
    if timezone:
        zone = _zone(timezone.strip())
        if zone is not None:
            return (zone,)
    zones = tuple(z for z in (_zone(name) for name in _number_zones(number)) if z is not None)
    if zones:
        return zones
    return (_zone(default) or ZoneInfo("UTC"),)


def quiet_until(window: QuietHours, zones: Sequence[tzinfo], now: datetime) -> datetime | None:
    """``None`` when ``now`` is outside the window in every zone; otherwise the first
    instant after which it is outside in all of them, in the zone whose window ends
    last (so it reads as the recipient's local time, with its offset).

    Several zones can chain: when one zone's night ends, another's may have begun.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    moment, until = now, None
    for _ in range(_MAX_STEPS):
        ends = [
            window.ends_after(local)
            for local in _locals(moment, zones)
            if window.contains(local.time())
        ]
        if not ends:
            return until
        until = max(ends)
        moment = until
    return until


def _locals(moment: datetime, zones: Iterable[tzinfo]) -> list[datetime]:
    return [moment.astimezone(zone) for zone in zones]
