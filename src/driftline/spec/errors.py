"""pydantic validation errors → one ``path:line:column: message`` line per problem."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from driftline.errors import ConfigError
from driftline.spec.models import CHECK_TYPES, ProblemAt
from driftline.spec.yaml_source import Positions


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def translate(error: ValidationError, model: type[BaseModel], positions: Positions) -> list[ConfigError]:
    """One ConfigError per distinct problem, located in the YAML file."""
    problems: dict[tuple, ConfigError] = {}
    located = []
    for item in error.errors(include_url=False):
        yaml_path = _yaml_path(item["loc"], positions)
        if item["type"] == "union_tag_invalid":  # `- perfomance: ...`: point at the misspelled key
            yaml_path += (item["ctx"]["tag"],)
        problem = item.get("ctx", {}).get("error")
        if isinstance(problem, ProblemAt) and tuple(yaml_path) + problem.at in positions.marks:
            yaml_path += problem.at  # at the item the problem is about, not the list holding it
        located.append((yaml_path, item))
    for yaml_path, item in located:
        if _shadowed(yaml_path, item, located):
            continue
        key = (yaml_path, item["type"] if item["type"] == "extra_forbidden" else "value")
        if key in problems:
            continue  # one message per key: union members repeat the same complaint
        problems[key] = ConfigError(_message(item, yaml_path, model), positions.locate(yaml_path))
    return list(problems.values())


_NOT_A_NUMBER = {"float_type", "float_parsing"}


def _shadowed(path: tuple, item: dict[str, Any], located: list[tuple[tuple, dict[str, Any]]]) -> bool:
    """A number-or-mapping value (a threshold) written as a mapping: the number member's
    complaint says nothing when the mapping member explains what is wrong with the mapping."""
    if item["type"] not in _NOT_A_NUMBER or not isinstance(item.get("input"), dict):
        return False
    return any(
        other_path[: len(path)] == path and other["type"] not in _NOT_A_NUMBER for other_path, other in located
    )


def _yaml_path(loc: tuple, positions: Positions) -> tuple:
    """pydantic's loc without the union-member names it adds (e.g. ``'float'``)."""
    path: list[Any] = []
    for part in loc:
        candidate = tuple(path) + (part,)
        if candidate in positions.marks or isinstance(part, int):
            path.append(part)
        elif not _looks_like_union_member(part):
            path.append(part)
            break
    return tuple(path)


def _looks_like_union_member(part: Any) -> bool:
    text = str(part)
    return text in {"float", "int", "str", "bool", "list[str]", "tuple[float, float]"} or (
        "[" in text or text[:1].isupper() or text.startswith("literal")
    )


def _dotted(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "document"


def _message(item: dict[str, Any], path: tuple, model: type[BaseModel]) -> str:
    kind = item["type"]
    where = _dotted(path)
    if kind == "extra_forbidden":
        parent, key = path[:-1], path[-1]
        allowed = sorted(_allowed_keys(model, parent))
        hint = did_you_mean(key, allowed)
        return f"unknown key {key!r} in {_dotted(parent)}{hint}; expected one of: {', '.join(allowed)}"
    if kind == "union_tag_invalid":
        tag = item["ctx"]["tag"]
        return f"unknown check type {tag!r}{did_you_mean(tag, CHECK_TYPES)}; expected one of: {', '.join(CHECK_TYPES)}"
    if kind == "union_tag_not_found" or (kind in {"model_attributes_type", "dict_type"} and len(path) == 2 and path[0] == "checks"):
        return f"{where}: each check is a mapping with one key, its type ({', '.join(CHECK_TYPES)}), holding the check's settings"
    if kind == "missing":
        return f"missing required key {where!r}"
    if kind == "literal_error":
        expected = item.get("ctx", {}).get("expected", "")
        return f"{where}: {item['input']!r} is not allowed{did_you_mean(item['input'], _literal_words(expected))}; expected {expected}"
    if kind in {"float_parsing", "float_type", "model_type", "model_attributes_type", "dict_type"} and path and path[-1] in {"warn", "fail"}:
        return f"{where}: expected a number or one of {{above: x}}, {{below: x}}, {{outside: [lo, hi]}}, {{drop: x}}, {{rise: x}}"
    message = item["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def _literal_words(expected: str) -> list[str]:
    return [w.strip(" '\"") for w in expected.replace(" or ", ",").split(",") if w.strip()]


def _allowed_keys(model: type[BaseModel], path: tuple) -> set[str]:
    """The keys the model accepts at ``path`` (for suggestions on a misspelled key)."""
    current: Any = model
    for part in path:
        current = _step(current, part)
        if current is None:
            return set()
    models = [m for m in _members(current) if isinstance(m, type) and issubclass(m, BaseModel)]
    return {name for m in models for name in m.model_fields if name != "type"}


def _step(annotation: Any, part: Any) -> Any:
    for member in _members(annotation):
        if isinstance(part, int):
            args = typing.get_args(member)
            if typing.get_origin(member) is list and args:
                return args[0]
        elif isinstance(member, type) and issubclass(member, BaseModel):
            if part in member.model_fields:
                return member.model_fields[part].annotation
            tagged = _tagged_member(member, part)
            if tagged is not None:
                return tagged
        elif part in _check_types(member):
            return _check_types(member)[part]
    return None


def _tagged_member(member: Any, part: Any) -> Any:
    field = getattr(member, "model_fields", {}).get("type")
    if field is not None and typing.get_args(field.annotation) == (part,):
        return member
    return None


def _check_types(annotation: Any) -> dict[str, Any]:
    found = {}
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel) and "type" in member.model_fields:
            for tag in typing.get_args(member.model_fields["type"].annotation):
                found[tag] = member
    return found


def _members(annotation: Any) -> list[Any]:
    """Flatten Annotated/Optional/Union into their member types."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]
