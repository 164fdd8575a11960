"""Incident text as people (and attackers) write it: markup, template syntax, long text,
right-to-left scripts, emoji, and ids that would escape the ledger's keys or the outbox."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

import outagecomms
from outagecomms import Announcer, Incident, IncidentError, LimitError, TemplateError
from outagecomms.limits import x_weighted_length

SCAFFOLD = Path(outagecomms.__file__).parent / "scaffold"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """The scaffold's channels.yaml, the packaged templates, and one opted-in customer."""
    shutil.copyfile(SCAFFOLD / "channels.yaml", tmp_path / "channels.yaml")
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "audience.csv").write_text(
        "email,phone,name,locale,sms_opt_in,email_opt_in\n"
        "ada@example.com,+12015550123,Ada,en,yes,yes\n"
    )
    return tmp_path


def incident(**changes: object) -> Incident:
    base = Incident.load(SCAFFOLD / "examples" / "incident-investigating.yaml")
    return base.model_copy(update=changes)


def outbox(shop: Path) -> Path:
    return shop / ".outagecomms" / "outbox"


def the_email(shop: Path) -> EmailMessage:
    [path] = (outbox(shop) / "email").glob("*.eml")
    message = email.message_from_string(path.read_text(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    return str(part.get_content())


def one_file(folder: Path) -> str:
    [path] = folder.glob("*.txt")
    return path.read_text(encoding="utf-8")


def simple_templates(shop: Path) -> None:
    """SMS and post are the summary alone, so lengths are the text's own."""
    (shop / "templates").mkdir(exist_ok=True)
    (shop / "templates" / "sms.txt.j2").write_text("{{ incident.summary }}")
    (shop / "templates" / "social.txt.j2").write_text("{{ incident.summary }}")


# --- markup and template syntax in the incident ----------------------------------------------

SCRIPT = "<script>alert(1)</script> & <b>bold</b>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"


def test_html_is_escaped_in_banner_and_email_html_and_plain_in_text(shop: Path) -> None:
    result = Announcer.from_config(shop / "channels.yaml").send(
        incident(title="Mail <down>", summary=SCRIPT), sandbox=True
    )
    assert result.ok, result.failures

    banner = (outbox(shop) / "banner" / "banner.html").read_text()
    assert ESCAPED in banner and "<script>" not in banner
    assert "<strong>Mail &lt;down&gt;</strong>" in banner
    assert json.loads((outbox(shop) / "banner" / "status.json").read_text())["summary"] == SCRIPT

    mail = the_email(shop)
    html = body(mail, "html")
    assert ESCAPED in html and "<script>" not in html and "<b>bold" not in html
    assert SCRIPT in body(mail, "plain")
    assert mail["Subject"] == "[Investigating] Mail <down>"

    assert SCRIPT in one_file(outbox(shop) / "sms")
    assert SCRIPT in one_file(outbox(shop) / "social")
    assert SCRIPT in one_file(outbox(shop) / "team")


def test_template_syntax_in_the_incident_is_text_not_code(shop: Path) -> None:
    sneaky = "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %} {{ vars.__class__ }}"
    result = Announcer.from_config(shop / "channels.yaml").send(
        incident(summary=sneaky), channels=["sms", "email"], sandbox=True
    )
    assert result.ok, result.failures
    sms = one_file(outbox(shop) / "sms")
    assert sneaky in sms and "49" not in sms and "xxx" not in sms
    assert sneaky in body(the_email(shop), "plain")


def test_a_title_with_a_line_break_cannot_add_an_email_header(shop: Path) -> None:
    announcer = Announcer.from_config(shop / "channels.yaml")
    with pytest.raises(LimitError, match=r"email subject for ada@example\.com spans several lines"):
        announcer.send(
            incident(title="Mail is down\r\nBcc: everyone@example.com"),
            channels=["email"],
            sandbox=True,
        )
    assert not (shop / ".outagecomms").exists()


# --- long text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "changes", "expected"),
    [
        ("sms", {"summary": "Our mail server is down. " * 20}, r"over max_segments 2"),
        ("social", {"summary": "Our mail server is down. " * 20}, r"over X's 280"),
        (
            "email",
            {"title": "Mail is down " * 20},
            r"subject for ada@example.com is 275 characters, over 200",
        ),
    ],
)
def test_long_text_is_refused_before_anything_is_sent_never_truncated(
    shop: Path, channel: str, changes: dict[str, str], expected: str
) -> None:
    announcer = Announcer.from_config(shop / "channels.yaml")
    long = incident(**changes)
    with pytest.raises(LimitError, match=expected) as caught:
        announcer.preflight(long, [channel])
    assert f"channel '{channel}'" in str(caught.value)
    with pytest.raises(LimitError, match=expected):
        announcer.send(long, channels=[channel], sandbox=True)
    assert not (shop / ".outagecomms").exists(), "nothing sent, nothing recorded"


# --- right-to-left scripts and emoji -----------------------------------------------------------

ARABIC = "تأخر البريد الإلكتروني"
HEBREW = "הדואר מתעכב"
EMOJI = "📧🚨👩‍💻"


def test_right_to_left_and_emoji_text_arrives_intact_everywhere(shop: Path) -> None:
    summary = f"{HEBREW}. {EMOJI}"
    rtl = incident(title=ARABIC, summary=summary, eta=None)  # short enough for 2 UCS-2 segments
    announcer = Announcer.from_config(shop / "channels.yaml")
    longest = announcer.preflight(rtl, ["sms"]).channels["sms"].longest_sms
    assert longest is not None and longest.encoding == "UCS-2"

    result = announcer.send(rtl, sandbox=True)
    assert result.ok, result.failures
    sms = one_file(outbox(shop) / "sms").split("\n\n", 1)[1].strip()
    status = "Updates: https://shop.example/status"
    assert sms == f"Acme Shop: {ARABIC}. {summary} {status} Reply STOP to opt out."
    assert summary in one_file(outbox(shop) / "social")
    assert summary in (outbox(shop) / "banner" / "banner.html").read_text(encoding="utf-8")
    assert json.loads((outbox(shop) / "banner" / "status.json").read_text())["title"] == ARABIC
    mail = the_email(shop)
    assert mail["Subject"] == f"[Investigating] {ARABIC}"
    assert summary in body(mail, "plain") and summary in body(mail, "html")


@pytest.mark.parametrize(
    ("fits", "fits_units", "too_long", "characters"),
    [
        ("ب" * 134, 134, "ب" * 135, 135),  # Arabic: UCS-2, 2 segments of 67 units
        ("א" * 134, 134, "א" * 135, 135),  # Hebrew
        ("a" * 133 + "ب", 134, "a" * 134 + "ב", 135),  # one RTL letter makes it all UCS-2
        # An emoji is two UTF-16 units and a segment never splits one: 33 per segment, not 33.5.
        ("🚨" * 66, 132, "🚨" * 67, 67),
    ],
)
def test_sms_with_rtl_or_emoji_counts_as_ucs2(
    shop: Path, fits: str, fits_units: int, too_long: str, characters: int
) -> None:
    simple_templates(shop)
    announcer = Announcer.from_config(shop / "channels.yaml")  # max_segments: 2
    longest = announcer.preflight(incident(summary=fits), ["sms"]).channels["sms"].longest_sms
    assert longest is not None
    assert (longest.encoding, longest.segments, longest.units) == ("UCS-2", 2, fits_units)
    with pytest.raises(LimitError, match=rf"3 segments \({characters} characters, UCS-2\)"):
        announcer.preflight(incident(summary=too_long), ["sms"])


@pytest.mark.parametrize(
    ("fits", "too_long", "weighted"),
    [
        ("ب" * 280, "ب" * 281, 281),  # Arabic and Hebrew letters weigh 1
        ("א" * 280, "א" * 281, 281),
        ("🚨" * 140, "🚨" * 141, 282),  # an emoji weighs 2
        ("👩‍💻" * 140, "👩‍💻" * 140 + "!", 281),  # a ZWJ sequence is one emoji
        ("中" * 140, "中" * 141, 282),  # CJK weighs 2
    ],
)
def test_post_weights_emoji_and_wide_characters_like_x(
    shop: Path, fits: str, too_long: str, weighted: int
) -> None:
    simple_templates(shop)
    announcer = Announcer.from_config(shop / "channels.yaml")
    assert x_weighted_length(fits) == 280
    assert announcer.preflight(incident(summary=fits), ["social"]).channels["social"].sample
    with pytest.raises(LimitError, match=f"the post is {weighted} weighted characters"):
        announcer.preflight(incident(summary=too_long), ["social"])


# --- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id",
    ["Mail-Down", "mail/down", "../../etc/passwd", "mail down", "mail_down", "maïl", "MAIL"],
)
def test_an_id_with_uppercase_slashes_or_other_characters_is_refused(
    tmp_path: Path, bad_id: str
) -> None:
    path = tmp_path / "incident.yaml"
    path.write_text(f"id: {bad_id}\ntitle: Mail is down\n", encoding="utf-8")
    with pytest.raises(IncidentError) as caught:
        Incident.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 1: 'id' string should ")
    assert "[a-z0-9-]" in message and "\n" not in message


def test_an_update_label_with_a_slash_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "incident.yaml"
    path.write_text("id: mail-down\ntitle: Mail is down\nupdate: 2/3\n", encoding="utf-8")
    with pytest.raises(IncidentError, match="line 3: 'update'"):
        Incident.load(path)


# --- templates that include others ---------------------------------------------------------------


def test_an_include_cannot_read_files_outside_the_templates_folders(shop: Path) -> None:
    (shop / "templates").mkdir()
    (shop / "templates" / "team.txt.j2").write_text("{% include '../channels.yaml' %}")
    announcer = Announcer.from_config(shop / "channels.yaml")
    with pytest.raises(TemplateError, match=r"team\.txt\.j2, line 1: .*does not exist"):
        announcer.preflight(incident(), ["team"])


def test_a_channel_template_includes_from_its_folder_then_the_shared_one(shop: Path) -> None:
    (shop / "templates").mkdir()
    (shop / "vip").mkdir()
    (shop / "templates" / "sign.txt.j2").write_text("shared sign-off")
    (shop / "templates" / "sms.txt.j2").write_text("{% include 'sign.txt.j2' %}")
    (shop / "vip" / "sms.txt.j2").write_text("VIP {% include 'sign.txt.j2' %}")
    config = shop / "channels.yaml"
    config.write_text(config.read_text().replace("    concurrency: 20", "    templates: vip/"))
    plan = Announcer.from_config(config).preflight(incident(), ["sms"])
    assert plan.channels["sms"].sample is not None
    assert plan.channels["sms"].sample.text == "VIP shared sign-off"
    (shop / "vip" / "sign.txt.j2").write_text("VIP sign-off")
    plan = Announcer.from_config(config).preflight(incident(), ["sms"])
    assert plan.channels["sms"].sample is not None
    assert plan.channels["sms"].sample.text == "VIP VIP sign-off"
