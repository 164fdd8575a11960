"""All HTTP fakes at once, with the environment that points outagecomms at them."""

from __future__ import annotations

from contextlib import ExitStack
from types import TracebackType
from typing import Any, Self

from .sendgrid import FakeSendGrid
from .twilio import FakeTwilio
from .webhook import SLACK_PATH, FakeWebhook
from .x import FakeX

PREFIX = "OUTAGECOMMS_CHANNELS"


def _vars(channel: str, values: dict[str, str]) -> dict[str, str]:
    return {f"{PREFIX}__{channel.upper()}__{key.upper()}": value for key, value in values.items()}


class FakeProviders:
    """Starts FakeTwilio, FakeX, FakeSendGrid and two FakeWebhooks (Slack,
    which insists on ``text``, and an http banner requiring ``banner_token``).

    ``options`` (latency, fail_every, ...) apply to every fake; tune one fake
    afterwards through its attribute (``.twilio``, ``.x``, ``.sendgrid``,
    ``.slack``, ``.banner``).
    """

    def __init__(self, *, banner_token: str = "fake-banner-token", **options: Any) -> None:
        self.twilio = FakeTwilio(**options)
        self.x = FakeX(**options)
        self.sendgrid = FakeSendGrid(**options)
        self.slack = FakeWebhook(require_text=True, path=SLACK_PATH, **options)
        self.banner = FakeWebhook(token=banner_token, path="/status.json", **options)
        self._stack = ExitStack()

    @property
    def all(self) -> tuple[FakeTwilio, FakeX, FakeSendGrid, FakeWebhook, FakeWebhook]:
        return (self.twilio, self.x, self.sendgrid, self.slack, self.banner)

    def start(self) -> Self:
        with ExitStack() as stack:
            for fake in self.all:
                stack.enter_context(fake)
            # Everything started: keep them running past this block.
            self._stack = stack.pop_all()
        return self

    def stop(self) -> None:
        self._stack.close()

    def reset(self) -> None:
        for fake in self.all:
            fake.reset()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def env(
        self,
        *,
        sms: str | None = "sms",
        social: str | None = "social",
        email: str | None = "email",
        team: str | None = "team",
        banner: str | None = None,
        email_fallback: bool = False,
        base_urls: bool = True,
    ) -> dict[str, str]:
        """``OUTAGECOMMS_CHANNELS__<NAME>__<KEY>`` variables for the named
        channels (None leaves a channel out: a variable for a channel missing
        from channels.yaml would make config loading see a half channel).

        ``email_fallback`` puts the SendGrid keys under ``<EMAIL>__FALLBACK__``
        for the usual smtp-with-sendgrid-fallback email channel. ``banner``
        names an http banner channel (url and token); it is off by default
        since the scaffolded banner is a file driver.
        """
        env: dict[str, str] = {}
        if sms:
            values = {
                "account_sid": self.twilio.account_sid,
                "auth_token": self.twilio.auth_token,
            }
            if base_urls:
                values["base_url"] = self.twilio.base_url
            env |= _vars(sms, values)
        if social:
            values = {
                "consumer_key": self.x.consumer_key,
                "consumer_secret": self.x.consumer_secret,
                "access_token": self.x.access_token,
                "access_token_secret": self.x.access_token_secret,
            }
            if base_urls:
                values["base_url"] = self.x.base_url
            env |= _vars(social, values)
        if email:
            values = {"api_key": self.sendgrid.api_key}
            if base_urls:
                values["base_url"] = self.sendgrid.base_url
            env |= _vars(f"{email}__FALLBACK" if email_fallback else email, values)
        if team:
            env |= _vars(team, {"webhook_url": self.slack.url})
        if banner:
            env |= _vars(banner, {"url": self.banner.url, "token": self.banner.token or ""})
        return env
