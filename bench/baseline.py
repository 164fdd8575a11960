"""The baseline people use today: a plain loop over the providers' synchronous SDKs.

* SMS: ``twilio.rest.Client(...).messages.create(...)`` once per message, with a
  ``TwilioHttpClient`` that sends the SDK's ``https://api.twilio.com`` requests to the
  fake instead (nothing else changes: same SDK, same ``requests`` session, keep-alive).
* Email: one SendGrid ``/v3/mail/send`` request per email through the ``sendgrid``
  package's own client (``SendGridAPIClient(host=...)``).

A loop at 50 ms per request takes minutes for 20,000 messages, so it is timed on the
first ``sample`` messages and its rate extrapolated; the output says so.
"""

from __future__ import annotations

import time
from typing import Any

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

from .common import EMAIL_FROM, SENDER, e164, email

TWILIO_API = "https://api.twilio.com"


class RedirectedTwilioHttpClient(TwilioHttpClient):
    """The SDK's own synchronous HTTP client, pointed at another host."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        # No proxy from the environment: the fake is on 127.0.0.1.
        if self.session is not None:
            self.session.trust_env = False

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        return super().request(method, url, *args, **kwargs)


def sms(base_url: str, account_sid: str, auth_token: str, sample: int, text: str) -> float:
    """Seconds for a synchronous loop to send ``sample`` messages."""
    from twilio.rest import Client

    client = Client(
        account_sid,
        auth_token,
        http_client=RedirectedTwilioHttpClient(base_url),
        environment={"BENCH": "1"},
    )
    started = time.perf_counter()
    for i in range(sample):
        message = client.messages.create(to=e164(i), from_=SENDER, body=text)
        assert message.sid
    return time.perf_counter() - started


def emails(base_url: str, api_key: str, sample: int, subject: str, text: str, html: str) -> float:
    """Seconds for a synchronous loop to send ``sample`` emails, one request each."""
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Mail

    client = SendGridAPIClient(api_key, host=base_url)
    started = time.perf_counter()
    for i in range(sample):
        mail = Mail(
            from_email=EMAIL_FROM,
            to_emails=email(i),
            subject=subject,
            plain_text_content=text,
            html_content=html,
        )
        response = client.send(mail)
        assert response.status_code == 202, response.status_code
    return time.perf_counter() - started
