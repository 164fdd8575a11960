"""The serve secret: the key that signs what outagecomms later has to trust again.

Unsubscribe links carry a token signed with it, so a token cannot be forged or
altered. It comes from ``OUTAGECOMMS_SERVE__SECRET`` (environment or ``.env``)
when set; otherwise the first command that needs it creates a random one in
``.outagecomms/secret`` (mode 0600) next to the ledger and every later command
reads that file, so links sent yesterday still work after a restart.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from .config import Config
from .errors import ConfigError
from .redact import register_secret

SECRET_FILE = "secret"
#: The folder of the secret when the ledger is not a local SQLite file.
DEFAULT_STATE_DIR = Path(".outagecomms")


def secret_path(config: Config) -> Path:
    """Where the generated secret lives: beside a SQLite ledger, else in ``.outagecomms/``."""
    match = re.fullmatch(r"sqlite:///(.+)", config.ledger)
    folder = (
        config.resolve(Path(match.group(1))).parent if match else config.resolve(DEFAULT_STATE_DIR)
    )
    return folder / SECRET_FILE


def serve_secret(config: Config) -> bytes:
    """The secret as bytes: the environment's, else the file's (created on first need)."""
    if config.serve.secret is not None:
        value = config.serve.secret.get_secret_value()
        if len(value) < 16:
            raise ConfigError(
                "OUTAGECOMMS_SERVE__SECRET is too short: use at least 16 random characters "
                "(or unset it and let outagecomms create one)"
            )
        return value.encode()
    path = secret_path(config)
    try:
        value = _read(path) if path.exists() else _create(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot read or create the serve secret {path} ({exc.strerror or exc}); "
            "make its folder writable or set OUTAGECOMMS_SERVE__SECRET"
        ) from None
    register_secret(value)
    return value.encode()


def _read(path: Path) -> str:
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < 16:
        raise ConfigError(
            f"the serve secret {path} is empty or too short; delete it to have a new one created "
            "(links already sent with the old one stop working)"
        )
    return value


def _create(path: Path) -> str:
    """Write a new secret atomically; when another process wins the race, use its secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(value + "\n")
        try:
            os.link(temporary, path)  # fails if another process created it meanwhile
        except FileExistsError:
            return _read(path)
    finally:
        temporary.unlink(missing_ok=True)
    return value
