"""YAML reading that remembers where every value came from, with ``${VAR}`` interpolation.

``load_yaml`` returns plain Python data plus a ``Positions`` map from a key path such as
``("checks", 0, "drift", "method")`` to the line and column of that key in the file, so any
error found later (by pydantic or against the warehouse) can point at the right place.

Every YAML file driftline reads (the project file, monitors, macros) goes through
:func:`compose_file`, which bounds what a file can cost before anything is built from it: at
most ``MAX_FILE_BYTES`` of UTF-8, nesting at most ``MAX_DEPTH`` levels deep, and no anchors or
aliases (a few hundred bytes of nested aliases expand to billions of values). Each refusal is
one ``path:line:column: message``.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from driftline.errors import ConfigError, Location

Path_ = tuple[Any, ...]
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

MAX_FILE_BYTES = 1_000_000
"""A monitor file of a hundred checks is about 10 kB; a megabyte is a mistake or an attack, and
already takes PyYAML a few seconds (50 MB took minutes)."""
MAX_DEPTH = 100
"""Monitor files nest about 5 levels deep; PyYAML's composer (and ``_to_python``) recurse once
per level, so a 5,000-deep file would otherwise end in a RecursionError."""

_UTF16_OR_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


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


def load_yaml(file: Path, env: Mapping[str, str] | None = None, leave_out: Iterable[str] = ()) -> tuple[Any, Positions]:
    """Parse one YAML file into data and positions, interpolating ``${VAR}`` in strings.

    The top-level keys in ``leave_out`` are dropped unread, so their ``${VAR}`` need not be set
    (``driftline report`` has no use for the Slack secrets under ``notify``).
    """
    env = os.environ if env is None else env
    node = compose_file(file)
    positions = Positions(str(file))
    if node is None:
        return None, positions
    if isinstance(node, yaml.MappingNode):
        node.value = [(key, value) for key, value in node.value if not _named(key, leave_out)]
    try:
        return _to_python(node, (), positions, env), positions
    except yaml.YAMLError as error:  # a scalar with a tag SafeLoader refuses (``!!python/name:``)
        raise _located(error, file) from None


def _named(key: yaml.Node, names: Iterable[str]) -> bool:
    return isinstance(key, yaml.ScalarNode) and key.value in names


def _to_python(node: yaml.Node, path: Path_, positions: Positions, env: Mapping[str, str]) -> Any:
    positions.marks.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            location = Location(positions.path, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError("a key must be a word, not a list or a mapping (`? [a, b]: ...`)", location)
            key = key_node.value
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


def compose_file(file: Path) -> yaml.Node | None:
    """Read one YAML file into its node tree (which keeps the line of every value), within the
    limits of the module docstring; ``None`` for an empty file."""
    text = _decode(_read(file), file)
    try:
        loader = _BoundedLoader(text, file)  # checks every character at once
    except yaml.reader.ReaderError as error:  # a control character: located by its offset
        raise ConfigError(
            f"character #x{error.character:04x} is not allowed in YAML; is this a text file?",
            _location_of_offset(text, error.position, file),
        ) from None
    try:
        return loader.get_single_node()
    except yaml.YAMLError as error:
        raise _located(error, file) from None
    finally:
        loader.dispose()


def _read(file: Path) -> bytes:
    """The file's bytes, refusing more than MAX_FILE_BYTES without reading further."""
    try:
        with open(file, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
            size = max(os.fstat(stream.fileno()).st_size, len(data))
    except OSError as error:
        raise ConfigError(f"cannot read the file: {error.strerror or error}", Location(str(file), 1, 1)) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"the file is {size:,} bytes, over the limit of {MAX_FILE_BYTES:,} (1 MB) for a driftline YAML file; "
            "split it into several files",
            Location(str(file), 1, 1),
        )
    return data


def _decode(data: bytes, file: Path) -> str:
    """UTF-8 text, or one located line saying why the bytes are not that."""
    if data.startswith(_UTF16_OR_32_BOMS):
        encoding = "UTF-32" if data.startswith(_UTF16_OR_32_BOMS[:2]) else "UTF-16"
        raise ConfigError(f"the file is {encoding} text; driftline reads UTF-8: save it as UTF-8", Location(str(file), 1, 1))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"the file is not UTF-8 text (byte 0x{data[error.start]:02x} here); save it as UTF-8",
            _location_of_byte(data, error.start, file),
        ) from None
    nul = data.find(b"\0")
    if nul >= 0:  # valid UTF-8, but no text file holds one: binary, or UTF-16 without its BOM
        raise ConfigError(
            "the file holds a NUL byte: it is binary, or UTF-16 text; driftline reads UTF-8 text",
            _location_of_byte(data, nul, file),
        )
    return text


def _location_of_byte(data: bytes, offset: int, file: Path) -> Location:
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return Location(str(file), data.count(b"\n", 0, offset) + 1, column)


def _location_of_offset(text: str, offset: int, file: Path) -> Location:
    return Location(str(file), text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1)


def _located(error: yaml.YAMLError, file: Path) -> ConfigError:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = Location(str(file), mark.line + 1, mark.column + 1) if mark else Location(str(file), 1, 1)
    problem = getattr(error, "problem", None) or getattr(error, "context", None) or str(error).splitlines()[0]
    return ConfigError(f"invalid YAML: {problem}", where)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer looks at each node's first event before building the node, and
    refuses aliases and anchors, and collections nested deeper than MAX_DEPTH. Neither can then
    cost more than reading the (bounded) file: the parser itself keeps its state in a list, not
    on the call stack."""

    def __init__(self, text: str, file: Path):
        super().__init__(text)
        self._file = file
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            self._refuse("YAML anchors and aliases (&name, *name) are not supported; write the value out in full", event)
        if not isinstance(event, yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                self._refuse(f"nested more than {MAX_DEPTH} levels deep; a driftline file needs a handful", event)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _refuse(self, message: str, event: yaml.Event) -> None:
        mark = event.start_mark
        raise ConfigError(message, Location(str(self._file), mark.line + 1, mark.column + 1))
