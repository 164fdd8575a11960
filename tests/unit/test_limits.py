"""SMS segment arithmetic and X weighted length, at and around every boundary."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from importlib.resources import files
from typing import Literal

import pytest
from twitter_text import parse_tweet

from outagecomms.limits import (
    TWILIO_MAX_BODY,
    X_MAX_WEIGHTED_LENGTH,
    SmsLength,
    sms_length,
    x_weighted_length,
)

# Written out again from the 3GPP TS 23.038 table (row by row, escape left out) so the test does
# not trust the module's own copy.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[~]|€"
FAMILY = "👨\u200d👩\u200d👧"


# --- SMS -------------------------------------------------------------------------------------


def test_every_gsm7_basic_character_is_one_septet() -> None:
    assert len(GSM7_BASIC) == 127
    wrong = [c for c in GSM7_BASIC if sms_length(c) != SmsLength("GSM-7", 1, 1, 1)]
    assert wrong == []
    assert sms_length(GSM7_BASIC) == SmsLength("GSM-7", 127, 1, 127)


@pytest.mark.parametrize("char", list(GSM7_EXTENSION))
def test_extension_characters_are_two_septets(char: str) -> None:
    assert sms_length("ab" + char) == SmsLength("GSM-7", 4, 1, 3)


@pytest.mark.parametrize(
    "char",
    ["`", "ç", "’", "‘", "“", "”", "😀", "\t", "À", "Ì", "…", "—", "日"],
    ids=["backtick", "c-cedilla", "rsquo", "lsquo", "ldquo", "rdquo", "emoji", "tab", "A-grave",
         "I-grave", "ellipsis", "em-dash", "cjk"],
)  # fmt: skip
def test_one_character_outside_gsm7_makes_the_whole_message_ucs2(char: str) -> None:
    result = sms_length("Service restored " + char)
    assert result.encoding == "UCS-2"
    assert result.characters == 18


def test_capital_c_cedilla_is_gsm7_but_small_c_cedilla_is_not() -> None:
    assert sms_length("Ça marche").encoding == "GSM-7"
    assert sms_length("ça marche").encoding == "UCS-2"


def test_a_curly_apostrophe_turns_one_segment_into_two() -> None:
    straight = "We're fixing it. " + "a" * 100
    assert sms_length(straight).segments == 1
    assert sms_length(straight.replace("'", "’")) == SmsLength("UCS-2", 117, 2, 117)


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        pytest.param("", "GSM-7", 0, 1, id="empty-is-one-message"),
        pytest.param("a" * 160, "GSM-7", 160, 1, id="gsm-160"),
        pytest.param("a" * 161, "GSM-7", 161, 2, id="gsm-161"),
        pytest.param("a" * 306, "GSM-7", 306, 2, id="gsm-306"),
        pytest.param("a" * 307, "GSM-7", 307, 3, id="gsm-307"),
        pytest.param("a" * 1600, "GSM-7", 1600, 11, id="gsm-twilio-max"),
        pytest.param("€" * 80, "GSM-7", 160, 1, id="80-euro-160-septets"),
        pytest.param("€" * 81, "GSM-7", 162, 2, id="81-euro"),
        pytest.param("a" * 159 + "€", "GSM-7", 161, 2, id="159a-euro"),
        # 152 septets, then the escape pair does not fit in the 1 left: it starts segment 2
        # (2 + 151 = 153), and the last 'a' needs a third segment although 306 = 2 * 153.
        pytest.param("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3, id="escape-pair-moves"),
        pytest.param("a" * 152 + "€" + "a" * 151, "GSM-7", 305, 2, id="escape-pair-fits"),
        pytest.param("a" * 153 + "€" + "a" * 151, "GSM-7", 306, 2, id="escape-pair-on-edge"),
        pytest.param("ç" * 70, "UCS-2", 70, 1, id="ucs2-70"),
        pytest.param("ç" * 71, "UCS-2", 71, 2, id="ucs2-71"),
        pytest.param("ç" * 134, "UCS-2", 134, 2, id="ucs2-134"),
        pytest.param("ç" * 135, "UCS-2", 135, 3, id="ucs2-135"),
        pytest.param("😀" * 35, "UCS-2", 70, 1, id="35-emoji-70-units"),
        pytest.param("😀" * 36, "UCS-2", 72, 2, id="36-emoji"),
        # 66 units, then the surrogate pair does not fit in the 1 left: it starts segment 2
        # (2 + 65 = 67), and the last 'a' needs a third segment although 134 = 2 * 67.
        pytest.param("ç" + "a" * 65 + "😀" + "a" * 66, "UCS-2", 134, 3, id="surrogate-moves"),
        pytest.param("ç" + "a" * 65 + "😀" + "a" * 65, "UCS-2", 133, 2, id="surrogate-fits"),
    ],
)
def test_units_and_segments(
    text: str, encoding: Literal["GSM-7", "UCS-2"], units: int, segments: int
) -> None:
    assert sms_length(text) == SmsLength(encoding, units, segments, len(text))


@pytest.mark.parametrize(
    ("text", "per_segment"),
    [("", 160), ("a" * 160, 160), ("a" * 161, 153), ("ç" * 70, 70), ("ç" * 71, 67)],
)
def test_per_segment_depends_on_whether_the_message_is_split(text: str, per_segment: int) -> None:
    assert sms_length(text).per_segment == per_segment


def reference_segments(
    text: str, double: Callable[[str], bool], single: int, per_segment: int
) -> int:
    """The rule itself, one character at a time: what does not fit starts the next segment."""
    if sum(2 if double(char) else 1 for char in text) <= single:
        return 1
    segments, used = 1, 0
    for char in text:
        cost = 2 if double(char) else 1
        if used + cost > per_segment:
            segments, used = segments + 1, cost
        else:
            used += cost
    return segments


@pytest.mark.parametrize("seed", range(4))
def test_segments_match_a_character_by_character_walk(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(250):
        share = rng.random()
        picks = [rng.random() < share for _ in range(rng.randint(0, 700))]
        gsm = "".join("€" if pick else "a" for pick in picks)
        ucs2 = "ç" + "".join("😀" if pick else "a" for pick in picks)
        assert sms_length(gsm).segments == reference_segments(gsm, "€".__eq__, 160, 153)
        assert sms_length(ucs2).segments == reference_segments(
            ucs2, lambda char: char > "\uffff", 70, 67
        )


def test_characters_are_code_points_not_utf16_units() -> None:
    result = sms_length("Down " + FAMILY)
    assert (result.characters, result.units) == (10, 13)


def test_sms_length_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        sms_length("hi").segments = 2  # type: ignore[misc]


def test_twilio_body_cap() -> None:
    assert TWILIO_MAX_BODY == 1600


# --- X ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a" * 280, 280, id="ascii-280"),
        pytest.param("a" * 281, 281, id="ascii-281"),
        pytest.param("https://example.com/" + "x" * 200, 23, id="long-url"),
        pytest.param("Details: https://status.example.com/incidents/2024-05-01", 32, id="url"),
        pytest.param("status.example.com/incidents/42", 23, id="bare-domain"),
        pytest.param("see example.com, then x.com", 4 + 23 + 7 + 23, id="two-bare-domains"),
        pytest.param("file.txt v1.2.3", 15, id="not-urls"),
        pytest.param("support@example.com", 19, id="email-is-not-a-url"),
        pytest.param("日" * 140, 280, id="cjk-140"),
        pytest.param("日" * 141, 282, id="cjk-141"),
        pytest.param("한국어", 6, id="hangul"),
        pytest.param("Привет", 6, id="cyrillic"),
        pytest.param("e\u0301", 1, id="nfc-combining-acute"),
        pytest.param("Cafe\u0301 ouvert", 11, id="nfc-in-text"),
        pytest.param("’—‐", 3, id="general-punctuation-weighs-1"),
        pytest.param("…€", 4, id="ellipsis-and-euro-weigh-2"),
        pytest.param("\u10ff\u1100", 3, id="end-of-weight-1-range"),
        pytest.param("a\r\nb", 3, id="crlf-is-stored-as-lf"),
        pytest.param("", 0, id="empty"),
    ],
)
def test_x_weighted_length(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


@pytest.mark.parametrize(
    "emoji",
    ["😷", FAMILY, "🇫🇷", "1️⃣", "👍🏽", "❤️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👩🏽‍💻", "🫠", "❤️‍🔥", "🫱🏻‍🫲🏿", "🧑‍🧑‍🧒"],
    ids=["face", "zwj-family", "flag", "keycap", "skin-tone", "heart-fe0f", "tag-flag",
         "zwj-skin-tone", "unicode-14", "unicode-13.1-zwj", "unicode-14-zwj", "unicode-15.1-zwj"],
)  # fmt: skip
def test_every_emoji_counts_two(emoji: str) -> None:
    assert x_weighted_length(emoji) == 2
    assert x_weighted_length("a" * 278 + emoji) == X_MAX_WEIGHTED_LENGTH


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # ☕ has a variation sequence, so the selector is part of the emoji (twemoji-parser's
        # rule; twitter-text-parser counts 4 here).
        pytest.param("☕\ufe0f", 2, id="selector-after-variation-base"),
        # 😩 has none: the stray selector is a character of its own and weighs 2.
        pytest.param("😩\ufe0f", 4, id="stray-selector"),
        # A skin tone after something that takes none is a character of its own.
        pytest.param("🖊🏻", 4, id="stray-skin-tone"),
    ],
)
def test_variation_selectors_and_skin_tones(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


def test_digits_and_copyright_sign() -> None:
    # Digits are Emoji only as keycaps; a bare © is an emoji for twitter-text and weighs 2.
    assert x_weighted_length("2024") == 4
    assert x_weighted_length("© Acme") == 7


def test_every_emoji_in_twitter_texts_table_counts_two() -> None:
    table = (files("twitter_text.regexp") / "emoji-test.txt").read_text(encoding="utf-8")
    emoji = [
        "".join(chr(int(point, 16)) for point in line.split(";")[0].split())
        for line in table.splitlines()
        if line and not line.startswith("#")
    ]
    assert len(emoji) > 3000
    wrong = [e for e in emoji if x_weighted_length(e) != 2 or x_weighted_length(f"a{e}b") != 4]
    assert wrong == []


@pytest.mark.parametrize(
    "text",
    [
        "english text 日本語 😷 https://example.com",
        "Fix 🔥 deployed — see https://status.acme.com/i/42 ✅ 👩🏽‍💻 thanks",
        "Mail is down 🇫🇷🇩🇪. Status: status.acme.io/mail?lang=fr\r\nMerci 🙏🏽",
        "http://☃.net/ and 😷.com and foo.co.jp/x?y=1",
        "Ça marche. Résolu à 14h. Cafe\u0301 ☕ https://t.co/abc123",
        "https://example.com/a😷b and 😷 1️⃣2️⃣ #️⃣ *️⃣ 🔟",
        "Aשּׁ and 𠀀 and ©️ and #️⃣ and 👨‍❤️‍💋‍👨",
        "(https://example.com/path) [x.com] «acme.org»",
    ],
)
def test_agrees_with_twitter_text_parser(text: str) -> None:
    assert x_weighted_length(text) == parse_tweet(text).weightedLength


def test_x_limit() -> None:
    assert X_MAX_WEIGHTED_LENGTH == 280
