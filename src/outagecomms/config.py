"""channels.yaml plus the environment (or ``.env``) as typed settings, one model per driver.

Secrets are never read from channels.yaml: they come from
``OUTAGECOMMS_CHANNELS__<NAME>__<KEY>`` (``...__FALLBACK__<KEY>`` for a
fallback driver), merged in by pydantic-settings, and are held as
``SecretStr`` so they cannot leak through a repr.
"""

from __future__ import annotations

import base64
import difflib
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError
from .models import Kind
from .redact import register_secret
from .yamlfile import YamlDocument, load_yaml

ENV_PREFIX = "OUTAGECOMMS_"
CONFIG_ENV = "OUTAGECOMMS_CONFIG"
DEFAULT_CONFIG = "channels.yaml"
DEFAULT_LISTEN = "127.0.0.1:8080"


#: Everything that ends a line somewhere: ``str.splitlines`` breaks, which email clients and
#: header parsers honour too (a U+2028 in a subject can start a new header in some).
LINE_BREAK = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def http_url(value: str | None) -> str | None:
    """``value`` when it is an http(s) URL with a host; pydantic error otherwise.

    Checked when the config loads, so a ``base_url`` that could never work stops
    ``send`` before any channel has posted anything.
    """
    if value is None:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("http_url", "must be an http:// or https:// URL with a host name")
    return value.strip()


def one_line(value: str | None) -> str | None:
    """``value`` when it holds no line break of any kind (it goes into an email header)."""
    if value is not None and LINE_BREAK.search(value):
        raise PydanticCustomError(
            "one_line", "must be on one line (it contains a line break or line separator)"
        )
    return value


def env_name(*keys: str) -> str:
    """The environment variable that sets a key, e.g. ``OUTAGECOMMS_CHANNELS__SMS__AUTH_TOKEN``."""
    return ENV_PREFIX + "__".join(["CHANNELS", *keys]).upper()


class Organization(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "Our company"
    website: str | None = None
    status_url: str | None = None
    #: IANA zone for the times people read (CLI output; templates through ``when``).
    timezone: str = "UTC"
    #: Language of broadcast channels, and of recipients without (or with an invalid) ``locale``.
    locale: str = "en"
    #: Shown at the top of the default emails instead of the name (an https image URL).
    logo_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    #: The default emails' accent colour (header rule, button), as #rgb or #rrggbb.
    brand_color: str | None = Field(default=None, pattern=r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
    #: Printed in every email's footer (US CAN-SPAM requires it in commercial email).
    postal_address: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"'{value}' is not an IANA time zone such as UTC, Europe/Paris or America/New_York"
            ) from None
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        from .locales import normalise_locale

        if normalise_locale(value) is None:
            raise ValueError(f"'{value}' is not a language tag such as en, fr-CA or de")
        return value


class DriverSettings(BaseModel):
    """Keys every channel takes. Subclasses add a driver's own keys and name its secrets."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: ClassVar[Kind | None]
    secrets: ClassVar[tuple[str, ...]] = ()
    #: How many deliveries may be in flight at once unless the config says otherwise.
    default_concurrency: ClassVar[int] = 1
    #: Requests per second the provider tolerates, unless the config says otherwise.
    default_rate: ClassVar[float | None] = None

    driver: str
    concurrency: int | None = Field(default=None, ge=1, le=1000)
    rate_per_second: float | None = Field(default=None, gt=0)
    templates: Path | None = None
    #: Attempts per message for transient failures (the first try included).
    max_attempts: int = Field(default=5, ge=1, le=50)
    #: Longest total time spent waiting between retries of one message, in seconds.
    max_retry_seconds: float = Field(default=120.0, ge=0)
    #: Consecutive transient failures after which the channel pauses for this run.
    breaker_threshold: int = Field(default=20, ge=1)
    fallback: DriverSettings | None = None

    @property
    def effective_concurrency(self) -> int:
        return self.concurrency or self.default_concurrency

    @property
    def effective_rate(self) -> float | None:
        return self.rate_per_second or self.default_rate

    def missing_secrets(self) -> list[str]:
        """Required secrets that are not set (drivers override for either/or credentials)."""
        return [key for key in self.secrets if getattr(self, key) is None]


class HttpDriverSettings(DriverSettings):
    """A driver that talks HTTP: ``base_url`` points it at another endpoint or a test server."""

    default_base_url: ClassVar[str] = ""

    base_url: str | None = None
    timeout: float = Field(default=10.0, gt=0)

    _base_url_is_http = field_validator("base_url")(http_url)

    @property
    def effective_base_url(self) -> str:
        return (self.base_url or self.default_base_url).rstrip("/")


class TwilioSettings(HttpDriverSettings):
    kind = "sms"
    secrets = ("account_sid", "auth_token", "api_key", "api_secret")
    default_concurrency = 20
    default_base_url = "https://api.twilio.com"

    driver: Literal["twilio"] = "twilio"
    from_: str | None = Field(default=None, alias="from")
    messaging_service_sid: str | None = None
    max_segments: int = Field(default=3, ge=1, le=10)
    status_callback: str | None = None
    #: "21:00-08:00": no SMS while it is this late in the recipient's time (DESIGN §13).
    quiet_hours: str | None = None
    account_sid: SecretStr | None = None
    auth_token: SecretStr | None = None
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_window(cls, value: str | None) -> str | None:
        from .consent.quiet import QuietHours

        return None if value is None else str(QuietHours.parse(value))

    @model_validator(mode="after")
    def _has_sender(self) -> TwilioSettings:
        if not (self.from_ or self.messaging_service_sid):
            raise PydanticCustomError(
                "sender",
                "has no sender: set 'from' (a Twilio phone number) or 'messaging_service_sid'",
            )
        return self

    def missing_secrets(self) -> list[str]:
        missing = [] if self.account_sid else ["account_sid"]
        if not self.auth_token and not (self.api_key and self.api_secret):
            missing.append("auth_token")
        return missing


class XSettings(HttpDriverSettings):
    kind = "social"
    secrets = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
    secrets += ("bearer_token",)
    default_base_url = "https://api.twitter.com"

    driver: Literal["x"] = "x"
    consumer_key: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    access_token: SecretStr | None = None
    access_token_secret: SecretStr | None = None
    bearer_token: SecretStr | None = None

    def missing_secrets(self) -> list[str]:
        if self.bearer_token:
            return []
        oauth1 = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
        return [key for key in oauth1 if getattr(self, key) is None]


class MastodonSettings(HttpDriverSettings):
    """A Mastodon account: ``base_url`` is its instance (there is no default instance)."""

    kind = "social"
    secrets = ("access_token",)

    driver: Literal["mastodon"] = "mastodon"
    base_url: str  # type: ignore[assignment]  # required here: the instance
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    #: ISO 639 code sent with each post; default: the language of the message's locale.
    language: str | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}$")
    access_token: SecretStr | None = None


class BlueskySettings(HttpDriverSettings):
    """A Bluesky account: ``handle`` and an app password, on its PDS (``base_url``)."""

    kind = "social"
    secrets = ("app_password",)
    default_base_url = "https://bsky.social"

    driver: Literal["bluesky"] = "bluesky"
    handle: str = Field(min_length=1)
    app_password: SecretStr | None = None


class FileBannerSettings(DriverSettings):
    kind = "banner"

    driver: Literal["file"] = "file"
    path: Path = Path("public")


class HttpBannerSettings(HttpDriverSettings):
    kind = "banner"
    secrets = ("token",)

    driver: Literal["http"] = "http"
    url: str
    method: Literal["PUT", "POST"] = "PUT"
    token: SecretStr | None = None

    _url_is_http = field_validator("url")(http_url)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def missing_secrets(self) -> list[str]:
        return []  # a banner endpoint may be open; the token is optional


class EmailSenderSettings(DriverSettings):
    """The sender keys of an email driver: ``from`` required, every one a single line."""

    kind = "email"

    from_: str | None = Field(default=None, alias="from")
    from_name: str | None = None
    reply_to: str | None = None

    _single_lines = field_validator("from_", "from_name", "reply_to")(one_line)

    @model_validator(mode="after")
    def _has_sender(self) -> EmailSenderSettings:
        if not self.from_:
            raise PydanticCustomError(
                "sender", "has no sender address: set 'from' (e.g. outage@shop.example)"
            )
        return self


class SendGridSettings(EmailSenderSettings, HttpDriverSettings):
    kind = "email"
    secrets = ("api_key",)
    default_concurrency = 4
    default_base_url = "https://api.sendgrid.com"

    driver: Literal["sendgrid"] = "sendgrid"
    asm_group_id: int | None = None
    sandbox_mode: bool = False
    #: The Event Webhook's verification key (public; SendGrid > Mail Settings > Signed Event
    #: Webhook): ``serve`` refuses events it does not verify.
    webhook_public_key: str | None = None
    api_key: SecretStr | None = None

    @field_validator("webhook_public_key")
    @classmethod
    def _verification_key(cls, value: str | None) -> str | None:
        """A key that does not load would make ``serve`` refuse every event: say so now."""
        if value is None:
            return None
        from cryptography.hazmat.primitives.asymmetric import ec
        from sendgrid.helpers.eventwebhook import EventWebhook

        value = "".join(value.split())
        try:
            loaded = isinstance(EventWebhook(value).public_key, ec.EllipticCurvePublicKey)
        except (ValueError, TypeError, UnicodeError):
            loaded = False
        if not loaded:
            raise ValueError(
                "is not a SendGrid verification key: copy the whole 'Verification Key' of "
                "Settings > Mail Settings > Signed Event Webhook (it starts with MFkw)"
            ) from None
        return value


class SmtpSettings(EmailSenderSettings, DriverSettings):
    kind = "email"
    secrets = ("password",)
    default_concurrency = 4

    driver: Literal["smtp"] = "smtp"
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    timeout: float = Field(default=10.0, gt=0)
    password: SecretStr | None = None

    def missing_secrets(self) -> list[str]:
        return ["password"] if self.username and not self.password else []


class SlackSettings(DriverSettings):
    kind = "team"
    secrets = ("webhook_url",)
    default_rate = 1.0

    driver: Literal["slack"] = "slack"
    webhook_url: SecretStr | None = None
    timeout: float = Field(default=10.0, gt=0)


class OutboxSettings(DriverSettings):
    """The local outbox used by ``--sandbox``: one file per message, no provider at all."""

    kind = None  # any kind: it takes the kind of the channel it stands in for
    default_concurrency = 8

    driver: Literal["outbox"] = "outbox"
    path: Path = Path(".outagecomms/outbox")


class ServeSettings(BaseModel):
    """The ``serve:`` block: where the status server listens and how the world reaches it.

    ``public_url`` is the address customers and providers use (behind a reverse proxy it
    is not the one the server sees), so links in messages and signed webhook URLs are
    made from it. ``secret`` signs unsubscribe tokens; it comes from the environment only
    (``OUTAGECOMMS_SERVE__SECRET``), see ``outagecomms.secret``.
    """

    model_config = ConfigDict(extra="forbid")

    public_url: str | None = None
    listen: str = DEFAULT_LISTEN
    history_days: int = Field(default=90, ge=0, le=36500)
    secret: SecretStr | None = None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"'{value}' is not a web address such as https://status.shop.example")
        if parts.query or parts.fragment:
            raise ValueError(f"'{value}' must not have a ?query or #fragment")
        return value.strip().rstrip("/")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    def require_public_url(self, purpose: str) -> str:
        """``public_url``, or a ``ConfigError`` saying it is needed for ``purpose``."""
        if self.public_url is None:
            raise ConfigError(
                f"serve.public_url is not set but is needed for {purpose}: add "
                "'serve: {public_url: https://status.your.domain}' to channels.yaml "
                "(or set OUTAGECOMMS_SERVE__PUBLIC_URL)"
            )
        return self.public_url


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6; port 0 picks a free one) as (host, port)."""
    match = re.fullmatch(
        r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9.-]+):(\d{1,5})", value.strip()
    )
    if not match:
        raise ValueError(f"'{value}' is not HOST:PORT such as 127.0.0.1:8080")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ValueError(f"'{value}': the port must be between 0 and 65535")
    return host, port


class CampaignsSettings(BaseModel):
    """The ``campaigns:`` block (DESIGN §15): where scheduled marketing emails live.

    Not a channel: nothing is ever sent through it, it only unschedules and
    reschedules Single Sends. The key comes from ``OUTAGECOMMS_CAMPAIGNS__API_KEY``.
    """

    model_config = ConfigDict(extra="forbid")

    secrets: ClassVar[tuple[str, ...]] = ("api_key",)
    default_base_url: ClassVar[str] = "https://api.sendgrid.com"

    driver: Literal["sendgrid"] = "sendgrid"
    base_url: str | None = None
    timeout: float = Field(default=10.0, gt=0)
    api_key: SecretStr | None = None

    _base_url_is_http = field_validator("base_url")(http_url)

    @property
    def effective_base_url(self) -> str:
        return (self.base_url or self.default_base_url).rstrip("/")


DRIVERS: dict[str, type[DriverSettings]] = {
    "twilio": TwilioSettings,
    "x": XSettings,
    "mastodon": MastodonSettings,
    "bluesky": BlueskySettings,
    "file": FileBannerSettings,
    "http": HttpBannerSettings,
    "sendgrid": SendGridSettings,
    "smtp": SmtpSettings,
    "slack": SlackSettings,
    "outbox": OutboxSettings,
}

ALL_SECRET_KEYS = frozenset(key for cls in DRIVERS.values() for key in cls.secrets) | {"password"}


class Config(BaseModel):
    """The whole configuration: organization, audience, ledger and the channels by name."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    path: Path
    organization: Organization = Field(default_factory=Organization)
    audience: Path | None = None
    default_region: str = "US"
    ledger: str = "sqlite:///.outagecomms/ledger.db"
    templates: Path = Path("templates")
    outbox: Path = Path(".outagecomms/outbox")
    channels: dict[str, DriverSettings] = Field(default_factory=dict)
    campaigns: CampaignsSettings | None = None
    serve: ServeSettings = Field(default_factory=ServeSettings)

    @property
    def root(self) -> Path:
        """The folder of channels.yaml: relative paths in it are relative to this."""
        return self.path.parent

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        import phonenumbers

        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"'{value}' is not a region code such as US, GB or DE")
        return value

    @model_validator(mode="after")
    def _channel_names(self) -> Config:
        for name in self.channels:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(
                    f"channel name '{name}' must be lower-case letters, digits and _ "
                    "(it is also part of environment variable names)"
                )
        return self


class _EnvOverrides(BaseSettings):
    """Values from the environment and .env, in the same shape as channels.yaml."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="ignore",
    )

    organization: dict[str, Any] = {}
    audience: str | None = None
    default_region: str | None = None
    ledger: str | None = None
    templates: str | None = None
    channels: dict[str, dict[str, Any]] = {}
    campaigns: dict[str, Any] = {}
    serve: dict[str, Any] = {}


def config_path(path: str | Path | None = None) -> Path:
    """The config file to use: the argument, else $OUTAGECOMMS_CONFIG, else ./channels.yaml."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def dotenv_path(config_file: Path) -> Path | None:
    """The one ``.env`` read: the file next to channels.yaml, when there is one.

    Never ``./.env`` of the folder a command runs in: a ``.env`` left in an untrusted
    folder could otherwise redirect a ``base_url`` and receive the real credentials.
    Variables of the environment win over it (pydantic-settings' order).
    """
    candidate = config_file.parent / ".env"
    return candidate if candidate.is_file() else None


def load_config(path: str | Path | None = None) -> Config:
    """Read channels.yaml and the environment; any problem raises ``ConfigError``."""
    file = config_path(path)
    doc = load_yaml(file, ConfigError, "config file (create one with 'outagecomms init')")
    _refuse_literal_secrets(doc)
    _refuse_ledger_password(doc)
    overrides = _EnvOverrides(_env_file=dotenv_path(file)).model_dump(exclude_unset=True)
    data = _deep_merge(doc.data, overrides)
    channels = data.pop("channels", None) or {}
    if not isinstance(channels, dict):
        raise ConfigError(f"{doc.where(('channels',))}: 'channels' must map names to settings")
    data["channels"] = {
        name: _channel_settings(doc, (str(name),), raw, {}) for name, raw in channels.items()
    }
    try:
        config = Config.model_validate({"path": file, **data})
    except ValidationError as exc:
        raise ConfigError(doc.describe(exc)) from None
    for settings in config.channels.values():
        _register_secrets(settings)
    register_secret(_dsn_password(config.ledger))
    if config.campaigns is not None and config.campaigns.api_key is not None:
        register_secret(config.campaigns.api_key.get_secret_value())
    if config.serve.secret is not None:
        register_secret(config.serve.secret.get_secret_value())
    return config


def _channel_settings(
    doc: YamlDocument, name: tuple[str, ...], raw: Any, inherited: dict[str, Any]
) -> DriverSettings:
    loc: tuple[str, ...] = ("channels", *name)
    label = ".".join(name)
    if not isinstance(raw, dict):
        raise ConfigError(f"{doc.where(loc)}: channel '{label}' must be a mapping of keys")
    driver = raw.get("driver")
    if driver not in DRIVERS:
        known = ", ".join(sorted(DRIVERS))
        hint = difflib.get_close_matches(str(driver), DRIVERS, n=1)
        did_you_mean = f"; did you mean '{hint[0]}'?" if hint else f" (known: {known})"
        problem = "has no 'driver'" if driver is None else f"has unknown driver '{driver}'"
        raise ConfigError(
            f"{doc.where((*loc, 'driver'))}: channel '{label}' {problem}{did_you_mean}"
        )
    cls = DRIVERS[driver]
    own = {key: value for key, value in raw.items() if key != "fallback"}
    # A fallback inherits the keys of its channel that it also understands (from, from_name...).
    accepted = {f.alias or n for n, f in cls.model_fields.items()} | set(cls.model_fields)
    values = {k: v for k, v in inherited.items() if k in accepted and k not in ("driver",)}
    values.update(own)
    fallback_raw = raw.get("fallback")
    if fallback_raw is not None:
        values["fallback"] = _channel_settings(doc, (*name, "fallback"), fallback_raw, own)
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        message = doc.describe(exc, prefix=loc)
        first = exc.errors()[0]
        if first["type"] == "extra_forbidden":
            key = str(first["loc"][-1])
            hint = difflib.get_close_matches(key, accepted, n=1)
            if hint:
                message += f"; did you mean '{hint[0]}'?"
        raise ConfigError(message) from None


def _dsn_password(url: object) -> str | None:
    """The password of a ``postgresql://user:password@host/db`` ledger URL, if it has one."""
    try:
        return urlsplit(str(url)).password
    except ValueError:
        return None


def _refuse_ledger_password(doc: YamlDocument) -> None:
    """A database password in channels.yaml would end up in every copy of the file."""
    if _dsn_password(doc.data.get("ledger")):
        raise ConfigError(
            f"{doc.where(('ledger',))}: the ledger URL holds a password, which must not be "
            f"written in {doc.path.name}; remove it and set PGPASSWORD (or the whole URL as "
            f"{ENV_PREFIX}LEDGER) in the environment or in a .env file"
        )


#: The secret of each top-level block: (block, key, what to add to the message).
_BLOCK_SECRETS = (
    ("campaigns", "api_key", ""),
    ("serve", "secret", " (or leave it unset: one is created in .outagecomms/secret)"),
)


def _refuse_literal_secrets(doc: YamlDocument) -> None:
    for block, key, hint in _BLOCK_SECRETS:
        values = doc.data.get(block)
        if isinstance(values, dict) and values.get(key) not in (None, ""):
            raise ConfigError(
                f"{doc.where((block, key))}: '{key}' is a secret and must not be written in "
                f"{doc.path.name}; remove it and set {ENV_PREFIX}{block.upper()}__{key.upper()} "
                f"in the environment or in a .env file{hint}"
            )
    channels = doc.data.get("channels")
    if not isinstance(channels, dict):
        return
    for name, raw in channels.items():
        path: tuple[str, ...] = (str(name),)
        while isinstance(raw, dict):
            for key in raw:
                if key in ALL_SECRET_KEYS and raw[key] not in (None, ""):
                    raise ConfigError(
                        f"{doc.where(('channels', *path, key))}: '{key}' is a secret and must not "
                        f"be written in {doc.path.name}; remove it and set {env_name(*path, key)} "
                        "in the environment or in a .env file"
                    )
            raw = raw.get("fallback")
            path = (*path, "fallback")


def _register_secrets(settings: DriverSettings) -> None:
    for value in settings.__dict__.values():
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
    if isinstance(settings, TwilioSettings):
        # The Basic Authorization header, as an error page echoing the request shows it.
        for user, password in (
            (settings.account_sid, settings.auth_token),
            (settings.api_key, settings.api_secret),
        ):
            if user is not None and password is not None:
                pair = f"{user.get_secret_value()}:{password.get_secret_value()}"
                register_secret(base64.b64encode(pair.encode()).decode())
    if isinstance(settings, SmtpSettings) and settings.username and settings.password:
        # The whole AUTH PLAIN blob, as a server echoing the exchange shows it (the
        # password inside any base64 blob is masked by redact.py in any case).
        plain = f"\0{settings.username}\0{settings.password.get_secret_value()}"
        register_secret(base64.b64encode(plain.encode()).decode())
    if settings.fallback is not None:
        _register_secrets(settings.fallback)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``; channel names match case-insensitively (env names are lowered)."""
    merged = dict(base)
    lowered = {str(key).lower(): key for key in merged}
    for key, value in extra.items():
        target = lowered.get(str(key).lower(), key)
        if isinstance(value, dict) and isinstance(merged.get(target), dict):
            merged[target] = _deep_merge(merged[target], value)
        else:
            merged[target] = value
    return merged


def require_credentials(name: str, settings: DriverSettings) -> None:
    """Raise ``ConfigError`` naming the variable to set when a channel lacks a credential."""
    for path, current in ((name,), settings), ((name, "fallback"), settings.fallback):
        if current is None:
            continue
        missing = current.missing_secrets()
        if missing:
            variables = " and ".join(env_name(*path, key) for key in missing)
            raise ConfigError(
                f"channel '{name}' ({current.driver}) has no credentials: set {variables} "
                "in the environment or in a .env file (or try --sandbox, which needs none)"
            )
