"""Alert episodes and their notifications."""

from __future__ import annotations

from typing import Any


def process_alerts(workspace: Any, monitor: Any, outcomes: list[Any], notify: bool, now: Any) -> list[Any]:
    """Open, update and resolve alert episodes for a monitor's evaluated windows; deliver."""
    return []
