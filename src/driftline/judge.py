"""Judging values: static thresholds (and, through ``anomaly``, bands learned from history)
turn each check value into a status: ok, warn, fail or insufficient_data.

Every threshold form resolves to :class:`Bounds`, the interval a value may lie in without
breaching; the judge compares the value with them, and the result row stores them
(``warn_lower`` ... ``fail_upper``), so what a chart or a BI query draws is exactly what judged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from driftline import metrics, reasons
from driftline.spec.models import Bound, CheckBase, DriftCheck

if TYPE_CHECKING:
    from driftline.plan.drift import Measurement
    from driftline.windows import Window

OK, WARN, FAIL, INSUFFICIENT, ERROR = "ok", "warn", "fail", "insufficient_data", "error"
SEVERITY = {OK: 0, INSUFFICIENT: 0, WARN: 1, FAIL: 2, ERROR: 3}
# The views' severity_rank: `order by severity_rank desc` lists fails first. Unlike SEVERITY
# (which decides alerts), it tells every status apart, and a fail outranks a run error.
SEVERITY_RANK = {FAIL: 4, ERROR: 3, WARN: 2, INSUFFICIENT: 1, OK: 0}


@dataclass(frozen=True)
class Bounds:
    """A value breaches below ``lower`` or above ``upper`` (None: no limit on that side).

    >>> Bounds(upper=0.25).breached_by(0.3), Bounds(0.7, None).breached_by(0.7)
    (True, False)
    >>> Bounds(upper=10.0).narrowed(Bounds(3.0, 7.0))
    Bounds(lower=3.0, upper=7.0)
    """

    lower: float | None = None
    upper: float | None = None

    def breached_by(self, value: float) -> bool:
        return (self.lower is not None and value < self.lower) or (self.upper is not None and value > self.upper)

    def narrowed(self, other: Bounds) -> Bounds:
        """The bounds of breaching either: the higher lower bound, the lower upper bound."""
        return Bounds(_pick(max, self.lower, other.lower), _pick(min, self.upper, other.upper))


NO_BOUNDS = Bounds()
NO_REFERENCE_EXPLANATION = "no reference value to compare with: the metric is undefined on the reference window"


@dataclass(frozen=True)
class Verdict:
    status: str
    warn_threshold: str | None
    fail_threshold: str | None
    reason: str | None = None  # a reasons code: why a measured value could not be judged
    warn_bounds: Bounds = NO_BOUNDS
    fail_bounds: Bounds = NO_BOUNDS


@dataclass(frozen=True)
class Reference:
    """What a threshold may compare with on the reference: the same metric's value there and its
    standard error (``{drop}``/``{rise}``), and the band learned over the reference's windows
    (``{reference_band}``: their mean and standard deviation)."""

    value: float | None = None
    std_error: float | None = None
    band_mean: float | None = None
    band_std: float | None = None



def z_score(confidence: float) -> float:
    """The one-sided standard normal quantile of ``confidence`` (1.645 at 0.95)."""
    from scipy.stats import norm  # scipy is slow to import; only significance needs it

    return float(norm.ppf(confidence))


def margin(threshold: Bound, std_error: float | None, reference_std_error: float | None = None) -> float:
    """How far beyond a bound a value must lie to be significant at ``threshold.confidence``:
    z × its standard error; for ``{drop}``/``{rise}``, z × the error of the difference from the
    reference value, sqrt(se² + se_ref²). 0 without a confidence, or where the error is unknown.

    >>> round(margin(Bound(above=0.2, confidence=0.95), 0.01), 6)
    0.016449
    >>> round(margin(Bound(drop=0.05, confidence=0.95), 0.03, 0.04), 5)
    0.08224
    """
    if threshold.confidence is None or std_error is None:
        return 0.0
    relative = threshold.drop is not None or threshold.rise is not None
    error = math.hypot(std_error, reference_std_error or 0.0) if relative else std_error
    return z_score(threshold.confidence) * error


def bounds_of(threshold: float | Bound, check_type: str, metric: str, reference: Reference | float | None, std_error: float | None = None) -> Bounds | None:
    """The bounds a threshold resolves to; None for ``{drop}``/``{rise}`` without a reference
    value to count from, and ``{reference_band}`` without a learned band.

    With a ``confidence`` the bounds move out by the significance margin (:func:`margin`): an
    ``{above: x}`` breaches above x + z·se; a ``{drop: x}`` only when the drop exceeds both x and
    z·sqrt(se² + se_ref²), i.e. below reference − max(x, z·sqrt(se² + se_ref²)).

    >>> bounds_of(0.1, "drift", "psi", None), bounds_of(0.7, "performance", "roc_auc", None)
    (Bounds(lower=None, upper=0.1), Bounds(lower=0.7, upper=None))
    >>> bounds_of(Bound(drop=0.25), "performance", "roc_auc", 0.75)
    Bounds(lower=0.5, upper=None)
    >>> bounds_of(Bound(reference_band=2), "metric", "ctr", Reference(band_mean=0.5, band_std=0.125))
    Bounds(lower=0.25, upper=0.75)
    """
    if not isinstance(reference, Reference):
        reference = Reference(value=reference)
    if not isinstance(threshold, Bound):
        threshold = Bound(**{metrics.breach_side(check_type, metric): float(threshold)})
    if threshold.reference_band is not None:
        if reference.band_mean is None or reference.band_std is None:
            return None
        width = threshold.reference_band * reference.band_std
        return Bounds(reference.band_mean - width, reference.band_mean + width)
    widen = margin(threshold, std_error, reference.std_error)
    if threshold.above is not None:
        return Bounds(upper=threshold.above + widen)
    if threshold.below is not None:
        return Bounds(lower=threshold.below - widen)
    if threshold.outside is not None:
        return Bounds(threshold.outside[0] - widen, threshold.outside[1] + widen)
    if reference.value is None:
        return None
    if threshold.drop is not None:
        return Bounds(lower=reference.value - max(threshold.drop, widen))
    return Bounds(upper=reference.value + max(threshold.rise, widen))


def judge_static(
    check: CheckBase,
    metric: str,
    value: float | None,
    p_value: float | None = None,
    reference: Reference | float | None = None,
    std_error: float | None = None,
) -> Verdict:
    """Status from the check's static warn/fail thresholds (and its p_value gate for drift)."""
    resolved = {
        level: bounds_of(threshold, check.type, metric, reference, std_error) if threshold is not None else NO_BOUNDS
        for level, threshold in ((FAIL, check.fail), (WARN, check.warn))
    }
    written = Verdict(OK, describe(check.warn), describe(check.fail), None,
                      resolved[WARN] or NO_BOUNDS, resolved[FAIL] or NO_BOUNDS)  # fmt: skip
    if value is None:
        return _with(written, status=INSUFFICIENT)
    gate = isinstance(check, DriftCheck) and check.p_value is not None
    if gate and (p_value is None or p_value > check.p_value):
        return written  # not significant: no breach, whatever the value
    for status, bounds in resolved.items():
        if bounds is None:
            return _with(written, status=INSUFFICIENT, reason=reasons.NO_REFERENCE)
        if bounds.breached_by(value):
            return _with(written, status=status)
    return written


def verdict_of(m: Measurement) -> Verdict:
    """The static verdict on a measurement, with what its details hold of the reference."""
    band = m.details.get("reference_band") or {}
    reference = Reference(m.details.get("reference_value"), m.details.get("reference_std_error"), band.get("mean"), band.get("std"))
    return judge_static(m.check, m.metric, m.value, m.p_value, reference, m.std_error)


def result_row(m: Measurement, run_id: str, monitor: str, window: Window, now: datetime) -> dict[str, Any]:
    """The ``driftline_results`` row of a judged measurement (before anomaly bands, if any).

    The measurement's details carry the reason code of a missing value (``reasons``): it moves
    into the ``reason`` column; the rest, the human ``explanation`` included, stays in ``details``.
    """
    details = dict(m.details)
    reason = details.pop("reason", None)
    reference_value = details.get("reference_value")
    verdict = verdict_of(m)
    if verdict.reason is not None:  # measured, but the thresholds cannot tell
        reason, details["explanation"] = verdict.reason, NO_REFERENCE_EXPLANATION
    if verdict.status in (WARN, FAIL):  # what explains the breach (see Measurement.explain)
        details.update(m.explain)
    return {
        "run_id": run_id, "monitor": monitor, "check_name": m.check_name,
        "check_type": m.check_type, "metric": m.metric, "column_name": m.column_name,
        "segment_key": m.segment_key, "segment_value": m.segment_value,
        "window_start": window.start, "window_end": window.end,
        "value": m.value, "p_value": m.p_value, "status": verdict.status,
        "warn_threshold": verdict.warn_threshold, "fail_threshold": verdict.fail_threshold,
        "n_current": m.n_current, "n_reference": m.n_reference,
        "details": json.dumps(details, default=str) if details else None,
        "created_at": now,
        **bound_columns(verdict.warn_bounds, verdict.fail_bounds),
        "reference_value": reference_value, "reason": reason,
        "std_error": m.std_error,
    }  # fmt: skip


def bound_columns(warn: Bounds, fail: Bounds) -> dict[str, float | None]:
    """``warn_lower``, ``warn_upper``, ``fail_lower``, ``fail_upper`` of a result row."""
    return {"warn_lower": warn.lower, "warn_upper": warn.upper, "fail_lower": fail.lower, "fail_upper": fail.upper}


def describe(threshold: float | Bound | None) -> str | None:
    """The threshold as written in YAML, for the result tables and messages."""
    if threshold is None:
        return None
    if not isinstance(threshold, Bound):
        return f"{threshold:g}"
    value = getattr(threshold, threshold.form)
    shown = f"[{value[0]:g}, {value[1]:g}]" if isinstance(value, tuple) else f"{value:g}"
    significance = f", confidence: {threshold.confidence:g}" if threshold.confidence is not None else ""
    return f"{{{threshold.form}: {shown}{significance}}}"


def worst(statuses: Any) -> str:
    """The most severe of several statuses (ok when there are none)."""
    return max(statuses, key=lambda s: SEVERITY.get(s, 0), default=OK)


def _with(verdict: Verdict, **changes: Any) -> Verdict:
    return Verdict(**{**verdict.__dict__, **changes})


def _pick(choose, a: float | None, b: float | None) -> float | None:
    """``choose`` of the two, ignoring a missing one."""
    present = [x for x in (a, b) if x is not None]
    return choose(present) if present else None
