"""Files built to hurt, through the real CLI: every one is refused at preflight with exit 2
and one clear line, quickly, with nothing sent and no traceback.

YAML (incident and channels.yaml): alias bombs, oversized files, deep nesting, huge
integers. The audience CSV: an unclosed quote, a field spanning lines, a huge field, a
file that is not UTF-8. channels.yaml: a channel that could not send what preflight passed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fakes import FakeWebhook

from . import test_bad_input as bad
from .conftest import Run

scaffold = bad.scaffold
shop = bad.shop
SANDBOX = bad.SANDBOX

BASE = "id: mail-down\ntitle: Mail is down\n"


def alias_bomb(levels: int = 9) -> str:
    """A few hundred bytes whose aliases expand to 9**9 values."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for n in range(1, levels):
        previous = ", ".join([f"*a{n - 1}"] * 9)
        lines.append(f"a{n}: &a{n} [{previous}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            BASE + "vars:\n" + "".join("  " + line + "\n" for line in alias_bomb().splitlines()),
            ["incident.yaml, line", "aliases (*name) expand to more than 100,000 values"],
            id="alias-bomb",
        ),
        pytest.param(
            BASE + "summary: '" + "x" * (1024 * 1024) + "'\n",
            ["incident.yaml: the incident file is larger than 1 MB"],
            id="over-1-mb",
        ),
        pytest.param(
            BASE + "vars: {deep: " + "[" * 3000 + "]" * 3000 + "}\n",
            ["incident.yaml", "nested"],
            id="deep-nesting",
        ),
        pytest.param(
            BASE + "vars: {deep: " + "[" * 70 + "]" * 70 + "}\n",
            ["incident.yaml, line 3: nested more than 64 levels deep"],
            id="nesting-over-64",
        ),
        pytest.param(
            BASE + "vars:\n  coupon: " + "9" * 5000 + "\n",
            ["incident.yaml, line 4: a number of 5000 digits is too large"],
            id="huge-integer",
        ),
    ],
)
def test_a_hostile_incident_file_is_refused_quickly(
    run: Run, shop: Path, text: str, expected: list[str]
) -> None:
    (shop / "incident.yaml").write_text(text, encoding="utf-8")
    started = time.monotonic()
    bad.refused(bad.cli(run, "send", "incident.yaml", *SANDBOX), *expected)
    assert time.monotonic() - started < 20
    bad.nothing_sent(shop)


def test_an_alias_bomb_in_channels_yaml_is_refused(run: Run, shop: Path) -> None:
    config = shop / "channels.yaml"
    config.write_text(
        config.read_text()
        + "x-anchors:\n"
        + "".join("  " + line + "\n" for line in alias_bomb().splitlines())
    )
    started = time.monotonic()
    bad.refused(
        bad.cli(run, "send", "examples/incident-investigating.yaml", *SANDBOX),
        "channels.yaml, line",
        "aliases (*name) expand",
    )
    assert time.monotonic() - started < 20
    bad.nothing_sent(shop)


# --- the audience CSV ------------------------------------------------------------------

AUDIENCE_HEADER = "email,phone,name,sms_opt_in,email_opt_in\n"


def people(count: int, start: int = 0) -> str:
    return "".join(
        f"p{n}@example.com,+1201555{n:04d},Person {n},yes,yes\n" for n in range(start, count)
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            AUDIENCE_HEADER
            + people(10)
            + 'x@example.com,+12015559999,"Ada,yes,yes\n'
            + people(400, 10),
            ["audience.csv, line 12: the 'name' cell runs over lines 12 to 402", "quote"],
            id="unclosed-quote-in-name",
        ),
        pytest.param(
            "email,phone,notes,sms_opt_in\n"
            + 'a@example.com,+12015550001,"call first,yes\n'
            + "b@example.com,+12015550002,,yes\n",
            ["audience.csv, line 2: a cell runs over lines 2 to 3 and holds what look like rows"],
            id="unclosed-quote-in-an-extra-column",
        ),
        pytest.param(
            AUDIENCE_HEADER + "a@example.com,+12015550001," + "A" * 5000 + ",yes,yes\n",
            ["audience.csv, line 2: a cell of 5,000 characters is too long"],
            id="huge-field",
        ),
        pytest.param(
            (AUDIENCE_HEADER + people(3) + "jose@example.com,,Jos\xe9,,yes\n").encode("latin-1"),
            ["audience.csv, line 5: not UTF-8 text (byte 0xe9)", "Save the file as UTF-8"],
            id="latin-1",
        ),
    ],
)
def test_an_audience_that_cannot_be_read_as_meant_stops_at_preflight(
    run: Run, shop: Path, content: str | bytes, expected: list[str]
) -> None:
    path = shop / "audience.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    result = bad.cli(
        run, "send", "examples/incident-investigating.yaml", "--audience", "audience.csv", *SANDBOX
    )
    bad.refused(result, *expected)
    bad.nothing_sent(shop)


def test_a_bad_opt_in_cell_a_landline_and_semicolons_affect_only_what_they_must(
    run: Run, shop: Path
) -> None:
    (shop / "audience.csv").write_text(
        "email;phone;name;sms_opt_in;email_opt_in\n"
        "ada@example.com;(201) 555-0123;Lovelace, Ada;yes;yes\n"
        "bob@example.com;+1 212 555 0147;Bob;maybe;yes\n"
        "tim@example.com;+44 20 7946 0958;Tim;yes;yes\n",
        encoding="utf-8",
    )
    sent = run(
        "send",
        "examples/incident-investigating.yaml",
        "--audience",
        "audience.csv",
        "-c",
        "sms",
        "-c",
        "email",
        *SANDBOX,
        cwd=shop,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    outbox = shop / ".outagecomms" / "outbox"
    sms = [f.read_text() for f in (outbox / "sms").iterdir()]
    emails = [f.read_text() for f in (outbox / "email").iterdir()]
    assert len(sms) == 1 and "+12015550123" in sms[0]
    assert len(emails) == 3
    assert any("bob@example.com" in e for e in emails), "a bad SMS cell never costs the email"
    assert "invalid sms opt-in" in sent.stdout
    assert "not a mobile number" in sent.stdout


# --- channels.yaml that could not send what preflight passed -------------------------------

TEAM_AND = (
    "organization: {name: Acme Shop, website: https://shop.example,"
    " status_url: https://shop.example/status}\naudience: examples/audience.csv\n"
    "default_region: US\nchannels:\n  team: {driver: slack}\n"
)


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        pytest.param(
            "  sms: {driver: twilio}\n",
            ["channels.yaml, line 6: 'channels.sms' has no sender: set 'from'"],
            id="twilio-without-from",
        ),
        pytest.param(
            "  email: {driver: sendgrid, from_name: Acme}\n",
            ["channels.yaml, line 6: 'channels.email' has no sender address: set 'from'"],
            id="sendgrid-without-from",
        ),
        pytest.param(
            "  sms: {driver: twilio, from: '+15005550006', base_url: 'ftp://api.example'}\n",
            ["'channels.sms.base_url' must be an http:// or https:// URL"],
            id="base-url-not-http",
        ),
        pytest.param(
            '  email: {driver: sendgrid, from: a@shop.example, from_name: "Acme\\u2028Bcc: x"}\n',
            ["'channels.email.from_name' must be on one line"],
            id="from-name-with-line-separator",
        ),
        pytest.param(
            '  email: {driver: smtp, host: mail, from: a@shop.example, from_name: "A\\x85B"}\n',
            ["'channels.email.from_name' must be on one line"],
            id="from-name-with-next-line",
        ),
    ],
)
def test_a_channel_that_could_not_send_stops_preflight_before_slack_posts(
    run: Run, shop: Path, channel: str, expected: list[str]
) -> None:
    with FakeWebhook() as slack:
        (shop / "channels.yaml").write_text(TEAM_AND + channel, encoding="utf-8")
        env = {"OUTAGECOMMS_CHANNELS__TEAM__WEBHOOK_URL": slack.url}
        result = bad.cli(run, "send", "examples/incident-investigating.yaml", "--yes", env=env)
        bad.refused(result, *expected)
        assert slack.requests == [], "nothing may go out before every channel can"


def test_a_subject_with_a_line_separator_stops_preflight(run: Run, shop: Path) -> None:
    # Escaped in YAML: a bare U+2028 would end the line in the file itself.
    (shop / "incident.yaml").write_text(
        'id: mail-down\ntitle: "Mail is down\\u2028Bcc: everyone@example.com"\n',
        encoding="utf-8",
    )
    result = bad.cli(run, "send", "incident.yaml", "-c", "email", *SANDBOX)
    bad.refused(result, "the email subject", "spans several lines")
    bad.nothing_sent(shop)
