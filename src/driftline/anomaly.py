"""Anomaly bands learned from a check's own stored history (SPEC §3, ``anomaly:``).

A check with ``anomaly: {method, sensitivity, history, min_history, seasonality, direction}`` is
judged, besides its static thresholds, against a band around its usual value:

* **Baseline**: the check's own earlier values in ``driftline_results`` for the same monitor,
  check, column and segment — the latest ``history`` windows that ended at or before the current
  window's start, skipping null or non-finite values and windows already judged anomalous. With
  ``seasonality: day_of_week`` only windows starting on the current window's weekday count (with
  ``hour_of_day``, the same hour of the day), so ``history`` counts points *after* that filter:
  ``history: 8`` on daily windows with weekly seasonality means the last eight same weekdays.
* **Band**: ``center ± sensitivity × scale``.

  - ``zscore``: center = mean, scale = *sample* standard deviation (n − 1; with the few points a
    baseline has, the population formula makes the band too narrow).
  - ``mad``: center = median, scale = 1.4826 × MAD (median absolute deviation from the median;
    1.4826 makes it estimate σ for normal data). When more than half the baseline is one value
    the MAD is 0, and every other value would look anomalous; the scale then falls back to
    1.2533 × the mean absolute deviation from the median (the same σ-consistency constant for
    that statistic), as in the usual modified z-score.

* **Verdict**: a value outside the band (only above it for ``direction: up``, only below for
  ``down``) is anomalous, with severity ``fail``. The worst of the static and the anomaly verdict
  wins. With fewer than ``min_history`` baseline points the check is ``insufficient_data`` unless a
  static threshold already breached.

The band goes into the result's ``details`` as ``{"band": {"lower", "upper", "center", "scale",
"points", "method"}}`` (``{"band": {"points", "min_history"}}`` when history is too short) and an
anomalous value is marked ``"anomalous": true``, which keeps it out of later baselines. So a spike
cannot widen the band that should catch the next one; the flip side is that a lasting level
shift stays anomalous (and its alert open) until someone changes the check or its history.

Every band of a monitor window comes from ONE query over ``driftline_results``, computed in the
warehouse: the baseline rows are ranked per series, a first aggregate gives each series' median,
and a join back to the rows gives the absolute deviations whose median is the MAD.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

import ibis
import ibis.expr.types as ir
import pandas as pd

from driftline import dialects, reasons
from driftline.judge import FAIL, INSUFFICIENT, OK, SEVERITY, WARN, Bounds, bound_columns
from driftline.result_schema import RESULTS
from driftline.spec.models import Anomaly, Monitor, check_name
from driftline.windows import Window

ANOMALY_SEVERITY = FAIL
MAD_TO_SIGMA = 1.4826
MEAN_DEVIATION_TO_SIGMA = 1.2533
SERIES = ("check_name", "column_name", "segment_key", "segment_value")


@dataclass(frozen=True)
class Baseline:
    """The statistics of one series' baseline, as the warehouse computed them."""

    points: int
    mean: float | None
    std: float | None
    median: float | None
    mad: float | None
    mean_deviation: float | None


@dataclass(frozen=True)
class Band:
    """``center ± half_width``; ``scale`` is the spread estimate before the sensitivity."""

    center: float
    scale: float
    lower: float
    upper: float
    points: int


def apply_anomaly_bands(store: Any, monitor: Monitor, window: Window, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Judge the results of checks with ``anomaly:`` against their history (in place).

    ``store`` is the :class:`~driftline.store.ResultStore` holding the monitor's earlier results.
    """
    checks = anomaly_checks(monitor)
    judged = [row for row in results if row["check_name"] in checks]
    if not judged:
        return results
    expr = baseline_query(store.table(RESULTS), monitor.name, checks, window, store.con.name)
    baselines = read_baselines(expr.execute())
    for row in judged:
        judge_row(row, checks[row["check_name"]], baselines.get(series_of(row)))
    return results


def anomaly_checks(monitor: Monitor) -> dict[str, Anomaly]:
    """The monitor's checks that have ``anomaly:``, by check name."""
    return {check_name(c): c.anomaly for c in monitor.checks if c.anomaly is not None}


def series_of(row: Mapping[str, Any]) -> tuple:
    """(check, column, segment key, segment value): what a baseline is learned per."""
    return tuple(None if _missing(row.get(key)) else row.get(key) for key in SERIES)


# -- the baseline query -------------------------------------------------------------------------


def baseline_query(results: ir.Table, monitor: str, checks: Mapping[str, Anomaly], window: Window, dialect: str) -> ir.Table:
    """One row per series (check, column, segment) of ``checks``: the baseline's statistics.

    Columns: the SERIES keys, ``points``, ``mean``, ``std``, ``median``, ``mad``,
    ``mean_deviation``.
    """
    earlier = results.filter(
        results.monitor == monitor,
        results.window_end <= window.start,
        results.value.notnull(),
        ~results.value.isnan(),
        ~results.value.isinf(),
        ~_judged_anomalous(results),
        ibis.or_(*(_same_season(results, name, anomaly, window) for name, anomaly in checks.items())),
    )
    newest_first = ibis.row_number().over(group_by=list(SERIES), order_by=ibis.desc(earlier.window_end))
    history = ibis.cases(*((earlier.check_name == name, a.history) for name, a in checks.items()))
    # A series id that is never null: the segment keys of the overall row are null, and null keys
    # would need a null-safe join, which PostgreSQL cannot hash. Peers (nulls included) share a rank.
    series_id = ibis.dense_rank().over(order_by=list(SERIES))
    ranked = earlier.mutate(_recency=newest_first, _history=history, _series=series_id)
    baseline = ranked.filter(ranked._recency < ranked._history)

    (median,) = dialects.quantiles(baseline.value, [0.5], dialect)
    centers = baseline.group_by("_series").aggregate(_median=median)
    joined = baseline.join(centers, "_series")
    joined = joined.mutate(_deviation=(joined.value - joined._median).abs())
    (mad,) = dialects.quantiles(joined._deviation, [0.5], dialect)
    return joined.group_by(["_series", *SERIES]).aggregate(
        points=joined.count(),
        mean=joined.value.mean(),
        std=joined.value.std(how="sample"),
        median=joined._median.max(),  # one value per series
        mad=mad,
        mean_deviation=joined._deviation.mean(),
    ).drop("_series")


def _judged_anomalous(results: ir.Table) -> ir.BooleanValue:
    """Rows whose details say ``"anomalous": true``, read as JSON (never null)."""
    flag = results.details.cast("json")["anomalous"].cast("string")
    return (flag == "true").fill_null(False)


def _same_season(results: ir.Table, name: str, anomaly: Anomaly, window: Window) -> ir.BooleanValue:
    """Rows of check ``name`` that share the current window's season (weekday or hour)."""
    of_check = results.check_name == name
    if anomaly.seasonality == "day_of_week":
        return of_check & (results.window_start.day_of_week.index() == window.start.weekday())
    if anomaly.seasonality == "hour_of_day":
        return of_check & (results.window_start.hour() == window.start.hour)
    return of_check


def read_baselines(frame: pd.DataFrame) -> dict[tuple, Baseline]:
    """The query's rows by series."""
    return {
        series_of(row): Baseline(
            int(row["points"]), _number(row["mean"]), _number(row["std"]), _number(row["median"]),
            _number(row["mad"]), _number(row["mean_deviation"]),
        )
        for row in frame.to_dict("records")
    }


# -- judging ------------------------------------------------------------------------------------


def band_of(baseline: Baseline, anomaly: Anomaly) -> Band:
    """The band a baseline gives under ``anomaly``'s method and sensitivity.

    >>> baseline = Baseline(points=7, mean=10.0, std=2.0, median=9.0, mad=1.0, mean_deviation=1.5)
    >>> band_of(baseline, Anomaly(method="zscore", sensitivity=3))
    Band(center=10.0, scale=2.0, lower=4.0, upper=16.0, points=7)
    >>> band_of(baseline, Anomaly(method="mad", sensitivity=2)).upper  # 9 + 2 * 1.4826
    11.9652
    """
    if anomaly.method == "zscore":
        center, scale = baseline.mean, baseline.std or 0.0
    else:
        center = baseline.median
        scale = MAD_TO_SIGMA * (baseline.mad or 0.0)
        if scale == 0.0:
            scale = MEAN_DEVIATION_TO_SIGMA * (baseline.mean_deviation or 0.0)
    half_width = anomaly.sensitivity * scale
    return Band(center, scale, center - half_width, center + half_width, baseline.points)


def is_outside(value: float, band: Band, direction: str) -> bool:
    """Whether ``value`` leaves the band on a side ``direction`` watches.

    A tolerance of 1e-9 relative to the values compared absorbs the last-bit differences of SQL
    aggregates: a constant history gives a band of zero width that its own value must not leave.
    """
    tolerance = 1e-9 * max(abs(value), abs(band.center))
    above = value > band.upper + tolerance
    below = value < band.lower - tolerance
    return {"up": above, "down": below}.get(direction, above or below)


def judge_row(row: dict[str, Any], anomaly: Anomaly, baseline: Baseline | None) -> None:
    """Add the band to ``row``'s details and its bounds to the row's fail bounds, and combine
    its verdict with the static status."""
    details = json.loads(row["details"]) if row.get("details") else {}
    points = baseline.points if baseline else 0
    if points < anomaly.min_history:
        details["band"] = {"points": points, "min_history": anomaly.min_history}
        verdict = INSUFFICIENT
    else:
        band = band_of(baseline, anomaly)
        details["band"] = {
            "lower": band.lower, "upper": band.upper, "center": band.center, "scale": band.scale,
            "points": band.points, "method": anomaly.method,
        }
        _narrow_fail_bounds(row, watched_bounds(band, anomaly.direction))
        verdict = OK
        if row["value"] is not None and is_outside(row["value"], band, anomaly.direction):
            verdict = ANOMALY_SEVERITY
            details["anomalous"] = True
    row["status"] = combined_status(row["status"], verdict)
    if row["status"] != INSUFFICIENT:
        row["reason"] = None
    elif row.get("reason") is None:  # measured, and only the band could not be learned
        row["reason"] = reasons.NO_HISTORY
        details["explanation"] = f"{points} earlier values, the anomaly band needs min_history {anomaly.min_history}"
    row["details"] = json.dumps(details, default=str)


def watched_bounds(band: Band, direction: str) -> Bounds:
    """The band's edges that ``direction`` watches, as bounds."""
    lower = band.lower if direction in ("both", "down") else None
    upper = band.upper if direction in ("both", "up") else None
    return Bounds(lower, upper)


def _narrow_fail_bounds(row: dict[str, Any], band: Bounds) -> None:
    """A value outside the band is a fail (ANOMALY_SEVERITY) as one outside the static fail
    bounds is: the row's fail bounds become those of breaching either."""
    static = Bounds(row.get("fail_lower"), row.get("fail_upper"))
    row.update(bound_columns(Bounds(row.get("warn_lower"), row.get("warn_upper")), static.narrowed(band)))


def combined_status(static: str, anomaly: str) -> str:
    """The worst of the two verdicts; too little history leaves an unbreached check undecided.

    >>> combined_status("warn", "fail"), combined_status("ok", "insufficient_data"), combined_status("warn", "insufficient_data")
    ('fail', 'insufficient_data', 'warn')
    """
    if SEVERITY.get(anomaly, 0) > SEVERITY.get(static, 0):
        return anomaly
    if anomaly == INSUFFICIENT and static not in (WARN, FAIL):
        return INSUFFICIENT
    return static


def _number(value: Any) -> float | None:
    return None if _missing(value) else float(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT
