"""Every mistake a user can make in an incident, a template, channels.yaml, the audience or
the command line: exit 2, one line on stderr naming the file and the key or line and saying
what to do, and nothing sent or recorded.

Each case runs ``send ... --sandbox --yes`` (or a real send), so a bug that let the run go on
would show as files in .outagecomms/ (ledger, outbox) or public/ (the real banner).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import CLI, Run

INCIDENT = "examples/incident-investigating.yaml"
SANDBOX = ("--sandbox", "--yes")


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``outagecomms init``, copied for each test (init itself is tested in test_sandbox)."""
    folder = tmp_path_factory.mktemp("scaffold")
    made = subprocess.run([*CLI, "init"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return folder


@pytest.fixture
def shop(scaffold: Path, tmp_path: Path) -> Path:
    shutil.copytree(scaffold, tmp_path, dirs_exist_ok=True)
    return tmp_path


def cli(
    run: Run, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in a narrow terminal: an error must stay one line whatever the width."""
    return run(*args, env={"COLUMNS": "80", **(env or {})})


def refused(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit 2 and exactly one ``Error:`` line on stderr holding every ``expected`` fragment."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert result.stdout == "", "nothing may be shown as going out"
    return lines[0]


def nothing_sent(shop: Path) -> None:
    assert not (shop / ".outagecomms").exists(), "no ledger, no outbox"
    assert not (shop / "public").exists(), "no banner published"


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# --- the incident file ---------------------------------------------------------------------------

BASE = "id: mail-down\ntitle: Mail is down\n"
README = "see the incident format in the README"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "id: mail-down\ntitle: Mail: down\n",
            [
                "incident.yaml, line 2: not valid YAML (mapping values are not allowed here; "
                "a value that contains ': ' must be in quotes); fix the syntax"
            ],
            id="malformed-yaml-colon",
        ),
        pytest.param(
            BASE + "affected: [newsletter, orders\n",
            [
                "incident.yaml, line 4: not valid YAML (while parsing a flow sequence started on "
                "line 3: expected ',' or ']'",
                "fix the syntax",
            ],
            id="malformed-yaml-unclosed",
        ),
        pytest.param(
            BASE + "colour: red\n",
            ["incident.yaml, line 3: 'colour' is not a known key (check its spelling)", README],
            id="unknown-key",
        ),
        pytest.param(
            BASE + "sumary: Orders are safe.\n",
            ["incident.yaml, line 3: 'sumary' is not a known key", "did you mean 'summary'?"],
            id="unknown-key-typo",
        ),
        pytest.param(
            "id: mail-down\nstatus: investigating\n",
            ["incident.yaml: 'title' is required but missing", README],
            id="missing-title",
        ),
        pytest.param(
            BASE + "status: fixed\n",
            [
                "incident.yaml, line 3: 'status' input should be 'investigating', 'identified', "
                "'monitoring' or 'resolved' (got 'fixed')",
                README,
            ],
            id="bad-status",
        ),
        pytest.param(
            BASE + "severity: huge\n",
            [
                "incident.yaml, line 3: 'severity' input should be 'minor', 'major' or 'critical' "
                "(got 'huge')"
            ],
            id="bad-severity",
        ),
        pytest.param(
            BASE + "started_at: 2026-13-45\n",
            ["incident.yaml, line 3: 'started_at' ", "(got '2026-13-45')", README],
            id="bad-timestamp-month-13",
        ),
        pytest.param(
            BASE + "summary: Orders are safe.\nstarted_at: yesterday\n",
            ["incident.yaml, line 4: 'started_at' ", "(got 'yesterday')", README],
            id="bad-timestamp-word",
        ),
        pytest.param(
            BASE + "eta: 2026-11-22T25:00:00Z\n",
            ["incident.yaml, line 3: 'eta' ", "(got '2026-11-22T25:00:00Z')"],
            id="bad-eta-hour-25",
        ),
        pytest.param(
            BASE + "status: investigating\nsummary: x\nstatus: resolved\n",
            ["incident.yaml, line 5: 'status' is already set on line 3; keep only one of them"],
            id="key-twice",
        ),
        pytest.param(
            BASE + "id: Mail/Down\n",
            ["incident.yaml, line 3: 'id' is already set on line 1"],
            id="id-twice",
        ),
        pytest.param(
            "id: Mail/Down\ntitle: Mail is down\n",
            ["incident.yaml, line 1: 'id' string should match pattern '^[a-z0-9-]+$'"],
            id="id-uppercase-slash",
        ),
        pytest.param(
            BASE.encode() + "summary: Caf\xe9 orders are safe.\n".encode("latin-1"),
            ["incident.yaml, line 3: not UTF-8 text (byte 0xe9); save the file as UTF-8"],
            id="not-utf8",
        ),
    ],
)
def test_bad_incident(run: Run, shop: Path, text: str | bytes, expected: list[str]) -> None:
    path = shop / "incident.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    refused(cli(run, "send", "incident.yaml", *SANDBOX), *expected)
    nothing_sent(shop)


def test_incident_file_not_found(run: Run, shop: Path) -> None:
    refused(
        cli(run, "send", "examples/incident-investigatng.yaml", *SANDBOX),
        "examples/incident-investigatng.yaml: incident file not found; check the path",
    )
    nothing_sent(shop)


# --- templates -----------------------------------------------------------------------------------

USE_ONLY = "use only incident, organization, recipient, channel, locale and vars"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        pytest.param(
            "sms.txt.j2",
            "{{ organization.name }}: {{ incident.title }. Reply STOP to opt out.\n",
            ["templates/sms.txt.j2, line 1: template syntax error: unexpected '}'"],
            id="syntax-error",
        ),
        pytest.param(
            "email.html.j2",
            "<p>Hi {{ recipient.name }}</p>\n{% if incident.eta %}<p>soon</p>\n",
            ["templates/email.html.j2, line 2: template syntax error", "'endif'"],
            id="syntax-error-unclosed-block",
        ),
        pytest.param(
            "email.subject.j2",
            "[{{ incident.status }}] {{ incident.headline }}",
            ["template templates/email.subject.j2 line 1: incident has no field 'headline'"],
            id="undefined-attribute",
        ),
        pytest.param(
            "social.txt.j2",
            "{{ incident.title }}.\nUse the code {{ vars.coupon }} for 10% off.",
            [
                "template templates/social.txt.j2 line 2: vars has no 'coupon'",
                "add custom values under 'vars:' in the incident",
            ],
            id="undefined-var",
        ),
        pytest.param(
            "sms.txt.j2",
            "{{ organization.name }}:\n{{ incident.title }}.\n{{ incident.sumary }} Reply STOP.",
            [
                "template templates/sms.txt.j2 line 3: incident has no field 'sumary'; "
                "did you mean 'summary'?"
            ],
            id="misspelt-field",
        ),
        pytest.param(
            "banner.html.j2",
            "<div>{{ customer.name }}</div>",
            ["template templates/banner.html.j2 line 1: 'customer' is undefined", USE_ONLY],
            id="undefined-name",
        ),
        pytest.param(
            "team.txt.j2",
            "{{ incident.title }}\n{{ incident.title + 1 }}",
            ["templates/team.txt.j2, line 2: cannot work this out (", "fix the template"],
            id="type-error",
        ),
        pytest.param(
            "sms.txt.j2",
            "Caf\xe9: {{ incident.title }}".encode("latin-1"),
            ["templates/sms.txt.j2: not UTF-8 text", "save it as UTF-8"],
            id="not-utf8",
        ),
    ],
)
def test_bad_template(
    run: Run, shop: Path, name: str, text: str | bytes, expected: list[str]
) -> None:
    path = shop / "templates" / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    refused(cli(run, "send", INCIDENT, *SANDBOX), *expected)
    nothing_sent(shop)
    refused(cli(run, "check"), *expected)


def test_missing_template_then_fixed(run: Run, shop: Path) -> None:
    """Every kind has packaged defaults, so the template a user can miss is one of their own
    that another includes (a shared footer, a base layout)."""
    (shop / "templates" / "team.txt.j2").write_text(
        "{{ incident.title }}: {{ incident.summary }}\n{% include 'footer.txt.j2' %}\n"
    )
    refused(
        cli(run, "send", INCIDENT, *SANDBOX),
        "templates/team.txt.j2, line 2: the template it includes or extends, "
        "templates/footer.txt.j2, does not exist; create it or fix the name",
    )
    nothing_sent(shop)

    # Doing what the message says works: the include is found next to the template.
    (shop / "templates" / "footer.txt.j2").write_text("-- the on-call team ({{ incident.key }})")
    sent = cli(run, "send", INCIDENT, *SANDBOX)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    [post] = (shop / ".outagecomms" / "outbox" / "team").iterdir()
    assert "-- the on-call team (2026-11-22-email-outage/investigating)" in post.read_text()


def test_an_included_template_reaches_each_recipient(run: Run, shop: Path) -> None:
    """A template that includes another is rendered per recipient: the included part may
    greet them by name (rendering it once would greet everyone with the first name)."""
    (shop / "templates" / "greeting.txt.j2").write_text("Hi {{ recipient.name or 'there' }},")
    (shop / "templates" / "email.txt.j2").write_text(
        "{% include 'greeting.txt.j2' %}\n\n{{ incident.summary }}"
    )
    sent = cli(run, "send", INCIDENT, "--channel", "email", *SANDBOX)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    texts = [p.read_text() for p in (shop / ".outagecomms" / "outbox" / "email").iterdir()]
    assert any("Hi Ada Lovelace," in t for t in texts)
    assert any("Hi Grace Hopper," in t for t in texts)


# --- channel limits ------------------------------------------------------------------------------


def long_incident(shop: Path) -> str:
    text = (shop / INCIDENT).read_text()
    summary = "Our mail server stopped answering and we are moving to a spare one. " * 5
    (shop / "long.yaml").write_text(
        "\n".join(
            f"summary: {summary.strip()}" if line.startswith("summary:") else line
            for line in text.splitlines()
        )
    )
    return "long.yaml"


def test_sms_over_max_segments(run: Run, shop: Path) -> None:
    refused(
        cli(run, "send", long_incident(shop), *SANDBOX),
        "channel 'sms': the SMS for +12015550123 is 4 segments (",
        "GSM-7), over max_segments 2; shorten the sms template (templates/sms.txt.j2) "
        "or the incident summary, or raise max_segments",
    )
    nothing_sent(shop)


def test_post_over_280_weighted_characters(run: Run, shop: Path) -> None:
    refused(
        cli(
            run, "send", long_incident(shop), "--channel", "social", "--channel", "banner", *SANDBOX
        ),
        "channel 'social': the post is ",
        "weighted characters, over X's 280 (links count 23, CJK and emoji 2); shorten the "
        "social template (templates/social.txt.j2) or the incident summary",
    )
    nothing_sent(shop)


# --- the command line ----------------------------------------------------------------------------


def test_unknown_channel(run: Run, shop: Path) -> None:
    message = refused(
        cli(run, "send", INCIDENT, "--channel", "nope", *SANDBOX),
        "--channel names 'nope', which is not a channel in channels.yaml "
        "(configured: sms, social, banner, email, team)",
    )
    assert "did you mean" not in message
    nothing_sent(shop)


def test_misspelt_channel_gets_a_suggestion(run: Run, shop: Path) -> None:
    refused(
        cli(run, "send", INCIDENT, "--channel", "sms", "--channel", "emial", *SANDBOX),
        "--channel names 'emial'",
        "did you mean 'email'?",
    )
    nothing_sent(shop)


def test_unknown_ledger_format(run: Run, shop: Path) -> None:
    refused(cli(run, "ledger", "--format", "xml"), "--format must be table, json or csv, not 'xml'")
    nothing_sent(shop)


# --- channels.yaml and credentials ---------------------------------------------------------------

SECRET = "s3cr3t-Literal-Token-0042"


@pytest.mark.parametrize(
    "command",
    [("send", INCIDENT, *SANDBOX), ("preview", INCIDENT), ("--verbose", "check")],
    ids=["send", "preview", "check-verbose"],
)
def test_literal_secret_in_channels_yaml(run: Run, shop: Path, command: tuple[str, ...]) -> None:
    config = shop / "channels.yaml"
    config.write_text(
        config.read_text().replace(
            "    driver: twilio\n", f"    driver: twilio\n    auth_token: {SECRET}\n"
        )
    )
    result = cli(run, *command)
    refused(
        result,
        f"channels.yaml, line {line_of(config, SECRET)}: 'auth_token' is a secret and must not "
        "be written in channels.yaml; remove it and set OUTAGECOMMS_CHANNELS__SMS__AUTH_TOKEN "
        "in the environment or in a .env file",
    )
    assert SECRET not in result.stdout + result.stderr
    nothing_sent(shop)


def test_literal_secret_in_a_fallback(run: Run, shop: Path) -> None:
    config = shop / "channels.yaml"
    config.write_text(
        config.read_text().replace(
            "      driver: sendgrid", f"      api_key: SG.{SECRET}\n      driver: sendgrid"
        )
    )
    result = cli(run, "send", INCIDENT, *SANDBOX)
    refused(
        result,
        f"channels.yaml, line {line_of(config, SECRET)}: 'api_key' is a secret",
        "set OUTAGECOMMS_CHANNELS__EMAIL__FALLBACK__API_KEY",
    )
    assert SECRET not in result.stdout + result.stderr
    nothing_sent(shop)


def test_misspelt_config_key(run: Run, shop: Path) -> None:
    config = shop / "channels.yaml"
    config.write_text(config.read_text().replace("max_segments: 2", "max_segment: 2"))
    refused(
        cli(run, "send", INCIDENT, *SANDBOX),
        f"channels.yaml, line {line_of(config, 'max_segment:')}: 'channels.sms.max_segment' is "
        "not a known key (check its spelling); did you mean 'max_segments'?",
    )
    nothing_sent(shop)


def test_no_channels_yaml(run: Run, tmp_path: Path) -> None:
    refused(
        cli(run, "send", "incident.yaml", *SANDBOX),
        f"no config file at {tmp_path / 'channels.yaml'} (from the current folder)",
        "--config PATH or OUTAGECOMMS_CONFIG=PATH",
        "'outagecomms init' creates one",
    )
    assert list(tmp_path.iterdir()) == []


# Every provider on a closed local port: a bug that sent anyway could not reach the internet.
LOCAL_PROVIDERS = """\
organization: {name: Acme Shop, status_url: https://shop.example/status}
audience: examples/audience.csv
channels:
  sms: {driver: twilio, from: "+15005550006", max_segments: 2, base_url: "http://127.0.0.1:9"}
  social: {driver: x, base_url: "http://127.0.0.1:9"}
  banner: {driver: file, path: public/}
  email:
    driver: smtp
    host: 127.0.0.1
    port: 9
    from: outage@shop.example
    fallback: {driver: sendgrid, base_url: "http://127.0.0.1:9"}
"""
SMS_KEYS = {
    "OUTAGECOMMS_CHANNELS__SMS__ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef",
    "OUTAGECOMMS_CHANNELS__SMS__AUTH_TOKEN": "auth-token-from-the-environment",
}
X_KEYS = {
    f"OUTAGECOMMS_CHANNELS__SOCIAL__{key}": f"x-{key.lower()}-value"
    for key in ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET")
}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {},
            (
                "channel 'sms' (twilio) has no credentials: set "
                "OUTAGECOMMS_CHANNELS__SMS__ACCOUNT_SID and OUTAGECOMMS_CHANNELS__SMS__AUTH_TOKEN; "
                "channel 'social' (x) has no credentials: set "
                "OUTAGECOMMS_CHANNELS__SOCIAL__CONSUMER_KEY and",
                "channel 'email' (sendgrid) has no credentials: set "
                "OUTAGECOMMS_CHANNELS__EMAIL__FALLBACK__API_KEY in the environment or in a .env",
                "'outagecomms check' lists them; meanwhile '--channel banner' sends through the "
                "others; or try --sandbox, which needs none",
            ),
        ),
        (
            {
                "OUTAGECOMMS_CHANNELS__SMS__ACCOUNT_SID": SMS_KEYS[
                    "OUTAGECOMMS_CHANNELS__SMS__ACCOUNT_SID"
                ]
            },
            "channel 'sms' (twilio) has no credentials: set OUTAGECOMMS_CHANNELS__SMS__AUTH_TOKEN",
        ),
        (
            SMS_KEYS,
            "channel 'social' (x) has no credentials: set "
            "OUTAGECOMMS_CHANNELS__SOCIAL__CONSUMER_KEY",
        ),
        (
            {**SMS_KEYS, **X_KEYS},
            "channel 'email' (sendgrid) has no credentials: set "
            "OUTAGECOMMS_CHANNELS__EMAIL__FALLBACK__API_KEY",
        ),
    ],
    ids=["none", "sms-token-missing", "x-missing", "sendgrid-fallback-missing"],
)
def test_missing_credential_on_a_real_send(
    run: Run, shop: Path, env: dict[str, str], expected: str | tuple[str, ...]
) -> None:
    (shop / "channels.yaml").write_text(LOCAL_PROVIDERS)
    result = cli(run, "send", INCIDENT, "--yes", env=env)
    refused(result, *((expected,) if isinstance(expected, str) else expected))
    for secret in env.values():
        assert secret not in result.stdout + result.stderr
    nothing_sent(shop)


# --- the audience --------------------------------------------------------------------------------


def test_audience_file_not_found(run: Run, shop: Path) -> None:
    refused(
        cli(run, "send", INCIDENT, "--audience", "customers.csv", *SANDBOX),
        "customers.csv: audience file not found; check 'audience:' in channels.yaml "
        "or the --audience path",
    )
    nothing_sent(shop)


def test_configured_audience_file_not_found(run: Run, shop: Path) -> None:
    (shop / "examples" / "audience.csv").unlink()
    refused(
        cli(run, "send", INCIDENT, *SANDBOX),
        "examples/audience.csv: audience file not found; check 'audience:' in channels.yaml",
    )
    nothing_sent(shop)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            "Name,Mail,Mobile\nAda,ada@example.com,+12015550123\n",
            "people.csv, line 1: no 'email' or 'phone' column (found: Name, Mail, Mobile); the "
            "header row must name the columns email, phone, name, locale, sms_opt_in, email_opt_in",
            id="no-usable-column",
        ),
        pytest.param(
            "ada@example.com,+12015550123,Ada\n",
            "people.csv, line 1: no 'email' or 'phone' column (found: ada@example.com, "
            "+12015550123, Ada)",
            id="no-header-row",
        ),
        pytest.param(
            "",
            "people.csv: the audience file is empty; it needs a header row",
            id="empty",
        ),
        pytest.param(
            "email,phone,name\nada@example.com,+12015550123,Ada\n"
            'grace@example.com,"+1 212 555 0147,Grace\n'
            + "".join(f"p{n}@example.com,+1201555{n:04d},P{n}\n" for n in range(5000)),
            "people.csv, line 3: cannot read this row (field larger than field limit (131072)); "
            "check its quotes",
            id="quote-never-closed",
        ),
    ],
)
def test_unusable_audience(run: Run, shop: Path, content: str, expected: str) -> None:
    (shop / "people.csv").write_text(content)
    refused(cli(run, "send", INCIDENT, "--audience", "people.csv", *SANDBOX), expected)
    nothing_sent(shop)
