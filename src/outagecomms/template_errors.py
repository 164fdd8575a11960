"""Template mistakes in the words of the person who wrote the template.

Jinja reports a misspelt field as ``'outagecomms.models.Incident object' has no
attribute 'sumary'``: a Python class name the writer never typed. This turns it into
``incident has no field 'sumary'; did you mean 'summary'?``, naming the variable as the
template spells it and suggesting the closest field that exists.
"""

from __future__ import annotations

import dataclasses
import difflib
import re

from .config import Organization
from .models import Incident, Recipient

#: The object Jinja names -> the template variable, and the fields it has.
_VARIABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Incident": ("incident", (*Incident.model_fields, "key")),
    "Organization": ("organization", tuple(Organization.model_fields)),
    "Recipient": ("recipient", (*(f.name for f in dataclasses.fields(Recipient)), "first_name")),
    "mappingproxy": ("vars", ()),
    "SimpleNamespace": (
        "recipient",
        (*(f.name for f in dataclasses.fields(Recipient)), "first_name"),
    ),
}
_NAMES = ("incident", "organization", "recipient", "channel", "locale", "vars")
_NO_ATTRIBUTE = re.compile(r"'(?:[\w.]+\.)?(?P<kind>\w+) object' has no attribute '(?P<field>\w+)'")
_UNDEFINED = re.compile(r"'(?P<name>\w+)' is undefined")


def explain_undefined(message: str) -> str:
    """What is missing, and the nearest name that exists, without Python class names."""
    found = _NO_ATTRIBUTE.search(message)
    if found:
        variable, fields = _VARIABLES.get(found["kind"], ("a value", ()))
        field = found["field"]
        if variable == "vars":
            return f"vars has no '{field}'; add custom values under 'vars:' in the incident"
        hint = difflib.get_close_matches(field, fields, n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
        known = f" (its fields: {', '.join(fields)})" if fields and not hint else ""
        return f"{variable} has no field '{field}'{suggestion}{known}"
    found = _UNDEFINED.search(message)
    if found:
        hint = difflib.get_close_matches(found["name"], _NAMES, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        return (
            f"'{found['name']}' is undefined{suggestion}; use only incident, organization, "
            "recipient, channel, locale and vars (add custom values under 'vars:' in the incident)"
        )
    return message + "; use only incident, organization, recipient, channel, locale and vars"
