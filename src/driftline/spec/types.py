"""Small value types shared by the spec models: durations, timestamps, thresholds."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_PATTERN = r"^\d+(s|m|h|d|w)$"
MAX_DURATION = timedelta(days=3650)  # ten years; every: 9999999d made a run fail with OverflowError


def parse_duration(value: Any) -> timedelta:
    """``15m``, ``1h``, ``7d``, ``2w`` (or a timedelta) → timedelta."""
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value)) if isinstance(value, (str, int)) else None
    if not match:
        raise ValueError(f"expected a duration like 15m, 1h, 1d or 7d, got {value!r}")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():  # longer ones overflow the window arithmetic
        raise ValueError(f"{value!r} is longer than {MAX_DURATION.days}d, the longest duration driftline accepts")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def to_utc_naive(value: Any) -> datetime:
    """A date, ISO-8601 string or datetime → naive UTC datetime (UTC when no offset is given)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"expected an ISO-8601 date or timestamp, got {value!r}") from None
    else:
        raise ValueError(f"expected an ISO-8601 date or timestamp, got {value!r}")
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC moment Python has
            raise ValueError(f"{value!r} is out of the range of dates") from None
    return moment


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]

# What to_utc_naive reads, as an editor sees it: a date, or a date and time (T or a space between,
# seconds optional) with an optional UTC offset. A pattern, not `format: date-time`, which would
# refuse the plain dates monitors are mostly written with.
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$"

Timestamp = Annotated[
    datetime,
    BeforeValidator(to_utc_naive),
    WithJsonSchema({"type": "string", "pattern": TIMESTAMP_PATTERN, "examples": ["2026-10-01", "2026-10-01T06:00:00Z"]}),
]
