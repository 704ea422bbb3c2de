"""Drift values per check × column × segment, from histogram counts (binned methods) or from
the exact-distance query (``ks``, ``wasserstein``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftline import reasons, stats
from driftline.plan.profile import ColumnBins, SegmentKey
from driftline.reasons import Reason
from driftline.spec.models import CheckBase, DriftCheck, check_name

EXACT_METHODS = ("ks", "wasserstein")


@dataclass
class Measurement:
    """One check's value for one column and segment of a window, before it is judged."""

    check: CheckBase
    check_type: str
    metric: str
    column_name: str | None
    segment_key: str | None
    segment_value: str | None
    value: float | None
    p_value: float | None = None
    n_current: int | None = None
    n_reference: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    std_error: float | None = None  # the value's sampling error, where a closed form gives it
    weight: float | None = None  # the value's weight when segments add up (driftline.contributions)
    # what explains a breach, put in details only when the value breaches (contributions of the
    # segments to an overall change, the bins a drifted column moved most)
    explain: dict[str, Any] = field(default_factory=dict)

    @property
    def check_name(self) -> str:
        return check_name(self.check)


@dataclass(frozen=True)
class Histogram:
    """Reference and current counts of one column in one segment."""

    bins: ColumnBins
    reference: list[int]
    current: list[int]


def binned_drift(check: DriftCheck, column: str, segment: SegmentKey, histogram: Histogram, enough_rows: bool) -> Measurement:
    """A binned method (psi, kl, js, hellinger, tvd, linf, chi2) on one histogram."""
    reference = np.asarray(histogram.reference, dtype="float64")
    current = np.asarray(histogram.current, dtype="float64")
    n_ref, n_cur = int(reference.sum()), int(current.sum())
    measured = Measurement(check, "drift", check.method, column, *segment, None, None, n_cur, n_ref)
    missing = _missing(enough_rows, n_ref, n_cur)
    if missing is not None:
        measured.details.update(missing.details)
        return measured
    if check.method == "chi2":
        measured.value, measured.p_value = stats.chi2(reference, current, check.epsilon)
    elif check.method in ("psi", "kl"):
        measured.value = stats.BINNED_METHODS[check.method](reference, current, check.epsilon)
    else:
        measured.value = stats.BINNED_METHODS[check.method](reference, current)
    measured.explain["moved_bins"] = moved_bins(histogram)
    return measured


def moved_bins(histogram: Histogram, top: int = 3) -> list[dict[str, Any]]:
    """The bins whose share moved most between the reference and the window, largest first."""
    p = np.asarray(histogram.reference, dtype="float64")
    q = np.asarray(histogram.current, dtype="float64")
    p, q = p / max(p.sum(), 1.0), q / max(q.sum(), 1.0)
    labels = histogram.bins.labels()
    order = sorted(range(len(p)), key=lambda i: (-abs(q[i] - p[i]), i))[:top]
    return [{"bin": labels[i], "reference_share": float(p[i]), "current_share": float(q[i]), "change": float(q[i] - p[i])} for i in order]


def exact_drift(check: DriftCheck, column: str, segment: SegmentKey, row: pd.Series | None, enough_rows: bool) -> Measurement:
    """``ks`` (D and asymptotic p-value) or ``wasserstein`` (normalised by σ_ref unless not)."""
    measured = Measurement(check, "drift", check.method, column, *segment, None)
    if row is None:
        measured.details.update(_missing(enough_rows, 0, 0).details)
        return measured
    n_ref, n_cur = _count(row.n_reference), _count(row.n_current)
    measured.n_reference, measured.n_current = n_ref, n_cur
    missing = _missing(enough_rows, n_ref, n_cur)
    if missing is not None:
        measured.details.update(missing.details)
        return measured
    if check.method == "ks":
        measured.value = _number(row.ks_statistic)
        if measured.value is not None:
            measured.p_value = stats.ks_pvalue(measured.value, n_ref, n_cur)
    else:
        raw = _number(row.wasserstein)
        sigma = _number(row.reference_std) or 0.0
        measured.details.update({"wasserstein": raw, "reference_std": sigma})
        measured.value = raw if raw is None or not check.normalize else raw / max(sigma, 1e-3)
    if measured.value is None:  # values were counted, so the warehouse found none it could use
        measured.details.update(Reason(reasons.NO_VALUES, f"{check.method} is undefined on these values").details)
    return measured


def _missing(enough_rows: bool, n_reference: int, n_current: int) -> Reason | None:
    """Why a drift value cannot be computed, if it cannot: no values in the window, fewer rows
    than ``min_rows`` (the caller's ``enough_rows``), or no values on the reference."""
    if not n_current:
        return Reason(reasons.EMPTY_WINDOW, "no values in the window")
    if not enough_rows:
        return Reason(reasons.MIN_ROWS, "not enough rows (fewer than min_rows)")
    if not n_reference:
        return Reason(reasons.NO_REFERENCE, "no values on the reference window")
    return None


def _count(value: Any) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
