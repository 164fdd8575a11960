"""Fake provider servers for end-to-end tests and benchmarks.

Each HTTP fake (Twilio, X, Mastodon, Bluesky, SendGrid, a webhook for Slack or an http banner)
is an aiohttp app served from its own thread and event loop on 127.0.0.1
on a free port, so it serves a CLI running in a subprocess as well as
in-process async code::

    with FakeTwilio(latency=0.05, fail_every=10, fail_status=429) as tw:
        ...  # point the sms channel at tw.base_url
        assert len(tw.messages) == 100 and tw.faulted == 10

FakeSMTP wraps aiosmtpd; ``closed_port()`` and ``silent_server()`` stand in
for a mail server that is down or hangs. FakeProviders starts all HTTP fakes
and builds the matching ``OUTAGECOMMS_CHANNELS__...`` environment.
"""

from ._base import FakeServer, RecordedRequest
from .bluesky import FakeBluesky
from .mastodon import FakeMastodon
from .providers import FakeProviders
from .sendgrid import FakeSendGrid
from .sendgrid_campaigns import FakeSendGridCampaigns
from .smtp import FakeSMTP, ReceivedMail, SilentServer, closed_port, silent_server
from .twilio import FakeTwilio, num_segments
from .webhook import FakeWebhook
from .x import FakeX

__all__ = [
    "FakeBluesky",
    "FakeMastodon",
    "FakeProviders",
    "FakeSMTP",
    "FakeSendGrid",
    "FakeSendGridCampaigns",
    "FakeServer",
    "FakeTwilio",
    "FakeWebhook",
    "FakeX",
    "ReceivedMail",
    "RecordedRequest",
    "SilentServer",
    "closed_port",
    "num_segments",
    "silent_server",
]
