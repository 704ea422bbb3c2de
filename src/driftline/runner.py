"""The run stage: execute a monitor's plan for one window, measure, judge and store.

Per window: a few queries build the reference profile (once per reference window, then cached;
on DuckDB they also give the reference's bin counts), ONE query counts every histogram, each
opt-in exact method adds one query, and ONE query measures every model and data check (see
``plan/model_checks.py``), reusing what the histogram counts hold.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

import driftline
from driftline.anomaly import apply_anomaly_bands
from driftline.errors import DriftlineError, WarehouseError
from driftline.judge import INSUFFICIENT, judge_static, worst
from driftline.plan.drift import Histogram, Measurement, binned_drift, exact_drift
from driftline.plan.histograms import ROWS, CountLayout, bin_counts, rollup
from driftline.plan.model_checks import complete_reference, counted_figures, measure_model_checks
from driftline.plan.monitor import MonitorPlan
from driftline.plan.profile import NULL_SEGMENT, ReferenceProfile, SegmentKey, now_utc, profile_key
from driftline.plan.source import CURRENT, REFERENCE
from driftline.result_schema import RESULTS
from driftline.store import ResultStore, WindowRecord
from driftline.windows import Window, reference_window


@dataclass
class WindowOutcome:
    monitor: str
    window: Window
    run_id: str
    status: str  # success | error
    error: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    queries: int = 0

    @property
    def worst(self) -> str:
        return "error" if self.status == "error" else worst(r["status"] for r in self.results)


class WindowEvaluator:
    """Evaluates windows of one monitor against one warehouse and result store."""

    def __init__(self, plan: MonitorPlan, store: ResultStore, source_fingerprint: str = ""):
        self.plan = plan
        self.store = store
        self.source_fingerprint = source_fingerprint
        self.queries = 0
        self.now = now_utc()
        if plan.inputs is not None:
            plan.inputs.history = store.table(RESULTS)  # schema_change reads the previous run there

    @property
    def monitor(self):
        return self.plan.monitor

    def evaluate(self, window: Window, now: datetime | None = None) -> WindowOutcome:
        """Evaluate ``window``; ``now`` (default: the clock) decides label maturity and freshness."""
        run = _run_row(self.monitor.name, window)
        self.queries = 0
        self.now = now or now_utc()
        self.store.mark_running(run)
        try:
            record, outcome = self._measure_and_judge(window, run)
            self.store.replace_window(record)
        except DriftlineError as error:
            return self._failed(run, window, str(error))
        except Exception as error:  # the warehouse's own error, kept on one line
            return self._failed(run, window, f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}")
        return outcome

    def _failed(self, run: dict[str, Any], window: Window, message: str) -> WindowOutcome:
        run.update(status="error", error=message, finished_at=now_utc())
        self.store.record_error(run)
        return WindowOutcome(self.monitor.name, window, run["run_id"], "error", message, queries=self.queries)

    def _measure_and_judge(self, window: Window, run: dict[str, Any]) -> tuple[WindowRecord, WindowOutcome]:
        reference = reference_window(self.monitor.reference, window)
        profile, cached, reference_counts = self._profile(reference)
        windows = {CURRENT: window} if cached or reference_counts is not None else {CURRENT: window, REFERENCE: reference}
        counts_expr, layout = self.plan.counts_query(windows, profile.bins)
        totals = rollup(self._execute(counts_expr), layout)
        if reference_counts is not None:  # in the portable layout: no histogram maps to expand
            totals |= rollup(reference_counts, CountLayout(layout.bins, layout.segments))
        model_reference_added = complete_reference(self.plan, profile, self._execute, self.now)
        if not cached or model_reference_added:
            self._complete_profile(profile, totals, layout)
        current_rows = {k[1:]: int(v[ROWS]) for k, v in totals.items() if k[0] == CURRENT}
        measurements, histogram_rows = self._binned(profile, totals, layout, current_rows)
        measurements += self._exact(window, reference, current_rows)
        drift_figures = counted_figures(totals, layout)
        measurements += measure_model_checks(self.plan, window, reference, profile, self._execute, self.now, drift_figures)
        results = [self._judged(m, run, window) for m in measurements]
        results = apply_anomaly_bands(self.store, self.monitor, window, results)
        for row in histogram_rows:
            row.update(run_id=run["run_id"], monitor=self.monitor.name)
        run.update(
            status="success",
            finished_at=now_utc(),
            rows_current=current_rows.get((None, None), 0),
            rows_reference=profile.rows.get((None, None), 0),
        )
        outcome = WindowOutcome(self.monitor.name, window, run["run_id"], "success", results=results, queries=self.queries)
        return WindowRecord(run, results, histogram_rows), outcome

    # -- the reference profile ------------------------------------------------------------------

    def _profile(self, reference: Window) -> tuple[ReferenceProfile, bool, pd.DataFrame | None]:
        """The reference profile; whether it was cached; the reference's rows of the counting
        query when building the profile gave them (see ``MonitorPlan.reference_profile``)."""
        key = profile_key(self.monitor.name, reference, self.plan.binned_columns, self.plan.segments, self.source_fingerprint)
        stored = self.store.load_profile(key)
        if stored is not None:
            return ReferenceProfile.from_json(key, reference, stored), True, None
        bins, reference_counts = self.plan.reference_profile(reference, self._execute)
        return ReferenceProfile(key, reference, bins), False, reference_counts

    def _complete_profile(self, profile: ReferenceProfile, totals: dict, layout: CountLayout) -> None:
        for (side, segment_key, segment_value), sums in totals.items():
            if side != REFERENCE:
                continue
            profile.rows[(segment_key, segment_value)] = int(sums[ROWS])
            for c, column_bins in enumerate(layout.bins):
                key = (column_bins.column, column_bins.binning, segment_key, segment_value)
                profile.counts[key] = bin_counts(sums, layout, c)
        if not profile.rows.get((None, None)):
            return  # an empty reference (its data not loaded yet?) is measured again, not cached
        self.store.save_profile(profile.key, self.monitor.name, profile.window, profile.to_json(), now_utc())

    # -- measurements ---------------------------------------------------------------------------

    def _segments(self, profile: ReferenceProfile, current_rows: dict) -> list[SegmentKey]:
        keys = set(profile.rows) | set(current_rows) | {(None, None)}
        return sorted(keys, key=lambda k: (k[0] is not None, k[0] or "", k[1] or ""))

    def _binned(self, profile: ReferenceProfile, totals: dict, layout: CountLayout, current_rows: dict):
        measurements: list[Measurement] = []
        histogram_rows: list[dict[str, Any]] = []
        index = {(b.column, b.binning): c for c, b in enumerate(layout.bins)}
        segments = self._segments(profile, current_rows)
        histograms: dict[tuple, Histogram] = {}
        for c, column_bins in enumerate(layout.bins):
            for segment in segments:
                reference = profile.counts.get((column_bins.column, column_bins.binning, *segment), [0] * column_bins.size)
                sums = totals.get((CURRENT, *segment))
                current = bin_counts(sums, layout, c) if sums is not None else [0] * column_bins.size
                histograms[(c, segment)] = Histogram(column_bins, reference, current)
                histogram_rows += _histogram_rows(column_bins.column, segment, histograms[(c, segment)])
        for check in self.plan.drift_checks(binned=True):
            for column in self.plan.columns_by_check[_name(check)]:
                c = index[column.key]
                for segment in segments:
                    enough = current_rows.get(segment, 0) >= self.monitor.min_rows
                    measurements.append(binned_drift(check, column.name, segment, histograms[(c, segment)], enough))
        return measurements, histogram_rows

    def _exact(self, window: Window, reference: Window, current_rows: dict) -> list[Measurement]:
        measurements = []
        for (name, column), expr in self.plan.exact_queries(window, reference).items():
            check = next(c for c in self.plan.drift_checks(binned=False) if _name(c) == name)
            frame = self._execute(expr)
            by_segment = {_segment(r.segment_key, r.segment_value): r for r in frame.itertuples(index=False)}
            for segment in sorted(set(by_segment) | {(None, None)}, key=lambda k: (k[0] is not None, k[0] or "", k[1] or "")):
                enough = current_rows.get(segment, 0) >= self.monitor.min_rows
                row = by_segment.get(segment)
                measurements.append(exact_drift(check, column, segment, pd.Series(row._asdict()) if row is not None else None, enough))
        return measurements

    def _judged(self, m: Measurement, run: dict[str, Any], window: Window) -> dict[str, Any]:
        reference_value = m.details.get("reference_value")
        verdict = judge_static(m.check, m.metric, m.value, m.p_value, reference_value)
        status = INSUFFICIENT if m.value is None else verdict.status
        details = {"reason": verdict.reason, **m.details} if verdict.reason else m.details
        return {
            "run_id": run["run_id"], "monitor": self.monitor.name, "check_name": m.check_name,
            "check_type": m.check_type, "metric": m.metric, "column_name": m.column_name,
            "segment_key": m.segment_key, "segment_value": m.segment_value,
            "window_start": window.start, "window_end": window.end,
            "value": m.value, "p_value": m.p_value, "status": status,
            "warn_threshold": verdict.warn_threshold, "fail_threshold": verdict.fail_threshold,
            "n_current": m.n_current, "n_reference": m.n_reference,
            "details": json.dumps(details, default=str) if details else None,
            "created_at": now_utc(),
        }

    def _execute(self, expr) -> pd.DataFrame:
        self.queries += 1
        try:
            return expr.execute()
        except DriftlineError:
            raise
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise WarehouseError(f"{self.monitor.name}: query failed: {first}") from error


def _name(check) -> str:
    from driftline.spec.models import check_name

    return check_name(check)


def _segment(key: Any, value: Any) -> SegmentKey:
    """A segment named as the histogram counts name it: a null segment value is NULL_SEGMENT."""
    if pd.isna(key):
        return (None, None)
    return (str(key), NULL_SEGMENT if pd.isna(value) else str(value))


def _histogram_rows(column: str, segment: SegmentKey, histogram: Histogram) -> list[dict[str, Any]]:
    bounds, labels = histogram.bins.bounds(), histogram.bins.labels()
    return [
        {
            "column_name": column, "segment_key": segment[0], "segment_value": segment[1],
            "bin_index": i, "bin_label": labels[i], "lower": bounds[i][0], "upper": bounds[i][1],
            "reference_count": histogram.reference[i], "current_count": histogram.current[i],
            "binning": histogram.bins.binning,
        }
        for i in range(histogram.bins.size)
    ]


def _run_row(monitor: str, window: Window) -> dict[str, Any]:
    return {
        "run_id": uuid.uuid4().hex, "monitor": monitor, "window_start": window.start,
        "window_end": window.end, "started_at": now_utc(), "finished_at": None,
        "status": "running", "error": None, "rows_current": None, "rows_reference": None,
        "driftline_version": driftline.__version__,
    }
