"""YAML that remembers where each value was written, so that a finding can name its line.

PyYAML's composer gives nodes with marks; this module builds the plain Python value from them
(with the safe constructor for scalars, so dates and numbers read as ``yaml.safe_load`` reads
them) and keeps a map from each value's path to its 1-based line. Duplicate mapping keys, which
``safe_load`` silently resolves to the last one, are reported instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from keys.errors import PolicyError

MAX_NODES = 100_000
PathPart = str | int
YamlPath = tuple[PathPart, ...]


@dataclass
class LocatedDocument:
    """A parsed YAML value, the line of every path in it, and any duplicate keys."""

    value: Any
    where: str
    lines: dict[YamlPath, int] = field(default_factory=dict)
    duplicates: list[YamlPath] = field(default_factory=list)
    text: str = ""

    def line(self, path: YamlPath) -> int:
        """The line of ``path`` or of its nearest ancestor that has one (1 for the document)."""
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.lines:
                return self.lines[path[:cut]]
        return 1


class _Builder:
    def __init__(self, document: LocatedDocument) -> None:
        self.document = document
        self.constructor = yaml.SafeLoader("")
        self.nodes = 0

    def build(self, node: yaml.Node, path: YamlPath, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:  # aliases can expand a small file enormously
            raise PolicyError(
                f"{self.document.where}: more than {MAX_NODES} values (aliases expanded)",
                fix="write the policy without YAML anchors and aliases",
            )
        if depth > 64:
            raise PolicyError(
                f"{self.document.where}: line {node.start_mark.line + 1}: nested too deeply",
                fix="a policy is at most a few levels deep; check the indentation",
            )
        self.document.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: YamlPath, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.constructor.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                key = str(key)
            child = (*path, str(key))
            if key in result:
                self.document.duplicates.append(child)
                self.document.lines[child] = key_node.start_mark.line + 1
            else:
                self.document.lines[child] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, child, depth + 1)
        return result


def parse_located(text: str, *, where: str) -> LocatedDocument:
    """Parse YAML text; a syntax error is a :class:`PolicyError` naming the line."""
    document = LocatedDocument(value=None, where=where, text=text)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            document.value = _Builder(document).build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}: " if mark else ""
        raise PolicyError(
            f"{where}: {line}not valid YAML ({exc.problem or 'syntax error'})",
            fix="fix the indentation or quoting at that line; see policies/examples/",
        ) from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise PolicyError(
            f"{where}: not valid YAML ({type(exc).__name__})",
            fix="check the file's syntax; see policies/examples/",
        ) from None
    return document


def load_located(path: Path) -> LocatedDocument:
    """Read and parse a YAML file with line numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(
            f"cannot read policy {path}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}",
            fix="check the path, its permissions and that it is UTF-8 YAML",
        ) from None
    return parse_located(text, where=str(path))
