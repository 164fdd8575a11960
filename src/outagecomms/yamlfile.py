"""YAML loading that remembers where each key stood, so errors can name a line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

Loc = tuple[str | int, ...]


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
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found; check the path") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(
            f"{path}, line {line}: not UTF-8 text (byte {raw[exc.start]:#04x}); "
            "save the file as UTF-8"
        ) from None
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark and mark and context_mark.line != mark.line:
            problem = f"{context} started on line {context_mark.line + 1}: {problem}"
        if problem == "mapping values are not allowed here":
            problem += "; a value that contains ': ' must be in quotes"
        raise error(f"{path}{line}: not valid YAML ({problem}); fix the syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be a YAML mapping of keys to values")
    doc = YamlDocument(path=path, data=data)
    if node is not None:
        duplicate = _record_lines(node, (), doc.lines)
        if duplicate is not None:
            key, first, again = duplicate
            raise error(
                f"{path}, line {again}: '{key}' is already set on line {first}; "
                "keep only one of them"
            )
    return doc


def _record_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> tuple[str, int, int] | None:
    """Record the line of every key; return ``(key, first line, line)`` of a key set twice."""
    duplicate = None
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if (*loc, key) in lines and duplicate is None:
                duplicate = (".".join(map(str, (*loc, key))), lines[(*loc, key)], line)
            lines[(*loc, key)] = line
            found = _record_lines(value_node, (*loc, key), lines)
            duplicate = duplicate or found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            found = _record_lines(item, (*loc, index), lines)
            duplicate = duplicate or found
    return duplicate
