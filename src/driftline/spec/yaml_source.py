"""YAML reading that remembers where every value came from, with ``${VAR}`` interpolation.

``load_yaml`` returns plain Python data plus a ``Positions`` map from a key path such as
``("checks", 0, "drift", "method")`` to the line and column of that key in the file, so any
error found later (by pydantic or against the warehouse) can point at the right place.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from driftline.errors import ConfigError, Location

Path_ = tuple[Any, ...]
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Positions:
    """Where each key path of one YAML document sits in its file."""

    path: str
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def locate(self, key_path: Path_) -> Location:
        """The location of ``key_path``, or of its nearest ancestor that has one."""
        for end in range(len(key_path), -1, -1):
            mark = self.marks.get(tuple(key_path[:end]))
            if mark:
                return Location(self.path, *mark)
        return Location(self.path, 1, 1)

    def child(self, prefix: Path_) -> Positions:
        """Positions of a sub-document (e.g. one monitor of a file holding a list)."""
        size = len(prefix)
        marks = {p[size:]: m for p, m in self.marks.items() if p[:size] == prefix}
        return Positions(self.path, marks)


def load_yaml(file: Path, env: Mapping[str, str] | None = None) -> tuple[Any, Positions]:
    """Parse one YAML file into data and positions, interpolating ``${VAR}`` in strings."""
    env = os.environ if env is None else env
    text = file.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = Location(str(file), mark.line + 1, mark.column + 1) if mark else Location(str(file))
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", where) from None
    positions = Positions(str(file))
    if node is None:
        return None, positions
    return _to_python(node, (), positions, env), positions


def _to_python(node: yaml.Node, path: Path_, positions: Positions, env: Mapping[str, str]) -> Any:
    positions.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            location = Location(positions.path, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                raise ConfigError(f"duplicate key {key!r}", location)
            positions.marks[path + (key,)] = (location.line, location.column)
            result[key] = _to_python(value_node, path + (key,), positions, env)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(child, path + (i,), positions, env) for i, child in enumerate(node.value)]
    value = _scalar(node)
    if isinstance(value, str):
        return _interpolate(value, positions.locate(path), env)
    return value


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    return loader.construct_object(node, deep=True)


def _interpolate(text: str, location: Location, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(
                f"environment variable {name} is not set (used as ${{{name}}}); set it or remove the reference",
                location,
            )
        return env[name]

    return _ENV_VAR.sub(replace, text)
