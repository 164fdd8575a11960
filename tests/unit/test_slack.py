"""SlackWebhook: one JSON post per announcement to the webhook URL, which stays secret."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import respx

from outagecomms.channels.slack import SlackWebhook
from outagecomms.config import Config, SlackSettings
from outagecomms.errors import ConfigError
from outagecomms.models import Incident, Message

HOOK = "http://slack.test/services/T000/B000/secret-hook-token-42"
INCIDENT = Incident(id="mail-down", title="T", summary="S")


def message(text: str = ":rotating_light: Email is down") -> Message:
    return Message(channel="team", kind="team", recipient="-", text=text, incident=INCIDENT)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(using="httpx", assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate({"path": tmp_path / "channels.yaml"})


@pytest.fixture
async def slack(config: Config) -> AsyncIterator[SlackWebhook]:
    settings = SlackSettings.model_validate({"driver": "slack", "webhook_url": HOOK})
    async with SlackWebhook("team", "team", settings, config) as channel:
        yield channel


async def test_posts_the_text_to_the_webhook(router: respx.MockRouter, slack: SlackWebhook) -> None:
    route = router.post(HOOK).respond(200, text="ok")
    [outcome] = await slack.send([message()])
    assert outcome.state == "sent"
    assert route.calls.last.request.headers["content-type"] == "application/json"
    assert json.loads(route.calls.last.request.content) == {
        "text": ":rotating_light: Email is down"
    }


async def test_rate_limit_is_transient_with_retry_after(
    router: respx.MockRouter, slack: SlackWebhook
) -> None:
    router.post(HOOK).respond(429, text="rate_limited", headers={"Retry-After": "3"})
    [outcome] = await slack.send([message()])
    assert (outcome.state, outcome.retryable, outcome.retry_after) == ("failed", True, 3.0)
    assert outcome.code == "rate_limited"


@pytest.mark.parametrize(
    ("status", "body", "retryable", "fatal"),
    [
        (400, "invalid_payload", False, False),
        (403, "action_prohibited", False, True),
        (404, "no_service", False, True),
        (410, "channel_is_archived", False, True),
        (500, "rollup_error", True, False),
    ],
)
async def test_error_answers(
    router: respx.MockRouter,
    slack: SlackWebhook,
    status: int,
    body: str,
    retryable: bool,
    fatal: bool,
) -> None:
    router.post(HOOK).respond(status, text=body)
    [outcome] = await slack.send([message()])
    assert outcome.state == "failed"
    assert (outcome.retryable, outcome.fatal, outcome.code) == (retryable, fatal, body)


async def test_the_webhook_url_never_appears_in_an_outcome(
    router: respx.MockRouter, slack: SlackWebhook
) -> None:
    router.post(HOOK).respond(400, text=f"bad request to {HOOK}")
    [outcome] = await slack.send([message()])
    assert "secret-hook-token-42" not in (outcome.error_text or "")
    assert "[redacted]" in (outcome.error or "")


async def test_an_empty_message_is_not_posted(
    router: respx.MockRouter, slack: SlackWebhook
) -> None:
    route = router.post(HOOK).respond(200, text="ok")
    [outcome] = await slack.send([message("  \n")])
    assert outcome.state == "failed" and not outcome.retryable
    assert not route.called


async def test_check_is_not_checkable(slack: SlackWebhook) -> None:
    result = await slack.check()
    assert result.status == "not checkable"
    assert "without posting" in result.detail


async def test_a_missing_webhook_url_names_the_variable(config: Config) -> None:
    settings = SlackSettings.model_validate({"driver": "slack"})
    with pytest.raises(ConfigError, match="OUTAGECOMMS_CHANNELS__TEAM__WEBHOOK_URL"):
        await SlackWebhook("team", "team", settings, config).open()
