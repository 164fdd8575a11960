"""YAML loading that remembers where each key stood, so errors can name a line.

It also refuses what would make a small file expensive (incident and config
files come from people, and sometimes from elsewhere): files over 1 MB,
aliases that expand to more than ``MAX_NODES`` values (a "billion laughs"
document is a few hundred bytes), nesting deeper than ``MAX_DEPTH``, and
integers longer than ``MAX_DIGITS`` digits. Each is one clear error, never a
traceback or a hang.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

Loc = tuple[str | int, ...]

#: Incident and config files are a few kilobytes; anything near this is a mistake.
MAX_BYTES = 1024 * 1024
#: Values a document may hold once its aliases are expanded.
MAX_NODES = 100_000
#: Levels of nesting; channels.yaml needs four.
MAX_DEPTH = 64
#: Digits of an integer (an id, a port or a count needs a handful).
MAX_DIGITS = 100
_INT_TAG = "tag:yaml.org,2002:int"


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves timestamps as text.

    PyYAML turns ``2026-13-45`` into a crash deep inside its constructor;
    as text, pydantic parses it and the error names the key and line.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass
class YamlDocument:
    """A parsed YAML mapping plus the 1-based line of every key in it."""

    path: Path
    data: dict[str, Any]
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of the deepest key of ``loc`` that exists in the file."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None

    def where(self, loc: Sequence[str | int]) -> str:
        """``file, line N`` for a key path, for error messages."""
        line = self.line_of(loc)
        return f"{self.path}, line {line}" if line else str(self.path)

    def describe(self, error: ValidationError, prefix: Loc = ()) -> str:
        """The first problem of a pydantic error as one line naming the key and line."""
        first = error.errors()[0]
        loc = prefix + tuple(first["loc"])
        key = ".".join(str(part) for part in loc) or "(top level)"
        if first["type"] == "extra_forbidden":
            problem = "is not a known key (check its spelling)"
        elif first["type"] == "missing":
            problem = "is required but missing"
        else:
            problem = first["msg"][0].lower() + first["msg"][1:]
            if "input" in first and not isinstance(first["input"], dict | list):
                problem += f" (got {first['input']!r})"
        return f"{self.where(loc)}: '{key}' {problem}"


def load_yaml(path: Path, error: type[Exception], what: str) -> YamlDocument:
    """Read a YAML mapping from ``path``; problems raise ``error`` with a one-line message."""
    raw = _read(path, error, what)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(
            f"{path}, line {line}: not UTF-8 text (byte {raw[exc.start]:#04x}); "
            "save the file as UTF-8"
        ) from None
    loader = _Loader(text)
    lines: dict[Loc, int] = {}
    try:
        node = loader.get_single_node()
        if node is not None:
            problem = _Walk(lines).record(node, ())
            if problem is not None:
                raise error(f"{path}, {problem}")
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise error(f"{path}{_yaml_problem(exc)}; fix the syntax") from None
    except RecursionError:
        raise error(
            f"{path}: nested too deeply (more than {MAX_DEPTH} levels); "
            "check the indentation and brackets"
        ) from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be a YAML mapping of keys to values")
    return YamlDocument(path=path, data=data, lines=lines)


def _read(path: Path, error: type[Exception], what: str) -> bytes:
    """The file's bytes, refused past ``MAX_BYTES`` without reading it all."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found; check the path") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise error(
            f"{path}: the {what} is larger than {MAX_BYTES // (1024 * 1024)} MB; "
            "check that this is the right file"
        )
    return raw


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``, line N: not valid YAML (what)`` for a parser error."""
    mark = getattr(exc, "problem_mark", None)
    line = f", line {mark.line + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark and mark and context_mark.line != mark.line:
        problem = f"{context} started on line {context_mark.line + 1}: {problem}"
    if problem == "mapping values are not allowed here":
        problem += "; a value that contains ': ' must be in quotes"
    return f"{line}: not valid YAML ({problem})"


class _Walk:
    """One pass over the composed document, before any Python object is built: records
    the line of every key and finds the first thing that makes the file unusable."""

    def __init__(self, lines: dict[Loc, int]) -> None:
        self.lines = lines
        self.nodes = 0

    def record(self, node: yaml.Node, loc: Loc) -> str | None:
        """``line N: <problem>`` for the first problem, or None."""
        self.nodes += 1
        line = node.start_mark.line + 1
        if self.nodes > MAX_NODES:
            return (
                f"line {line}: aliases (*name) expand to more than {MAX_NODES:,} values; "
                "write the values out instead of nesting aliases"
            )
        if len(loc) > MAX_DEPTH:
            return f"line {line}: nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, yaml.ScalarNode):
            return _too_large(node)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and _too_large(key_node):
                    return _too_large(key_node)
                # A list or mapping as a key is refused when the data is built.
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                key_line = key_node.start_mark.line + 1
                if (*loc, key) in self.lines:
                    first = self.lines[(*loc, key)]
                    name = ".".join(map(str, (*loc, key)))
                    return (
                        f"line {key_line}: '{name}' is already set on line {first}; "
                        "keep only one of them"
                    )
                self.lines[(*loc, key)] = key_line
                problem = self.record(value_node, (*loc, key))
                if problem is not None:
                    return problem
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.lines[(*loc, index)] = item.start_mark.line + 1
                problem = self.record(item, (*loc, index))
                if problem is not None:
                    return problem
        return None


def _too_large(node: yaml.ScalarNode) -> str | None:
    if node.tag == _INT_TAG and len(node.value) > MAX_DIGITS:
        line = node.start_mark.line + 1
        return f"line {line}: a number of {len(node.value)} digits is too large"
    return None
