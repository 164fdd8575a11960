"""Language tags: how a recipient's ``locale`` (and a template folder's name) is understood.

Tags are matched case-insensitively with ``_`` equal to ``-`` (``fr_ca``, ``FR-CA`` and
``fr-CA`` are one tag), so both are reduced to one key: lower case, ``-`` between subtags.
A tag is valid when it is well formed (BCP 47's shape: a 2-3 letter language, then subtags)
and Babel knows its language, because Babel formats its times; anything else is invalid
and the caller falls back to ``organization.locale``. Times are formatted for the longest
prefix of the tag that Babel knows (``fr-XK`` as ``fr``, ``en-US-x-shop`` as ``en-US``).

A tag's fallbacks drop one subtag at a time: ``zh-hant-tw``, ``zh-hant``, ``zh``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, tzinfo
from functools import cache

import babel
import babel.dates

_WELL_FORMED = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")


@cache
def normalise_locale(tag: str) -> str | None:
    """The key of a language tag (``fr_CA`` -> ``fr-ca``), or None when it is invalid."""
    key = tag.strip().replace("_", "-").lower()
    if not _WELL_FORMED.fullmatch(key) or _known_prefix(key) is None:
        return None
    return key


def _known_prefix(key: str) -> babel.Locale | None:
    """Babel's locale for the longest prefix of ``key`` it knows, or None."""
    for candidate in fallbacks(key):
        try:
            return babel.Locale.parse(candidate, sep="-")
        except (ValueError, babel.UnknownLocaleError):
            continue
    return None


def fallbacks(key: str) -> list[str]:
    """``fr-ca`` -> ``["fr-ca", "fr"]``: the tag, then ever shorter prefixes of it."""
    parts = key.split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


@cache
def display_locale(key: str) -> str:
    """A key as people write it: ``fr-ca`` -> ``fr-CA``, ``zh-hant-tw`` -> ``zh-Hant-TW``."""
    language, *rest = key.split("-")
    shown = [language]
    for part in rest:
        if len(part) == 4 and part.isalpha():
            shown.append(part.title())
        elif len(part) == 2 or (len(part) == 3 and part.isdigit()):
            shown.append(part.upper())
        else:
            shown.append(part)
    return "-".join(shown)


@cache
def babel_locale(key: str) -> babel.Locale:
    """The Babel locale of a valid key (of its longest prefix Babel knows)."""
    locale = _known_prefix(key)
    assert locale is not None, key  # normalise_locale accepted it
    return locale


#: ``when`` formats by name; anything else is a CLDR pattern (``EEEE d MMMM``) or, with a
#: ``%``, a strftime format.
WHEN_FORMATS = ("time", "date", "datetime")


# CLDR writes (narrow) no-break spaces in times ("12:00\u202fPM", "12 h 00"): outside GSM-7,
# one of them would turn a whole SMS into UCS-2 and double its segments.
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " "})


def format_when(value: datetime | date | None, fmt: str, key: str, zone: tzinfo) -> str:
    """A time for people reading ``key``'s language, in ``zone`` (the ``when`` filter).

    ``time``: the short time and the zone (``12:00 PM UTC``, ``12:00 UTC`` in fr);
    ``date``: the long date (``22 novembre 2026``); ``datetime``: day, month and time
    with the zone (``Nov 22, 12:00 PM UTC``). No-break spaces become plain ones.
    """
    if value is None:
        return ""
    return _format_when(value, fmt, key, zone).translate(_SPACES)


def _format_when(value: datetime | date, fmt: str, key: str, zone: tzinfo) -> str:
    locale = babel_locale(key)
    if not isinstance(value, datetime):
        if fmt in ("date", "datetime", "time"):
            return babel.dates.format_date(value, "long", locale=locale)
        return value.strftime(fmt) if "%" in fmt else babel.dates.format_date(value, fmt, locale)
    local = value.astimezone(zone)
    if "%" in fmt:
        return local.strftime(fmt)
    if fmt == "date":
        return babel.dates.format_date(local.date(), "long", locale=locale)
    if fmt not in ("time", "datetime"):
        return babel.dates.format_datetime(local, fmt, tzinfo=zone, locale=locale)
    shown = babel.dates.format_time(local, "short", tzinfo=zone, locale=locale)
    if fmt == "datetime":
        day = babel.dates.format_skeleton("MMMd", local, tzinfo=zone, locale=locale)
        shown = f"{day}, {shown}"
    return f"{shown} {_zone_name(local, zone, locale)}"


def _zone_name(value: datetime, zone: tzinfo, locale: babel.Locale) -> str:
    """The zone's short name in the locale (UTC, CET, EST), or its offset (GMT+01:00) when the
    locale has no short name for it."""
    name = babel.dates.format_datetime(value, "z", tzinfo=zone, locale=locale)
    if " " in name or name[:1] in "+-":
        return babel.dates.get_timezone_gmt(value, "long", locale=locale)
    return name
