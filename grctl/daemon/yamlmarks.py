"""YAML loading that remembers where every value came from and rejects duplicate keys.

Plain PyYAML keeps the last of two equal keys silently and forgets positions once the data is built.
Here the document is composed into nodes first; a walk over the nodes records the line and column of
every key and value (by path), refuses duplicate keys, and only then builds the Python values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Location:
    """A 1-based position in a file."""

    line: int
    column: int

    @classmethod
    def of(cls, mark: yaml.Mark | None) -> Location:
        if mark is None:
            return cls(1, 1)
        return cls(mark.line + 1, mark.column + 1)


@dataclass
class Marks:
    """Where each path's value (and, for mapping entries, its key) starts."""

    values: dict[Path, Location] = field(default_factory=dict)
    keys: dict[Path, Location] = field(default_factory=dict)

    def value(self, path: Path) -> Location:
        """The value's position, or the nearest enclosing one that is known."""
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return Location(1, 1)

    def key(self, path: Path) -> Location:
        return self.keys.get(path) or self.value(path)


class YamlError(Exception):
    """A YAML problem at a location (syntax error, duplicate key, unsupported construct)."""

    def __init__(self, location: Location, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.location = location
        self.message = message
        self.path = path


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mapping keys are always the key's text (``on:`` stays "on", not True)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[str, Any]:  # type: ignore[override]
        return {str(k.value): self.construct_object(v, deep=deep) for k, v in node.value}


def load_with_marks(text: str) -> tuple[Any, Marks]:
    """Parse one YAML document; returns its value (None for an empty document) and its marks."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            marks = Marks()
            if node is None:
                return None, marks
            _walk(node, (), marks)
            value = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise YamlError(Location.of(exc.problem_mark or exc.context_mark), _syntax_message(exc)) from exc
    except yaml.reader.ReaderError as exc:  # bad characters or encodings, before any parsing
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise YamlError(Location(line, column), f"YAML error: {exc.reason} (character {char!r})") from exc
    except yaml.YAMLError as exc:
        raise YamlError(Location(1, 1), "YAML error: " + " ".join(str(exc).split())) from exc
    return value, marks


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    if (
        exc.context
        and exc.context_mark
        and exc.problem_mark
        and exc.context_mark.line != exc.problem_mark.line
    ):
        start = Location.of(exc.context_mark)
        parts[0] = f"{exc.context} (begun at line {start.line}, column {start.column})"
    text = "; ".join(parts) if parts else str(exc).splitlines()[0]
    if "found another document" in text or "expected a single document" in text:
        return "YAML error: the file holds more than one document (remove the '---' separator)"
    if "found character '\\t'" in text:
        return (
            "YAML syntax error: a tab character where indentation or a value was expected "
            "(indent with spaces)"
        )
    return f"YAML syntax error: {text}"


def _walk(node: Node, path: Path, marks: Marks) -> None:
    marks.values[path] = Location.of(node.start_mark)
    if isinstance(node, MappingNode):
        seen: dict[str, Location] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlError(Location.of(key_node.start_mark), "merge keys ('<<') are not supported", path)
            if not isinstance(key_node, ScalarNode):
                raise YamlError(Location.of(key_node.start_mark), "mapping keys must be plain words", path)
            key = str(key_node.value)
            here = Location.of(key_node.start_mark)
            if key in seen:
                first = seen[key]
                where = ".".join(str(p) for p in path)
                prefix = f"{where}: " if where else ""
                raise YamlError(
                    here,
                    f"{prefix}duplicate key '{key}' "
                    f"(first defined at line {first.line}, column {first.column})",
                    (*path, key),
                )
            seen[key] = here
            marks.keys[(*path, key)] = here
            _walk(value_node, (*path, key), marks)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), marks)
