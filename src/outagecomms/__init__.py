"""outagecomms: tell customers about an outage on every channel at once, never twice.

    from outagecomms import Announcer, Incident

    announcer = Announcer.from_config("channels.yaml")
    result = announcer.send(Incident.load("incident.yaml"), channels=["sms", "email"])
    result.ok, result.exit_code, result.counts["sms"]["sent"], result.failures

Everything here is importable from ``outagecomms`` directly; ``__all__`` is
the public API and is pinned by a test. The names are imported on first use
(PEP 562), so that ``outagecomms --help`` does not pay for pydantic, Jinja,
httpx and SQLite it never needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .announcer import Announcer, ChannelPlan, Plan, RunControl
    from .channels.base import CheckResult
    from .config import Config, load_config
    from .errors import (
        AudienceError,
        ConfigError,
        DeliveryError,
        IncidentError,
        InputError,
        LimitError,
        OutageCommsError,
        TemplateError,
    )
    from .models import Incident, Message, Outcome, Recipient
    from .result import ChannelResult, Failure, Result
    from .store import Ledger

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "Announcer": ".announcer",
    "ChannelPlan": ".announcer",
    "Plan": ".announcer",
    "RunControl": ".announcer",
    "CheckResult": ".channels.base",
    "Config": ".config",
    "load_config": ".config",
    "AudienceError": ".errors",
    "ConfigError": ".errors",
    "DeliveryError": ".errors",
    "IncidentError": ".errors",
    "InputError": ".errors",
    "LimitError": ".errors",
    "OutageCommsError": ".errors",
    "TemplateError": ".errors",
    "Ledger": ".store",
    "Incident": ".models",
    "Message": ".models",
    "Outcome": ".models",
    "Recipient": ".models",
    "ChannelResult": ".result",
    "Failure": ".result",
    "Result": ".result",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "Announcer",
    "AudienceError",
    "ChannelPlan",
    "ChannelResult",
    "CheckResult",
    "Config",
    "ConfigError",
    "DeliveryError",
    "Failure",
    "Incident",
    "IncidentError",
    "InputError",
    "Ledger",
    "LimitError",
    "Message",
    "OutageCommsError",
    "Outcome",
    "Plan",
    "Recipient",
    "Result",
    "RunControl",
    "TemplateError",
    "__version__",
    "load_config",
]
