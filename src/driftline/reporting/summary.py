"""The triage summary of a monitor from its result rows: what breaches in each series' latest
judged window, since when, and which windows still wait for their labels.

A window whose labels have not matured has no value yet (``insufficient_data`` with the reason
``labels_not_mature``); it says nothing about the model. So every series is judged by its latest
window that is *not* waiting for labels, and the windows after it are counted as waiting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from driftline.reasons import LABELS_NOT_MATURE
from driftline.triage import Finding

SERIES = ["check_name", "column_name", "segment_key", "segment_value"]
JUDGED = ("ok", "warn", "fail")
BREACHING = ("warn", "fail")


@dataclass(frozen=True)
class Waiting:
    """Windows of a check newer than its latest matured one, whose labels are still to come."""

    windows: int
    matured: pd.Timestamp | None  # the start of the latest window with mature labels
    until: pd.Timestamp | None  # when the newest of them matures (from the results' details)

    def text(self) -> str:
        """``7 newer windows waiting for labels until 2026-11-06``."""
        plural = "s" if self.windows > 1 else ""
        newer = "newer " if self.matured is not None else ""
        until = f" until {self.until:%Y-%m-%d}" if self.until is not None else ""
        return f"{self.windows} {newer}window{plural} waiting for labels{until}"


def latest_known(history: pd.DataFrame) -> pd.DataFrame:
    """Per series, its latest row that does not wait for labels (the latest row when all do)."""
    ordered = history.sort_values(["window_start", "created_at"], kind="stable")
    waiting = ordered.reason == LABELS_NOT_MATURE
    known = ordered[~waiting].drop_duplicates(SERIES, keep="last")
    only_waiting = ordered[waiting].drop_duplicates(SERIES, keep="last")
    only_waiting = only_waiting.merge(known[SERIES], on=SERIES, how="left", indicator=True)
    only_waiting = only_waiting[only_waiting._merge == "left_only"].drop(columns="_merge")
    return pd.concat([known, only_waiting]) if len(only_waiting) else known


def findings(history: pd.DataFrame) -> list[Finding]:
    """A finding per series whose latest judged value is warn or fail."""
    latest = latest_known(history)
    breaching = latest[latest.status.isin(BREACHING)]
    if breaching.empty:
        return []
    starts = streak_starts(history)
    return [_finding(row, starts.get(_series_key(row))) for row in breaching.itertuples(index=False)]


def streak_starts(history: pd.DataFrame) -> dict[tuple, pd.Timestamp]:
    """Per series, the first window of its latest unbroken run of warn/fail among judged windows:
    "since when" it breaches (windows waiting for labels neither break nor extend a run)."""
    judged = history[history.status.isin(JUDGED)].sort_values(["window_start", "created_at"], kind="stable")
    judged = judged.drop_duplicates([*SERIES, "window_start"], keep="last")
    starts = {}
    for key, rows in judged.groupby(SERIES, dropna=False, sort=False):
        breaching = rows.status.isin(BREACHING).to_numpy()
        if not breaching[-1]:
            continue
        healthy = np.flatnonzero(~breaching)
        first = healthy[-1] + 1 if len(healthy) else 0
        starts[_clean(key)] = rows.window_start.iloc[first]
    return starts


def drift_columns(history: pd.DataFrame) -> int:
    """How many columns the drift checks measured in their latest windows (0 without any)."""
    drift = history[(history.check_type == "drift") & history.column_name.notna()]
    if drift.empty:
        return 0
    latest = drift[drift.window_start == drift.groupby("check_name").window_start.transform("max")]
    return int(latest.column_name.nunique())


def waiting(rows: pd.DataFrame, pending: pd.DataFrame) -> Waiting | None:
    """The windows of one check's overall rows waiting for labels after its latest matured one;
    ``pending`` holds those windows' ``mature_at`` (see :mod:`.data`)."""
    overall = rows[rows.segment_key.isna()]
    waits = overall.reason == LABELS_NOT_MATURE
    if not waits.any():
        return None
    matured = overall.window_start[~waits].max() if (~waits).any() else None
    newer = overall[waits] if matured is None else overall[waits & (overall.window_start > matured)]
    if newer.empty:
        return None
    until = pending.mature_at[pending.window_start.isin(newer.window_start)].max() if len(pending) else None
    return Waiting(int(newer.window_start.nunique()), matured, None if pd.isna(until) else until)


def mature_at(details: pd.Series) -> pd.Series:
    """The ``mature_at`` a waiting result's details JSON names, as naive UTC timestamps."""
    def read(text) -> str | None:
        try:
            value = json.loads(text).get("mature_at") if isinstance(text, str) else None
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None

    parsed = pd.to_datetime(details.map(read), utc=True, errors="coerce")
    return parsed.dt.tz_localize(None)


def _finding(row, since: pd.Timestamp | None) -> Finding:
    return Finding(
        check_name=str(row.check_name),
        check_type=str(row.check_type),
        metric=str(row.metric),
        column=_text(row.column_name),
        segment_key=_text(row.segment_key),
        segment_value=_text(row.segment_value),
        severity=str(row.status),
        value=_float(row.value),
        reference=_float(row.reference_value),
        bound=crossed_bound(row),
        threshold=_text(row.fail_threshold if row.status == "fail" else row.warn_threshold),
        since=None if since is None else since.to_pydatetime(),
    )


def crossed_bound(row) -> float | None:
    """The line the value is past: the bound of its severity's threshold, else an anomaly band
    edge (None when neither is crossed, e.g. a decision by p-value)."""
    value = _float(row.value)
    if value is None:
        return None
    level = "fail" if row.status == "fail" else "warn"
    pairs = ((getattr(row, f"{level}_lower"), getattr(row, f"{level}_upper")), (row.band_lower, row.band_upper))
    for lower, upper in pairs:
        lower, upper = _float(lower), _float(upper)
        if lower is not None and value < lower:
            return lower
        if upper is not None and value > upper:
            return upper
    return None


def _series_key(row) -> tuple:
    return _clean(tuple(getattr(row, name) for name in SERIES))


def _clean(key: tuple) -> tuple:
    return tuple(None if v is None or (not isinstance(v, str) and pd.isna(v)) else v for v in key)


def _text(value) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None
