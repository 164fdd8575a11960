"""Channel length arithmetic: SMS segments and the post length of each social network.

Pure functions without I/O (the one exception: the first X text that could hold a URL imports
``twitter_text``, which reads its bundled emoji table once).

SMS (3GPP TS 23.038 / GSM 03.38)
    A message whose every character is in the GSM-7 default alphabet is sent as GSM-7: one septet
    per character, two for the extension characters (form feed ``^ { } \\ [ ~ ] | €``), 160
    septets in a single message, 153 per segment once split (the rest of the 140 bytes carry the
    concatenation header). One character outside both tables turns the whole message into UCS-2:
    UTF-16 code units, 70 in a single message, 67 per segment. A segment never ends between the
    escape septet and its extension character, nor between the halves of a surrogate pair, so
    segment counts come from walking the characters whenever such a pair is present.

X (twitter-text v3 configuration)
    NFC first; then every URL counts 23 whatever its length, every emoji (flags, keycaps, skin
    tones and ZWJ sequences included) counts 2, and every other code point counts 1 inside
    U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F, U+2032-U+2037, else 2. Like the X API, a CRLF
    pair counts as the single LF it is stored as.

    URL detection is delegated to ``twitter_text.extract_urls_with_indices`` (the
    ``twitter-text-parser`` package), which carries twitter-text's URL grammar and TLD lists and
    passes its conformance suite. Its ``parse_tweet`` is not used: it is about 20 times slower
    (its emoji regex is an alternation of every Emoji 12 sequence) and, its table stopping at
    Emoji 12, counts newer sequences by their parts (🫱🏻‍🫲🏿 = 9, ❤️‍🔥 = 5 instead of 2).

    Emoji are matched here by structure instead: UTS #51 sequences over Extended_Pictographic,
    reserved blocks included, so emoji newer than this module still count 2. The details follow
    twemoji-parser, which twitter-text uses: U+FE0F belongs to the emoji only after a character
    that has a variation sequence (elsewhere it counts 2 on its own), a skin tone only after a
    modifier base. Known differences, both on text nobody types: a bare © or ® counts 2 like in
    twitter-text-parser (twemoji-parser says 1; erring long is the safe side), and a made-up ZWJ
    chain or an invalid pair of regional indicators counts 2 where a table counts its parts.

Mastodon (``StatusLengthValidator``)
    Grapheme clusters, after every ``http(s)://`` URL is replaced by 23 characters and every
    ``@user@domain`` mention by ``@user``: the instance counts the same way. 500 is Mastodon's
    default; an instance may allow more, never less for this text.

Bluesky (``app.bsky.feed.post`` lexicon)
    ``text`` is at most 300 grapheme clusters (UAX #29, counted with the ``regex`` package's
    ``\\X``); URLs count in full, as written.

The social templates are shared between social channels, so ``social_limit`` names the rule
of each driver and a channel is checked against its own (and its fallback's).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

__all__ = [
    "BLUESKY_MAX_GRAPHEMES",
    "MASTODON_MAX_CHARACTERS",
    "TWILIO_MAX_BODY",
    "X_MAX_WEIGHTED_LENGTH",
    "SmsLength",
    "SocialLimit",
    "bluesky_length",
    "mastodon_length",
    "sms_length",
    "social_limit",
    "x_weighted_length",
]

X_MAX_WEIGHTED_LENGTH = 280
MASTODON_MAX_CHARACTERS = 500
BLUESKY_MAX_GRAPHEMES = 300
TWILIO_MAX_BODY = 1600

# --- SMS -------------------------------------------------------------------------------------

# The GSM 03.38 default alphabet indexed by septet value, so it can be checked against the
# standard's table row by row. 0x1B is the escape to the extension table, not a character.
_GSM7_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_GSM7_BASIC = frozenset(_GSM7_BASIC_TABLE) - {"\x1b"}
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


def _char_class(chars: frozenset[str]) -> str:
    return "".join(re.escape(c) for c in sorted(chars))


# A compiled character class scans faster than set membership per character (about 1.9M vs
# 1.2M checks/s on a 150-character text), and this runs once per recipient.
_NOT_GSM7_BASIC = re.compile(f"[^{_char_class(_GSM7_BASIC)}]")
_NOT_GSM7 = re.compile(f"[^{_char_class(_GSM7_BASIC | _GSM7_EXTENSION)}]")
_GSM7_EXTENSION_CHAR = re.compile(f"[{_char_class(_GSM7_EXTENSION)}]")
_ASTRAL = re.compile(r"[\U00010000-\U0010FFFF]")

_GSM7_SINGLE, _GSM7_PER_SEGMENT = 160, 153
_UCS2_SINGLE, _UCS2_PER_SEGMENT = 70, 67


@dataclass(frozen=True, slots=True)
class SmsLength:
    """How an SMS body is encoded and how many segments (billed messages) it takes.

    ``units`` are septets for GSM-7 (an extension character takes two) and UTF-16 code units for
    UCS-2 (a character outside the Basic Multilingual Plane takes two). The empty text is one
    segment: an empty SMS is still a message that gets sent and billed.
    """

    encoding: Literal["GSM-7", "UCS-2"]
    units: int
    segments: int
    characters: int

    @property
    def per_segment(self) -> int:
        """Units per segment: the smaller split size once a concatenation header is needed."""
        if self.encoding == "GSM-7":
            return _GSM7_SINGLE if self.segments == 1 else _GSM7_PER_SEGMENT
        return _UCS2_SINGLE if self.segments == 1 else _UCS2_PER_SEGMENT


def _count_segments(text: str, doubles: re.Pattern[str], per_segment: int) -> int:
    # A two-unit character that does not fit in what is left of a segment moves whole to the next
    # one, leaving a unit unused; dividing the unit count would miss that. One-unit runs can split
    # anywhere, so only the two-unit characters need a look, not every character.
    segments, used, position = 1, 0, 0
    for match in doubles.finditer(text):
        used += match.start() - position
        if used > per_segment:
            full = (used - 1) // per_segment
            segments += full
            used -= full * per_segment
        if used + 2 > per_segment:
            segments += 1
            used = 2
        else:
            used += 2
        position = match.end()
    used += len(text) - position
    return segments + max(used - 1, 0) // per_segment


def sms_length(text: str) -> SmsLength:
    """Encoding, length in units and segment count of ``text`` sent as one SMS body."""
    characters = len(text)
    if _NOT_GSM7_BASIC.search(text) is None:
        # The common case: every character one septet, so no pair can straddle a boundary.
        if characters <= _GSM7_SINGLE:
            return SmsLength("GSM-7", characters, 1, characters)
        return SmsLength("GSM-7", characters, -(-characters // _GSM7_PER_SEGMENT), characters)

    if _NOT_GSM7.search(text) is None:
        units = characters + len(_GSM7_EXTENSION_CHAR.findall(text))
        if units <= _GSM7_SINGLE:
            segments = 1
        else:
            segments = _count_segments(text, _GSM7_EXTENSION_CHAR, _GSM7_PER_SEGMENT)
        return SmsLength("GSM-7", units, segments, characters)

    astral = len(_ASTRAL.findall(text))
    units = characters + astral
    if units <= _UCS2_SINGLE:
        segments = 1
    elif astral == 0:
        segments = -(-units // _UCS2_PER_SEGMENT)
    else:
        segments = _count_segments(text, _ASTRAL, _UCS2_PER_SEGMENT)
    return SmsLength("UCS-2", units, segments, characters)


# --- X ---------------------------------------------------------------------------------------

_X_URL_WEIGHT = 23
_X_EMOJI_WEIGHT = 2

# Code points outside twitter-text v3's weight-1 ranges.
_X_HEAVY = re.compile(r"[^\u0000-\u10FF\u2000-\u200D\u2010-\u201F\u2032-\u2037]")

# Extended_Pictographic from Unicode's emoji-data.txt, reserved blocks included so that emoji
# added after this was written are still recognised as one emoji.
_PICTOGRAPHIC_RANGES: tuple[tuple[int, int], ...] = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049),
    (0x2122, 0x2122), (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA),
    (0x231A, 0x231B), (0x2328, 0x2328), (0x2388, 0x2388), (0x23CF, 0x23CF),
    (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x25AB),
    (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x2605),
    (0x2607, 0x2612), (0x2614, 0x2685), (0x2690, 0x2705), (0x2708, 0x2712),
    (0x2714, 0x2714), (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721),
    (0x2728, 0x2728), (0x2733, 0x2734), (0x2744, 0x2744), (0x2747, 0x2747),
    (0x274C, 0x274C), (0x274E, 0x274E), (0x2753, 0x2755), (0x2757, 0x2757),
    (0x2763, 0x2767), (0x2795, 0x2797), (0x27A1, 0x27A1), (0x27B0, 0x27B0),
    (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07), (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3297), (0x3299, 0x3299),
    (0x1F000, 0x1F0FF), (0x1F10D, 0x1F10F), (0x1F12F, 0x1F12F), (0x1F16C, 0x1F171),
    (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E), (0x1F191, 0x1F19A), (0x1F1AD, 0x1F1E5),
    (0x1F201, 0x1F20F), (0x1F21A, 0x1F21A), (0x1F22F, 0x1F22F), (0x1F232, 0x1F23A),
    (0x1F23C, 0x1F23F), (0x1F249, 0x1F3FA), (0x1F400, 0x1F53D), (0x1F546, 0x1F64F),
    (0x1F680, 0x1F6FF), (0x1F774, 0x1F77F), (0x1F7D5, 0x1F7FF), (0x1F80C, 0x1F80F),
    (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F), (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8FF),
    (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945), (0x1F947, 0x1FAFF), (0x1FC00, 0x1FFFD),
)  # fmt: skip
# Emoji_Modifier_Base: the only code points a skin tone attaches to. Elsewhere a skin tone is a
# character of its own, as twitter-text counts it.
_MODIFIER_BASE_RANGES: tuple[tuple[int, int], ...] = (
    (0x261D, 0x261D), (0x26F9, 0x26F9), (0x270A, 0x270D), (0x1F385, 0x1F385),
    (0x1F3C2, 0x1F3C4), (0x1F3C7, 0x1F3C7), (0x1F3CA, 0x1F3CC), (0x1F442, 0x1F443),
    (0x1F446, 0x1F450), (0x1F466, 0x1F478), (0x1F47C, 0x1F47C), (0x1F481, 0x1F483),
    (0x1F485, 0x1F487), (0x1F48F, 0x1F48F), (0x1F491, 0x1F491), (0x1F4AA, 0x1F4AA),
    (0x1F574, 0x1F575), (0x1F57A, 0x1F57A), (0x1F590, 0x1F590), (0x1F595, 0x1F596),
    (0x1F645, 0x1F647), (0x1F64B, 0x1F64F), (0x1F6A3, 0x1F6A3), (0x1F6B4, 0x1F6B6),
    (0x1F6C0, 0x1F6C0), (0x1F6CC, 0x1F6CC), (0x1F90C, 0x1F90C), (0x1F90F, 0x1F90F),
    (0x1F918, 0x1F91F), (0x1F926, 0x1F926), (0x1F930, 0x1F939), (0x1F93C, 0x1F93E),
    (0x1F977, 0x1F977), (0x1F9B5, 0x1F9B6), (0x1F9B8, 0x1F9B9), (0x1F9BB, 0x1F9BB),
    (0x1F9CD, 0x1F9CF), (0x1F9D1, 0x1F9DD), (0x1FAC3, 0x1FAC5), (0x1FAF0, 0x1FAF8),
)  # fmt: skip


# Astral pictographs that have a text default and so an emoji variation sequence
# (emoji-variation-sequences.txt). Emoji added since Emoji 12 all default to emoji presentation,
# so this list does not grow. Every other astral pictograph is followed by U+FE0F only by
# mistake, and twitter-text then counts the selector on its own (2).
_ASTRAL_TEXT_DEFAULT_RANGES: tuple[tuple[int, int], ...] = (
    (0x1F004, 0x1F004), (0x1F170, 0x1F171), (0x1F17E, 0x1F17F), (0x1F202, 0x1F202),
    (0x1F21A, 0x1F21A), (0x1F22F, 0x1F22F), (0x1F237, 0x1F237), (0x1F321, 0x1F321),
    (0x1F324, 0x1F32C), (0x1F336, 0x1F336), (0x1F37D, 0x1F37D), (0x1F396, 0x1F397),
    (0x1F399, 0x1F39B), (0x1F39E, 0x1F39F), (0x1F3CB, 0x1F3CE), (0x1F3D4, 0x1F3DF),
    (0x1F3F3, 0x1F3F3), (0x1F3F5, 0x1F3F5), (0x1F3F7, 0x1F3F7), (0x1F43F, 0x1F43F),
    (0x1F441, 0x1F441), (0x1F4FD, 0x1F4FD), (0x1F549, 0x1F54A), (0x1F56F, 0x1F570),
    (0x1F573, 0x1F579), (0x1F587, 0x1F587), (0x1F58A, 0x1F58D), (0x1F590, 0x1F590),
    (0x1F5A5, 0x1F5A5), (0x1F5A8, 0x1F5A8), (0x1F5B1, 0x1F5B2), (0x1F5BC, 0x1F5BC),
    (0x1F5C2, 0x1F5C4), (0x1F5D1, 0x1F5D3), (0x1F5DC, 0x1F5DE), (0x1F5E1, 0x1F5E1),
    (0x1F5E3, 0x1F5E3), (0x1F5E8, 0x1F5E8), (0x1F5EF, 0x1F5EF), (0x1F5F3, 0x1F5F3),
    (0x1F5FA, 0x1F5FA), (0x1F6CB, 0x1F6CB), (0x1F6CD, 0x1F6CF), (0x1F6E0, 0x1F6E5),
    (0x1F6E9, 0x1F6E9), (0x1F6F0, 0x1F6F0), (0x1F6F3, 0x1F6F3),
)  # fmt: skip
# The few BMP pictographs without a variation sequence (all emoji by default).
_BMP_NO_VARIATION_RANGES: tuple[tuple[int, int], ...] = (
    (0x23E9, 0x23EC), (0x23F0, 0x23F0), (0x23F3, 0x23F3), (0x26CE, 0x26CE),
    (0x2705, 0x2705), (0x2728, 0x2728), (0x274C, 0x274C), (0x274E, 0x274E),
    (0x2753, 0x2755), (0x2795, 0x2797), (0x27B0, 0x27B0), (0x27BF, 0x27BF),
)  # fmt: skip


def _ranges_class(ranges: tuple[tuple[int, int], ...]) -> str:
    items = (f"\\U{a:08X}" if a == b else f"\\U{a:08X}-\\U{b:08X}" for a, b in ranges)
    return f"[{''.join(items)}]"


_PICTOGRAPH = _ranges_class(_PICTOGRAPHIC_RANGES)
_BMP_PICTOGRAPH = _ranges_class(tuple(r for r in _PICTOGRAPHIC_RANGES if r[1] <= 0xFFFF))
_TAKES_VS16 = (
    f"(?:(?!{_ranges_class(_BMP_NO_VARIATION_RANGES)}){_BMP_PICTOGRAPH}"
    f"|{_ranges_class(_ASTRAL_TEXT_DEFAULT_RANGES)})"
)
_REGIONAL_INDICATOR = r"[\U0001F1E6-\U0001F1FF]"
_SKIN_TONE = r"[\U0001F3FB-\U0001F3FF]"
_TAG_SEQUENCE = r"[\U000E0020-\U000E007E]+\U000E007F"
# UTS #51 emoji sequences: a flag (two regional indicators), a keycap, a modifier base with its
# skin tone, a pictograph with its presentation selector, or a pictograph with an optional tag
# sequence; any of these chained by zero-width joiners. Bare digits, # and * are Emoji too but
# only become one with U+20E3, or they would weigh 2.
_EMOJI_ELEMENT = (
    f"{_REGIONAL_INDICATOR}{_REGIONAL_INDICATOR}"
    r"|[0-9#*]\uFE0F?\u20E3"
    f"|{_ranges_class(_MODIFIER_BASE_RANGES)}{_SKIN_TONE}"
    f"|{_TAKES_VS16}\\uFE0F"
    f"|{_PICTOGRAPH}(?:{_TAG_SEQUENCE})?"
)
_X_EMOJI = re.compile(f"(?:{_EMOJI_ELEMENT})(?:\\u200D(?:{_EMOJI_ELEMENT}))*")


@cache
def _url_extractor() -> Callable[[str], list[dict[str, Any]]]:
    # Imported on first use: the package compiles a large emoji regex from a bundled file at
    # import (about 0.2 s), which SMS-only callers of this module should not pay for.
    from twitter_text import extract_urls_with_indices

    return extract_urls_with_indices


def _plain_weight(text: str, start: int, end: int) -> int:
    return end - start + len(_X_HEAVY.findall(text, start, end))


def _weight_between_urls(text: str, start: int, end: int) -> int:
    # Matching only up to the next URL keeps an emoji from swallowing the start of a URL or a
    # keycap from starting inside one; the URL wins, as in twitter-text.
    weight = 0
    for match in _X_EMOJI.finditer(text, start, end):
        weight += _plain_weight(text, start, match.start()) + _X_EMOJI_WEIGHT
        start = match.end()
    return weight + _plain_weight(text, start, end)


def x_weighted_length(text: str) -> int:
    """Weighted length of ``text`` as X counts it against ``X_MAX_WEIGHTED_LENGTH``."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        # The X API stores CRLF as LF; a lone CR weighs 1 like the LF it becomes.
        text = text.replace("\r\n", "\n")

    # Every URL has a dot in its host; twitter-text's extractor skips such texts too.
    urls = [entity["indices"] for entity in _url_extractor()(text)] if "." in text else []
    if text.isascii():
        # No emoji and no heavy code points: only URLs change the count.
        return len(text) + sum(_X_URL_WEIGHT - (end - start) for start, end in urls)

    total = position = 0
    for start, end in urls:
        total += _weight_between_urls(text, position, start) + _X_URL_WEIGHT
        position = end
    return total + _weight_between_urls(text, position, len(text))


# --- Mastodon and Bluesky --------------------------------------------------------------------

_MASTODON_URL_WEIGHT = 23
# Account::MENTION_RE: only the part before the domain counts.
_MASTODON_MENTION = re.compile(r"(?<![/\w])@([a-z0-9_]+)(?:@[\w.-]+\w+)?", re.IGNORECASE)


def graphemes(text: str) -> int:
    """User-perceived characters (UAX #29 extended grapheme clusters) in ``text``."""
    if text.isascii():
        # In ASCII only CR LF joins into one cluster.
        return len(text) - text.count("\r\n")
    import regex

    return len(regex.findall(r"\X", text))


def mastodon_length(text: str) -> int:
    """Length of ``text`` as a Mastodon instance counts it against its character limit."""
    urls = [
        entity["indices"]
        for entity in (_url_extractor()(text) if "." in text else [])
        if entity["url"].lower().startswith(("http://", "https://"))
    ]
    pieces: list[str] = []
    position = 0
    for start, end in urls:
        pieces.append(_MASTODON_MENTION.sub(r"@\1", text[position:start]))
        position = end
    pieces.append(_MASTODON_MENTION.sub(r"@\1", text[position:]))
    return sum(graphemes(piece) for piece in pieces) + _MASTODON_URL_WEIGHT * len(urls)


def bluesky_length(text: str) -> int:
    """Length of ``text`` as Bluesky counts it: grapheme clusters, URLs as written."""
    return graphemes(text)


@dataclass(frozen=True, slots=True)
class SocialLimit:
    """One social network's length rule, as preflight and ``preview`` describe it."""

    network: str
    maximum: int
    unit: str
    #: How the count differs from plain characters, for the error message.
    rule: str
    measure: Callable[[str], int]


_SOCIAL_LIMITS: dict[str, SocialLimit] = {
    "x": SocialLimit(
        "X", X_MAX_WEIGHTED_LENGTH, "weighted characters", "links count 23, CJK and emoji 2",
        x_weighted_length,
    ),
    "mastodon": SocialLimit(
        "Mastodon", MASTODON_MAX_CHARACTERS, "characters", "links count 23", mastodon_length
    ),
    "bluesky": SocialLimit(
        "Bluesky", BLUESKY_MAX_GRAPHEMES, "characters", "links count in full", bluesky_length
    ),
}  # fmt: skip


def social_limit(driver: str) -> SocialLimit:
    """The length rule of a social driver; X's (the strictest) for any other, e.g. an outbox."""
    return _SOCIAL_LIMITS.get(driver, _SOCIAL_LIMITS["x"])
