"""Each social network's own length rule, and each social channel checked against its own
driver (and its fallback's) at preflight."""

from __future__ import annotations

import pytest

from outagecomms.config import BlueskySettings, MastodonSettings, OutboxSettings, XSettings
from outagecomms.errors import LimitError
from outagecomms.limits import bluesky_length, graphemes, mastodon_length, social_limit
from outagecomms.render import check_limits

LINK = "https://status.acme-shop.com/incidents/2026-11-22-email-outage"  # 61 characters
MASTODON = MastodonSettings(base_url="https://mastodon.example")
BLUESKY = BlueskySettings(handle="acme.bsky.social")


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("plain", 5),
        ("a\r\nb", 3),  # CR LF is one grapheme
        ("é", 1),
        ("e\u0301", 1),  # e + combining acute
        ("👩‍👩‍👧", 1),  # a ZWJ family
        ("🇫🇷🇩🇪", 2),  # two flags
        ("👍🏽", 1),  # with a skin tone
    ],
)
def test_graphemes(text: str, count: int) -> None:
    assert graphemes(text) == count


def test_mastodon_counts_links_as_23_and_mentions_without_domain() -> None:
    assert mastodon_length(f"Fixed: {LINK}") == 7 + 23
    assert mastodon_length("cc @support@mastodon.example ok") == len("cc @support ok")
    # A URL without a scheme gets no concession on Mastodon.
    assert mastodon_length("see acme-shop.com/status") == 24
    assert mastodon_length("Störung 🎉") == 9


def test_bluesky_counts_links_in_full() -> None:
    assert bluesky_length(f"Fixed: {LINK}") == 7 + len(LINK)
    assert bluesky_length("Störung 🎉 👩‍👩‍👧") == 11


def test_each_driver_has_its_rule() -> None:
    assert (social_limit("x").network, social_limit("x").maximum) == ("X", 280)
    assert (social_limit("mastodon").network, social_limit("mastodon").maximum) == (
        "Mastodon",
        500,
    )
    assert (social_limit("bluesky").network, social_limit("bluesky").maximum) == ("Bluesky", 300)
    # A social channel written as an outbox keeps X's, the strictest.
    assert social_limit("outbox").network == "X"


def post(length: int) -> dict[str, str]:
    return {"txt": "x" * length}


def test_a_post_is_checked_against_its_own_network() -> None:
    check_limits("m", "social", MASTODON, post(500), "-")
    check_limits("b", "social", BLUESKY, post(300), "-")
    check_limits("x", "social", XSettings(), post(280), "-")
    check_limits("o", "social", OutboxSettings(), post(280), "-")
    with pytest.raises(LimitError, match=r"'m': the post is 501 characters, over Mastodon's 500"):
        check_limits("m", "social", MASTODON, post(501), "-")
    with pytest.raises(LimitError, match=r"'b': the post is 301 characters, over Bluesky's 300"):
        check_limits("b", "social", BLUESKY, post(301), "-")
    with pytest.raises(LimitError, match=r"over X's 280 \(links count 23, CJK and emoji 2\)"):
        check_limits("x", "social", XSettings(), post(281), "-")


def test_the_same_text_fits_one_network_and_not_another() -> None:
    text = {"txt": "Orders are safe. " * 18 + LINK}  # 306 + a link
    check_limits("m", "social", MASTODON, text, "-")
    with pytest.raises(LimitError, match="Bluesky's 300"):
        check_limits("b", "social", BLUESKY, text, "-")


def test_a_fallback_is_checked_against_its_own_limit_too() -> None:
    with_fallback = MastodonSettings(base_url="https://mastodon.example", fallback=BLUESKY)
    with pytest.raises(LimitError, match="Bluesky's 300"):
        check_limits("social", "social", with_fallback, post(400), "-", {"txt": "social.txt.j2"})
