"""Errors that driftline reports to its users.

Every error a user can cause carries a location, so the CLI prints one line per problem in the
form ``path:line:column: message`` (exit code 3) instead of a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where in a file a problem is; ``line`` and ``column`` are 1-based, 0 when unknown."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.path
        return f"{self.path}:{self.line}:{self.column or 1}"


class DriftlineError(Exception):
    """Base class: driftline could not do what was asked (CLI exit code 3)."""

    def __init__(self, message: str, location: Location | None = None):
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ConfigError(DriftlineError):
    """A project, monitor or macro file is invalid."""


class ConfigErrors(ConfigError):
    """Several configuration problems found at once, reported one per line."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors), None)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def problems_of(error: ConfigError) -> list[ConfigError]:
    """The single problems inside ``error`` (itself, unless it already holds several)."""
    return list(error.errors) if isinstance(error, ConfigErrors) else [error]


class WarehouseError(DriftlineError):
    """The warehouse is unreachable, or a table, column or query failed there."""
