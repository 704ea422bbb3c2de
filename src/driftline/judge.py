"""Judging values: static thresholds (and, through ``anomaly``, bands learned from history)
turn each check value into a status: ok, warn, fail or insufficient_data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftline import metrics
from driftline.spec.models import Bound, CheckBase, DriftCheck

OK, WARN, FAIL, INSUFFICIENT, ERROR = "ok", "warn", "fail", "insufficient_data", "error"
SEVERITY = {OK: 0, INSUFFICIENT: 0, WARN: 1, FAIL: 2, ERROR: 3}

@dataclass(frozen=True)
class Verdict:
    status: str
    warn_threshold: str | None
    fail_threshold: str | None
    reason: str | None = None  # why a measured value could not be judged

NO_REFERENCE = "no reference value to compare with: the metric is undefined on the reference window"


def breaches(value: float, threshold: float | Bound, check_type: str, metric: str, reference_value: float | None) -> bool | None:
    """Whether ``value`` breaches ``threshold``; None when it cannot be told (no reference)."""
    if not isinstance(threshold, Bound):
        threshold = Bound(**{metrics.breach_side(check_type, metric): float(threshold)})
    if threshold.above is not None:
        return value > threshold.above
    if threshold.below is not None:
        return value < threshold.below
    if threshold.outside is not None:
        low, high = threshold.outside
        return value < low or value > high
    if reference_value is None:
        return None
    if threshold.drop is not None:
        return reference_value - value > threshold.drop
    return value - reference_value > threshold.rise


def judge_static(
    check: CheckBase,
    metric: str,
    value: float | None,
    p_value: float | None = None,
    reference_value: float | None = None,
) -> Verdict:
    """Status from the check's static warn/fail thresholds (and its p_value gate for drift)."""
    written = Verdict(OK, describe(check.warn), describe(check.fail))
    if value is None:
        return Verdict(INSUFFICIENT, written.warn_threshold, written.fail_threshold)
    gate = isinstance(check, DriftCheck) and check.p_value is not None
    significant = not gate or (p_value is not None and p_value <= check.p_value)
    for status, threshold in ((FAIL, check.fail), (WARN, check.warn)):
        if threshold is None or not significant:
            continue
        verdict = breaches(value, threshold, check.type, metric, reference_value)
        if verdict is None:
            return Verdict(INSUFFICIENT, written.warn_threshold, written.fail_threshold, NO_REFERENCE)
        if verdict:
            return Verdict(status, written.warn_threshold, written.fail_threshold)
    return written


def describe(threshold: float | Bound | None) -> str | None:
    """The threshold as written in YAML, for the result tables and messages."""
    if threshold is None:
        return None
    if not isinstance(threshold, Bound):
        return f"{threshold:g}"
    (key, value), = ((k, v) for k, v in threshold.__dict__.items() if v is not None)
    shown = f"[{value[0]:g}, {value[1]:g}]" if isinstance(value, tuple) else f"{value:g}"
    return f"{{{key}: {shown}}}"


def worst(statuses: Any) -> str:
    """The most severe of several statuses (ok when there are none)."""
    return max(statuses, key=lambda s: SEVERITY.get(s, 0), default=OK)
