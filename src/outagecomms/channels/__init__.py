"""Channel drivers by name, imported only when used so that start-up stays fast.

One module per driver (Apprise-style): ``twilio_sms``, ``x``, ``mastodon``, ``bluesky``, ``banner``,
``sendgrid_email``, ``smtp_email``, ``slack``, ``outbox``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..models import Kind

if TYPE_CHECKING:
    from ..config import Config, DriverSettings
    from .base import Channel

DRIVER_CLASSES: dict[str, str] = {
    "twilio": "twilio_sms:TwilioSms",
    "x": "x:XPosts",
    "mastodon": "mastodon:MastodonPosts",
    "bluesky": "bluesky:BlueskyPosts",
    "file": "banner:FileBanner",
    "http": "banner:HttpBanner",
    "sendgrid": "sendgrid_email:SendGridEmail",
    "smtp": "smtp_email:SmtpEmail",
    "slack": "slack:SlackWebhook",
    "outbox": "outbox:Outbox",
}


def channel_class(driver: str) -> type[Channel]:
    module_name, _, class_name = DRIVER_CLASSES[driver].partition(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    cls: type[Channel] = getattr(module, class_name)
    return cls


def build_channel(name: str, kind: Kind, settings: DriverSettings, config: Config) -> Channel:
    """The adapter for one configured channel (and its fallback, when it has one)."""
    primary = channel_class(settings.driver)(name, kind, settings, config)
    if settings.fallback is None:
        return primary
    from .fallback import FallbackChannel

    secondary = build_channel(name, kind, settings.fallback, config)
    return FallbackChannel(primary, secondary)
