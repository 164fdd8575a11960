"""The team channel: one message per announcement to a Slack incoming webhook.

The webhook URL is itself the credential (whoever has it can post), so it is
registered as a secret and never appears in an outcome; errors quote only
Slack's short error code (``no_text``, ``channel_is_archived``...).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import SlackSettings, env_name
from ..errors import ConfigError
from ..models import Message, Outcome
from ..redact import register_secret
from .base import CheckResult, HttpChannel, http_failure, short, unreadable_success

#: Answers meaning the webhook itself is gone or revoked: no later message can pass.
_DEAD_WEBHOOK = frozenset({403, 404, 410})


class SlackWebhook(HttpChannel):
    # Slack has no base_url: the request goes to the webhook URL itself.
    settings: SlackSettings  # type: ignore[assignment]

    batch_size = 1

    @property
    def webhook_url(self) -> str:
        url = self.settings.webhook_url
        if url is None:
            raise ConfigError(
                f"channel '{self.name}' (slack) has no webhook_url: set "
                f"{env_name(self.name, 'webhook_url')} in the environment or in a .env file"
            )
        return url.get_secret_value()

    async def open(self) -> None:
        # Settings built in code (not by load_config) have not registered it yet.
        register_secret(self.webhook_url)
        await super().open()

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for message in messages:
            if not message.text.strip():
                outcomes.append(Outcome.failed("the team message is empty", code="no_text"))
                continue
            response = await self.http.post(self.webhook_url, json={"text": message.text})
            if response.is_success:
                outcomes.append(unreadable_success("Slack", response) or Outcome.sent("slack"))
                continue
            # Slack answers a bare error code as plain text ("rate_limited", "no_text").
            code = response.text.strip()
            code = code if code.isidentifier() and len(code) <= 64 else None
            outcome = http_failure(response, code, short(response.text, 200))
            outcome.fatal = outcome.fatal or response.status_code in _DEAD_WEBHOOK
            outcomes.append(outcome)
        return outcomes

    async def check(self) -> CheckResult:
        return CheckResult("not checkable", "Slack webhooks cannot be checked without posting")
