"""YAML loading that remembers where each value came from, so errors can name the line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

Loc = tuple[int | str, ...]


@dataclass
class YamlSource:
    """Parsed YAML data plus the 1-based line of every mapping key and sequence item."""

    data: Any
    filename: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[int | str]) -> int | None:
        """Line of the deepest known prefix of ``loc`` (pydantic error locations may go deeper than YAML)."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def where(self, loc: Sequence[int | str]) -> str:
        line = self.line_of(loc)
        field_path = format_loc(loc)
        at = f"{self.filename}:{line}" if line else self.filename
        return f"{at}: {field_path}" if field_path else at


def format_loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class YamlSyntaxError(ValueError):
    pass


def load_yaml(text: str, filename: str) -> YamlSource:
    """Parses ``text``; duplicate keys and non-string keys are errors that name the line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlSyntaxError(f"{filename}{line}: not valid YAML: {problem}") from exc
    src = YamlSource(data=None, filename=filename)
    if node is None:
        return src
    src.lines[()] = node.start_mark.line + 1
    _index(node, (), src)
    src.data = yaml.SafeLoader(text).get_single_data()
    return src


def _index(node: yaml.Node, loc: Loc, src: YamlSource) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlSyntaxError(
                    f"{src.filename}:{line}: {format_loc(loc) or 'top level'}: keys must be plain names"
                )
            if key in seen:
                raise YamlSyntaxError(
                    f"{src.filename}:{line}: {format_loc((*loc, key))}: duplicate key (first given on line {seen[key]})"
                )
            seen[key] = line
            src.lines[(*loc, key)] = line
            _index(value_node, (*loc, key), src)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            src.lines[(*loc, i)] = item.start_mark.line + 1
            _index(item, (*loc, i), src)
