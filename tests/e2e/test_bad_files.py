"""Files built to hurt, through the real CLI: every one is refused at preflight with exit 2
and one clear line, quickly, with nothing sent and no traceback.

YAML (incident and channels.yaml): alias bombs, oversized files, deep nesting, huge
integers. The audience CSV: an unclosed quote, a field spanning lines, a huge field, a
file that is not UTF-8. channels.yaml: a channel that could not send what preflight passed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from . import test_bad_input as bad
from .conftest import Run

scaffold = bad.scaffold
shop = bad.shop
SANDBOX = bad.SANDBOX

BASE = "id: mail-down\ntitle: Mail is down\n"


def alias_bomb(levels: int = 9) -> str:
    """A few hundred bytes whose aliases expand to 9**9 values."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for n in range(1, levels):
        previous = ", ".join([f"*a{n - 1}"] * 9)
        lines.append(f"a{n}: &a{n} [{previous}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            BASE + "vars:\n" + "".join("  " + line + "\n" for line in alias_bomb().splitlines()),
            ["incident.yaml, line", "aliases (*name) expand to more than 100,000 values"],
            id="alias-bomb",
        ),
        pytest.param(
            BASE + "summary: '" + "x" * (1024 * 1024) + "'\n",
            ["incident.yaml: the incident file is larger than 1 MB"],
            id="over-1-mb",
        ),
        pytest.param(
            BASE + "vars: {deep: " + "[" * 3000 + "]" * 3000 + "}\n",
            ["incident.yaml", "nested"],
            id="deep-nesting",
        ),
        pytest.param(
            BASE + "vars: {deep: " + "[" * 70 + "]" * 70 + "}\n",
            ["incident.yaml, line 3: nested more than 64 levels deep"],
            id="nesting-over-64",
        ),
        pytest.param(
            BASE + "vars:\n  coupon: " + "9" * 5000 + "\n",
            ["incident.yaml, line 4: a number of 5000 digits is too large"],
            id="huge-integer",
        ),
    ],
)
def test_a_hostile_incident_file_is_refused_quickly(
    run: Run, shop: Path, text: str, expected: list[str]
) -> None:
    (shop / "incident.yaml").write_text(text, encoding="utf-8")
    started = time.monotonic()
    bad.refused(bad.cli(run, "send", "incident.yaml", *SANDBOX), *expected)
    assert time.monotonic() - started < 20
    bad.nothing_sent(shop)


def test_an_alias_bomb_in_channels_yaml_is_refused(run: Run, shop: Path) -> None:
    config = shop / "channels.yaml"
    config.write_text(
        config.read_text()
        + "x-anchors:\n"
        + "".join("  " + line + "\n" for line in alias_bomb().splitlines())
    )
    started = time.monotonic()
    bad.refused(
        bad.cli(run, "send", "examples/incident-investigating.yaml", *SANDBOX),
        "channels.yaml, line",
        "aliases (*name) expand",
    )
    assert time.monotonic() - started < 20
    bad.nothing_sent(shop)
