"""One breach episode: a row of ``driftline_alerts`` (SPEC §5) and the state of its notifications.

Its own module because both the judging of episodes (``alerts``) and their delivery
(``outbox``) read and change it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Mapping

import pandas as pd


@dataclass
class Episode:
    """One row of ``driftline_alerts``: a breach episode and the state of its notifications."""

    alert_id: str
    fingerprint: str
    monitor: str
    check_name: str
    column_name: str | None
    segment_key: str | None
    segment_value: str | None
    severity: str
    state: str
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    last_run_id: str | None
    value: float | None
    message: str | None
    notify_status: str
    notify_attempts: int
    channel: str | None
    slack_ts: str | None
    notified_at: datetime | None
    payload: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Episode:
        """An episode from a row read back from the table (pandas types, NaN/NaT for null)."""
        values = {name: plain_value(row.get(name)) for name in cls.__dataclass_fields__}
        values["notify_attempts"] = int(values["notify_attempts"] or 0)
        return cls(**values)

    def row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def horizon(self) -> datetime:
        """The latest window time this episode accounts for."""
        return max(t for t in (self.last_seen_at, self.resolved_at) if t is not None)


def plain_value(value: Any) -> Any:
    """A value read from a frame as a plain Python value: None for NaN/NaT/NA, datetimes."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
