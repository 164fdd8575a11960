"""The sandbox outbox: every message becomes a file instead of a provider call.

``--sandbox`` swaps every channel's driver for this one, so a new user sees
exactly what would go out: ``.outagecomms/outbox/<channel>/`` holds one file
per message (``.eml`` for email, the number or address and the text for
the others), and the banner's ``status.json`` and ``banner.html``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..config import OutboxSettings
from ..models import Message, Outcome
from .banner import publish_banner
from .base import Channel
from .mime import build_email


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@.+_-]+", "_", text).strip("_") or "message"


class Outbox(Channel):
    settings: OutboxSettings

    folder: Path

    async def open(self) -> None:
        self.folder = self.config.resolve(self.settings.path) / self.name
        self.folder.mkdir(parents=True, exist_ok=True)

    async def send(self, messages: Sequence[Message]) -> list[Outcome]:
        return [self._write(message) for message in messages]

    def _write(self, message: Message) -> Outcome:
        if message.kind == "banner":
            stamp = publish_banner(self.folder, message, self.config)
            return Outcome.sent(f"outbox:{self.folder / 'status.json'}@{stamp}")
        stem = _safe(message.announcement.replace("/", "-"))
        if message.kind == "email":
            content, suffix, provider_id = self._email(message)
        else:
            lines = [
                f"To: {message.recipient}" if message.recipient != "-" else f"Channel: {self.name}"
            ]
            if message.reply_to:
                lines.append(f"In-Reply-To: {message.reply_to}")
            content, suffix, provider_id = (
                "\n".join(lines) + "\n\n" + message.text + "\n",
                ".txt",
                None,
            )
        name = stem if message.recipient == "-" else f"{stem}--{_safe(message.recipient)}"
        path = self._create(name, suffix, content)
        return Outcome.sent(provider_id or f"outbox:{path.name}")

    def _email(self, message: Message) -> tuple[str, str, str]:
        real = self.config.channels.get(self.name)
        mail, message_id = build_email(
            message,
            sender=getattr(real, "from_", None) or "outagecomms@localhost",
            sender_name=getattr(real, "from_name", None) or self.config.organization.name,
            reply_to=getattr(real, "reply_to", None),
            id_domain="outbox.outagecomms",
        )
        return mail.as_string(), ".eml", message_id

    def _create(self, name: str, suffix: str, content: str) -> Path:
        """A new file; never overwrite, so a message written twice would show as two files."""
        for n in range(1, 1000):
            path = self.folder / (f"{name}{suffix}" if n == 1 else f"{name}-{n}{suffix}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            return path
        raise OSError(f"too many outbox files named {name}{suffix} in {self.folder}")
