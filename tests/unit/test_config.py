from __future__ import annotations

from pathlib import Path

import pytest

from outagecomms import ConfigError
from outagecomms.config import (
    SendGridSettings,
    SmtpSettings,
    TwilioSettings,
    load_config,
    require_credentials,
)
from outagecomms.redact import redact
from outagecomms.store import open_store, sqlite_path

ROOT = Path(__file__).parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "channels.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads() -> None:
    config = load_config(ROOT / "channels.yaml")
    assert set(config.channels) == {"sms", "social", "banner", "email", "team"}
    sms = config.channels["sms"]
    assert isinstance(sms, TwilioSettings)
    assert sms.from_ == "+15005550006" and sms.max_segments == 2
    email = config.channels["email"]
    assert isinstance(email, SmtpSettings)
    assert isinstance(email.fallback, SendGridSettings)
    # The fallback inherits the keys of its channel that it understands.
    assert email.fallback.from_ == "outage@shop.example"
    assert config.audience == Path("examples/audience.csv")
    assert sqlite_path(config.ledger, config.root) == ROOT / ".outagecomms/ledger.db"


def test_environment_sets_secrets_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        "channels:\n  sms: {driver: twilio, from: '+15005550006'}\n"
        "  email: {driver: smtp, host: mail, from: a@shop.example, fallback: {driver: sendgrid}}\n",
    )
    monkeypatch.setenv("OUTAGECOMMS_CHANNELS__SMS__ACCOUNT_SID", "AC-from-env-123")
    monkeypatch.setenv("outagecomms_channels__sms__auth_token", "token-from-env-456")
    monkeypatch.setenv("OUTAGECOMMS_CHANNELS__SMS__MAX_SEGMENTS", "1")
    (tmp_path / ".env").write_text("OUTAGECOMMS_CHANNELS__EMAIL__FALLBACK__API_KEY=SG.dotenv-key\n")
    config = load_config(path)
    sms = config.channels["sms"]
    assert isinstance(sms, TwilioSettings)
    assert sms.auth_token is not None
    assert sms.auth_token.get_secret_value() == "token-from-env-456"
    assert sms.max_segments == 1
    fallback = config.channels["email"].fallback
    assert isinstance(fallback, SendGridSettings)
    assert fallback.api_key is not None
    assert fallback.api_key.get_secret_value() == "SG.dotenv-key"
    # Loaded secrets are redacted from anything shown from now on.
    assert "token-from-env-456" not in redact("error: token-from-env-456 refused")
    assert "token-from-env-456" not in repr(config)


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "channels:\n  banner: {driver: file}\n")
    monkeypatch.setenv("OUTAGECOMMS_CONFIG", str(path))
    assert list(load_config().channels) == ["banner"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "channels:\n  sms:\n    driver: twilio\n    auth_token: abc123456\n",
            "line 4: 'auth_token' is a secret and must not be written in channels.yaml; remove "
            "it and set OUTAGECOMMS_CHANNELS__SMS__AUTH_TOKEN",
        ),
        (
            "channels:\n  email:\n    driver: smtp\n    host: h\n    fallback:\n"
            "      driver: sendgrid\n      api_key: SG.x\n",
            "OUTAGECOMMS_CHANNELS__EMAIL__FALLBACK__API_KEY",
        ),
        (
            "channels:\n  sms: {driver: twillio}\n",
            "unknown driver 'twillio'; did you mean 'twilio'?",
        ),
        ("channels:\n  sms: {from: '+1'}\n", "channel 'sms' has no 'driver'"),
        (
            "channels:\n  sms:\n    driver: twilio\n    max_segment: 2\n",
            "line 4: 'channels.sms.max_segment' is not a known key (check its spelling); "
            "did you mean 'max_segments'?",
        ),
        ("channels:\n  sms:\n    driver: twilio\n    max_segments: lots\n", "line 4"),
        ("default_region: Narnia\n", "line 1: 'default_region'"),
        ("channels: [sms]\n", "'channels' must map names to settings"),
        ("organisation: {name: x}\n", "'organisation' is not a known key"),
        ("channels:\n  SMS: {driver: file}\n", "must be lower-case"),
        ("channels: {a: {driver: http}}\n", "'channels.a.url' is required but missing"),
        ("channels:\n  sms: {driver: twilio\n", "not valid YAML"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_missing_config_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outagecomms init"):
        load_config(tmp_path / "channels.yaml")


def test_unsupported_ledger_url(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "ledger: mysql://db/outage\n"))
    with pytest.raises(ConfigError, match=r"sqlite:///.*postgresql://"):
        open_store(config.ledger, base_dir=config.root)


def test_missing_credentials_name_the_variable(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "channels:\n  sms: {driver: twilio, from: '+15005550006'}\n"
            "  social: {driver: x}\n"
            "  email: {driver: smtp, host: h, from: a@shop.example,"
            " fallback: {driver: sendgrid}}\n",
        )
    )
    with pytest.raises(ConfigError, match="OUTAGECOMMS_CHANNELS__SMS__ACCOUNT_SID"):
        require_credentials("sms", config.channels["sms"])
    with pytest.raises(ConfigError, match="OUTAGECOMMS_CHANNELS__SOCIAL__CONSUMER_KEY"):
        require_credentials("social", config.channels["social"])
    with pytest.raises(ConfigError, match="OUTAGECOMMS_CHANNELS__EMAIL__FALLBACK__API_KEY"):
        require_credentials("email", config.channels["email"])
