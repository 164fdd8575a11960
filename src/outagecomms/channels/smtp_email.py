"""Email through the company's own mail server (SMTP), usually with SendGrid as fallback.

One SMTP session per ``send`` call carries the whole batch (50 messages),
one message per recipient. ``starttls: false`` without ``username`` is
plain unauthenticated SMTP; ``starttls: true`` upgrades with STARTTLS;
port 465 is taken as implicit TLS; ``username`` + ``password`` log in.

Replies map to outcomes: 2xx sent (the provider id is the Message-ID
header), 5xx a permanent failure with the code, 4xx a transient one.
A connection that cannot be opened, is lost, or times out leaves the
messages not yet handed over as transient failures, which a
``FallbackChannel`` reroutes to its fallback. The message in flight when
the server stopped answering during DATA is ``unknown``: the server may
have queued it, and sending it elsewhere could deliver it twice.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Sequence
from email.errors import MessageError
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from ..config import SmtpSettings
from ..models import Message, Outcome
from ..redact import redact, register_secret
from .base import Channel, CheckResult
from .mime import build_email

if TYPE_CHECKING:
    import aiosmtplib

#: Messages per SMTP session: long enough to save handshakes, short enough to spread load.
BATCH_SIZE = 50
#: The probe must decide quickly whether to fall back: an outage is no time to wait.
PROBE_TIMEOUT = 5.0
IMPLICIT_TLS_PORT = 465


@functools.cache
def _smtp_class() -> type[aiosmtplib.SMTP]:
    import aiosmtplib

    class _Session(aiosmtplib.SMTP):
        """Remembers whether DATA began, to tell "not sent" from "maybe sent"."""

        data_started = False

        async def data(self, message: str | bytes, /, **kwargs: Any) -> Any:
            self.data_started = True
            return await super().data(message, **kwargs)

    return _Session


class SmtpEmail(Channel):
    settings: SmtpSettings

    batch_size = BATCH_SIZE

    async def open(self) -> None:
        if self.settings.password is not None:
            # Settings built in code (not by load_config) have not registered it yet.
            register_secret(self.settings.password.get_secret_value())

    # --- sessions --------------------------------------------------------------

    def _session(self, timeout: float) -> aiosmtplib.SMTP:
        settings = self.settings
        implicit_tls = settings.port == IMPLICIT_TLS_PORT
        password = settings.password.get_secret_value() if settings.password else None
        return _smtp_class()(
            hostname=settings.host,
            port=settings.port,
            timeout=timeout,
            use_tls=implicit_tls,
            # False, not None: None would upgrade whenever offered, and "starttls: false"
            # must mean plain SMTP.
            start_tls=settings.starttls and not implicit_tls,
            username=settings.username,
            password=password if settings.username else None,
            # socket.getfqdn (aiosmtplib's default) can stall for seconds without DNS.
            local_hostname=_local_hostname(),
        )

    async def _connect(self, timeout: float) -> aiosmtplib.SMTP:
        """An open session: connected, upgraded and logged in as configured, EHLO done,
        all within ``timeout`` (a server answering a byte at a time cannot stretch it)."""
        session = self._session(timeout)
        try:
            async with asyncio.timeout(timeout) as scope:
                await session.connect()
                if session.is_ehlo_or_helo_needed:
                    await session.ehlo()
        except BaseException as exc:
            session.close()
            if isinstance(exc, TimeoutError) and scope.expired():
                raise TimeoutError(_timed_out(timeout)) from None
            raise
        return session

    @staticmethod
    async def _quit(session: aiosmtplib.SMTP) -> None:
        import aiosmtplib

        if not session.is_connected:
            return
        try:
            await session.quit()
        except (aiosmtplib.SMTPException, OSError):
            session.close()

    async def probe(self) -> str | None:
        """Why the server cannot take mail now (unreachable, silent, refusing us), or None.

        The probe opens a whole session as ``send`` would (TLS and login included),
        so that a server that answers but cannot be used also means: fall back.
        """
        try:
            session = await self._connect(min(self.settings.timeout, PROBE_TIMEOUT))
        except Exception as exc:  # every way of failing here means the same: fall back
            return self._describe(exc)
        await self._quit(session)
        return None

    # --- sending ---------------------------------------------------------------

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        import aiosmtplib

        if not messages:
            return []
        try:
            session = await self._connect(self.settings.timeout)
        except aiosmtplib.SMTPAuthenticationError as exc:
            # 454 is a temporary authentication failure; 535 & co. are bad credentials.
            transient = 400 <= exc.code < 500
            return [
                Outcome.failed(
                    f"login refused: {self._describe(exc)}",
                    code=exc.code,
                    retryable=transient,
                    fatal=not transient,
                )
                for _ in messages
            ]
        except Exception as exc:  # unreachable, silent, TLS broken: none were sent
            reason = f"could not open an SMTP session: {self._describe(exc)}"
            return [Outcome.failed(reason, code="connect", retryable=True) for _ in messages]
        outcomes: list[Outcome] = []
        try:
            for message in messages:
                if not session.is_connected:
                    outcomes.append(
                        Outcome.failed(
                            "not sent: the SMTP connection was lost earlier in the batch",
                            code="connect",
                            retryable=True,
                        )
                    )
                    continue
                outcomes.append(await self._send_one(session, message))
        finally:
            await self._quit(session)
        return outcomes

    async def _send_one(self, session: aiosmtplib.SMTP, message: Message) -> Outcome:
        import aiosmtplib

        try:
            email, message_id = self.build(message)
        except (ValueError, TypeError, IndexError, MessageError) as exc:
            # The email package refuses a malformed address or header.
            return Outcome.failed(redact(f"cannot build the email: {exc}"), code="invalid")
        session.data_started = False  # type: ignore[attr-defined]
        try:
            # ``timeout`` bounds the whole exchange for this message, not each read.
            async with asyncio.timeout(self.settings.timeout):
                await session.send_message(
                    email, sender=self.settings.from_, recipients=[message.recipient]
                )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return _reply_failure(refused.code, refused.message)
        except aiosmtplib.SMTPSenderRefused as exc:
            outcome = _reply_failure(exc.code, exc.message)
            # A 5xx for our own sender address refuses every message: stop, fix the config.
            outcome.fatal = exc.code >= 500
            return outcome
        except aiosmtplib.SMTPResponseException as exc:
            # DATA refused, 421 closing: a definite answer, nothing queued.
            return _reply_failure(exc.code, exc.message)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            # TimeoutError (the deadline) is an OSError; the session is unusable after it.
            session.close()
            reason = self._describe(exc) if str(exc) else _timed_out(self.settings.timeout)
            if getattr(session, "data_started", False):
                return Outcome(
                    state="unknown",
                    code="no-answer",
                    error=f"the server stopped answering during DATA ({reason}); "
                    "it may or may not have queued the message",
                )
            return Outcome.failed(f"connection lost: {reason}", code="connect", retryable=True)
        except (aiosmtplib.SMTPException, ValueError) as exc:
            # SMTPUTF8 not supported, an address SMTP cannot carry: retrying will not help.
            return Outcome.failed(self._describe(exc), code="invalid")
        return Outcome.sent(message_id)

    def build(self, message: Message) -> tuple[EmailMessage, str]:
        """The email for one recipient, and its Message-ID."""
        settings = self.settings
        return build_email(
            message,
            sender=settings.from_ or "",
            sender_name=settings.from_name,
            reply_to=settings.reply_to,
        )

    # --- check -----------------------------------------------------------------

    async def check(self) -> CheckResult:
        import aiosmtplib

        where = f"{self.settings.host}:{self.settings.port}"
        try:
            session = await self._connect(min(self.settings.timeout, PROBE_TIMEOUT))
        except aiosmtplib.SMTPAuthenticationError as exc:
            return CheckResult("refused", f"{where} refused the login: {self._describe(exc)}")
        except Exception as exc:  # unreachable or not speaking SMTP: not a verdict on the login
            return CheckResult("error", f"cannot use {where}: {self._describe(exc)}")
        await self._quit(session)
        how = f"logged in as {self.settings.username}" if self.settings.username else "no login"
        return CheckResult("accepted", f"{where} answers ({how})")

    def _describe(self, exc: BaseException) -> str:
        """An exception as one line, with no secret."""
        code = getattr(exc, "code", None)
        text = getattr(exc, "message", None) if code is not None else None
        text = f"{code} {text}" if code is not None else str(exc)
        return redact(" ".join(text.split())) or type(exc).__name__


def _reply_failure(code: int, text: str) -> Outcome:
    """An SMTP error reply: 4xx may pass later, 5xx will not."""
    return Outcome.failed(
        redact(f"{code} {' '.join(str(text).split())}"),
        code=code,
        retryable=400 <= code < 500,
    )


def _timed_out(seconds: float) -> str:
    return f"timed out: no complete answer within the {seconds:g}s timeout"


def _local_hostname() -> str:
    return socket.gethostname() or "localhost"
