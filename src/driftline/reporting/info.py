"""What the report knows about a monitor beyond its results: it comes from the monitor's YAML."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MonitorInfo:
    """A monitor's name and the metadata shown next to its results."""

    name: str
    description: str | None
    owner: str | None
    runbook: str | None
    tags: tuple[str, ...] = ()
