"""outagecomms: tell customers about an outage on every channel at once, never twice.

    from outagecomms import Announcer, Incident

    announcer = Announcer.from_config("channels.yaml")
    result = announcer.send(Incident.load("incident.yaml"), channels=["sms", "email"])
    result.ok, result.exit_code, result.counts["sms"]["sent"], result.failures

Everything here is importable from ``outagecomms`` directly; ``__all__`` is
the public API and is pinned by a test.
"""

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
from .ledger import Ledger
from .models import Incident, Message, Outcome, Recipient
from .result import ChannelResult, Failure, Result

__version__ = "0.1.0"

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
