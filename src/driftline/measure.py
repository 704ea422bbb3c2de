"""The measure stage: run one window's queries, in the order ``driftline compile`` prints them,
and assemble every measurement, drift and model and data checks alike, from their small results.

The plan (``plan/``) builds every query and runs none; this module runs them and nothing else
builds SQL. Per window:

1. the reference profile, when it is not cached: the reference's size where the edges are
   sampled (DuckDB), the numeric edges (one query) and the top categories (one query);
2. the histogram counts of every binned column × segment, one scan of the current window (and
   of the reference, when its profile is new: its counts join the profile);
3. what the checks need from the reference and the profile lacks: the categories of
   ``new_category_rate``, the values of relative thresholds (one query each, once per profile);
4. one exact-distance query per ``ks``/``wasserstein`` check and column;
5. the previous run's schema, for ``schema_change``;
6. every model and data check, one query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

import pandas as pd

from driftline import connect
from driftline.errors import DriftlineError, WarehouseError
from driftline.judge import FAIL, WARN, verdict_of
from driftline.plan import estimated, model_checks, reference_band, segment_shares
from driftline.plan.check_kind import CheckKind, Context, Value
from driftline.plan.drift import Histogram, Measurement, binned_drift, exact_drift
from driftline.plan.histograms import ROWS, SIZE, CountLayout, bin_counts, finish_bins, rollup
from driftline.plan.model_checks import ReferenceValues
from driftline.plan.monitor import MonitorPlan
from driftline.plan.profile import NULL_SEGMENT, ReferenceProfile, SegmentKey, ordered_segments, profile_key
from driftline.plan.quality import categories_key, read_previous_schema
from driftline.plan.source import CURRENT, REFERENCE
from driftline.plan.window_query import ROWS_KEY, Known, SegmentFigures, WindowFigures, valid_key
from driftline.spec.models import CheckBase, check_name
from driftline.spec.types import format_duration
from driftline.store import ResultStore
from driftline.windows import Window, reference_window

@dataclass
class Measured:
    """A window's measurements, the bins behind its drift values, and the rows they read."""

    measurements: list[Measurement] = field(default_factory=list)
    histogram_rows: list[dict[str, Any]] = field(default_factory=list)
    rows_current: int = 0
    rows_reference: int = 0


class WindowMeasurer:
    """Runs a monitor's queries for one window at a time; counts the queries it runs."""

    def __init__(self, plan: MonitorPlan, store: ResultStore, source_fingerprint: str = "", query_timeout: timedelta | None = None):
        self.plan = plan
        self.store = store
        self.source_fingerprint = source_fingerprint
        self.query_timeout = query_timeout  # the project's query_timeout; None: unbounded
        self.queries = 0

    @property
    def monitor(self):
        return self.plan.monitor

    def measure(self, window: Window, now: datetime) -> Measured:
        reference = reference_window(self.monitor.reference, window)
        profile = self.cached_profile(reference)
        built = profile is None
        if built:
            profile = self._build_profile(reference)
        windows = {CURRENT: window, REFERENCE: reference} if built else {CURRENT: window}
        counts_expr, layout = self.plan.counts_query(windows, profile.bins)
        totals = rollup(self.execute(counts_expr), layout)
        if built:
            _add_reference_counts(profile, totals, layout)
        completed = self._complete_reference(profile, now)
        if (built or completed) and profile.rows.get((None, None)):
            # an empty reference (its data not loaded yet?) is measured again, not cached
            self.store.save_profile(profile.key, self.monitor.name, profile.window, profile.to_json(), now)
        current_rows = {k[1:]: int(v[ROWS]) for k, v in totals.items() if k[0] == CURRENT}
        measured = Measured(rows_current=current_rows.get((None, None), 0), rows_reference=profile.rows.get((None, None), 0))
        measured.measurements, measured.histogram_rows = self._binned(profile, totals, layout, current_rows)
        measured.measurements += self._exact(window, reference, current_rows)
        measured.measurements += self._model_checks(window, profile, now, counted_figures(totals, layout))
        return measured

    def execute(self, expr) -> pd.DataFrame:
        """Run one query: the one place a window's queries run, read-only and within ``query_timeout``
        where the backend allows (see :func:`driftline.connect.bounded_query`)."""
        self.queries += 1
        watch = None
        try:
            with connect.bounded_query(self.store.con, self.query_timeout) as watch:
                return expr.execute()
        except DriftlineError:
            raise
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if watch is not None and connect.is_timeout(error, watch):
                limit = format_duration(self.query_timeout)
                message = f"{self.monitor.name}: query exceeded query_timeout {limit}: {first} (raise query_timeout in driftline_project.yml, or narrow the source)"
                raise WarehouseError(message) from error
            raise WarehouseError(f"{self.monitor.name}: query failed: {first}") from error

    # -- the reference profile ------------------------------------------------------------------

    def profile_key(self, reference: Window) -> str:
        return profile_key(self.monitor.name, reference, self.plan.binned_columns, self.plan.segments, self.source_fingerprint)

    def cached_profile(self, reference: Window) -> ReferenceProfile | None:
        key = self.profile_key(reference)
        stored = self.store.load_profile(key)
        return ReferenceProfile.from_json(key, reference, stored) if stored is not None else None

    def _build_profile(self, reference: Window) -> ReferenceProfile:
        """Edges (after the reference's size, where they are sampled) and categories; the counts
        join it from the window's counting query."""
        size_expr = self.plan.reference_size_query(reference)
        reference_rows = int(self.execute(size_expr)[SIZE].iloc[0]) if size_expr is not None else None
        edges_expr, categories_expr = self.plan.edges_query(reference, reference_rows), self.plan.categories_query(reference)
        edges = self.execute(edges_expr).iloc[0] if edges_expr is not None else None
        categories = self.execute(categories_expr) if categories_expr is not None else None
        bins = finish_bins(self.plan.binned_columns, edges, categories)
        return ReferenceProfile(self.profile_key(reference), reference, bins)

    def _complete_reference(self, profile: ReferenceProfile, now: datetime) -> bool:
        """Add to ``profile.metrics`` what the checks need from the reference and it lacks;
        True when something was added (the profile is then saved again)."""
        calibrated = self._calibrate(profile, now)  # first: a relative threshold's reference value reads it
        stored = profile.metrics.setdefault("categories", {})
        before = len(stored)
        missing = model_checks.missing_reference_categories(self.plan, profile)
        expr = model_checks.reference_categories_query(self.plan, profile, missing)
        if expr is not None:
            frame = self.execute(expr)
            for column in missing:
                mine = frame[(frame.column == column.name) & (frame.binning == column.binning.key)].sort_values("rank")
                stored[categories_key(column.name, column.binning.max_categories)] = [str(v) for v in mine.value]
        planned = model_checks.reference_values_query(self.plan, profile, now)
        if planned is not None:
            query, checks = planned
            figures = query.read(self._run(query))
            on_reference = model_checks.context(self.plan, profile.window, profile, now)
            references = ReferenceValues(profile, self.monitor)
            for check in checks:
                references.save(check, check_measurements(check, figures, on_reference, None))
        learned = self._learn_bands(profile, now)
        return calibrated or planned is not None or len(stored) > before or learned

    def _learn_bands(self, profile: ReferenceProfile, now: datetime) -> bool:
        """The ``{reference_band}`` checks' bands the profile lacks, from one grouped query over
        the reference's whole windows (``plan.reference_band``); True when one was learned."""
        bands = reference_band.ReferenceBands(profile, self.monitor)
        due = bands.due(model_checks.model_checks(self.monitor))
        on_reference = model_checks.context(self.plan, profile.window, profile, now)
        query = reference_band.bands_query(self.plan, profile, due, on_reference) if due else None
        if query is None:
            return False
        windows = len(reference_band.reference_windows(self.monitor, profile.window))
        figures = query.read(self._run(query))
        reference_band.learn(due, figures, on_reference, bands, self.plan.segments, windows, measured_value)
        return any(bands.has(c) for c in due)

    def _calibrate(self, profile: ReferenceProfile, now: datetime) -> bool:
        """The calibration of estimated_performance, learned on the labeled reference when the
        profile lacks it: one query of the distinct scores, a second of binned ones when there
        are too many (``plan.estimated``). True when it was learned."""
        if not estimated.calibration_due(self.plan, profile, now):
            return False
        bins = self.execute(estimated.distinct_scores_query(self.plan, profile.window))
        if len(bins) > estimated.MAX_BINS:
            bins = self.execute(estimated.quantile_bins_query(self.plan, profile.window))
        estimated.save_calibration(profile, self.monitor, estimated.fit(bins))
        return True

    # -- drift ----------------------------------------------------------------------------------

    def _binned(self, profile: ReferenceProfile, totals: dict, layout: CountLayout, current_rows: dict):
        measurements: list[Measurement] = []
        histogram_rows: list[dict[str, Any]] = []
        index = {(b.column, b.binning): c for c, b in enumerate(layout.bins)}
        segments = ordered_segments(profile.rows, current_rows)
        histograms: dict[tuple, Histogram] = {}
        for c, column_bins in enumerate(layout.bins):
            for segment in segments:
                reference = profile.counts.get((column_bins.column, column_bins.binning, *segment), [0] * column_bins.size)
                sums = totals.get((CURRENT, *segment))
                current = bin_counts(sums, layout, c) if sums is not None else [0] * column_bins.size
                histograms[(c, segment)] = Histogram(column_bins, reference, current)
                histogram_rows += _histogram_rows(column_bins.column, segment, histograms[(c, segment)])
        for check in self.plan.drift_checks(binned=True):
            for column in self.plan.columns_by_check[check_name(check)]:
                c = index[column.key]
                for segment in segments:
                    enough = current_rows.get(segment, 0) >= self.monitor.min_rows
                    measurements.append(binned_drift(check, column.name, segment, histograms[(c, segment)], enough))
        return measurements, histogram_rows

    def _exact(self, window: Window, reference: Window, current_rows: dict) -> list[Measurement]:
        measurements = []
        checks = {check_name(c): c for c in self.plan.drift_checks(binned=False)}
        for (name, column), expr in self.plan.exact_queries(window, reference).items():
            frame = self.execute(expr)
            by_segment = {_segment(r.segment_key, r.segment_value): r for r in frame.itertuples(index=False)}
            for segment in ordered_segments(by_segment):
                enough = current_rows.get(segment, 0) >= self.monitor.min_rows
                row = by_segment.get(segment)
                measurements.append(exact_drift(checks[name], column, segment, pd.Series(row._asdict()) if row is not None else None, enough))
        return measurements

    # -- model and data checks --------------------------------------------------------------------

    def _model_checks(self, window: Window, profile: ReferenceProfile, now: datetime, counted: Known) -> list[Measurement]:
        checks = model_checks.model_checks(self.monitor)
        if not checks:
            return []
        context = model_checks.context(self.plan, window, profile, now)
        schema_expr = model_checks.previous_schema_query(self.plan, window)
        if schema_expr is not None:
            context.previous_schema = read_previous_schema(self.execute(schema_expr))
        query = model_checks.window_query(self.plan, checks, context, counted)
        figures = query.read(self._run(query))
        references = ReferenceValues(profile, self.monitor)
        measurements = [m for check in checks for m in check_measurements(check, figures, context, references)]
        bands = reference_band.ReferenceBands(profile, self.monitor)
        for measured in measurements:
            bands.attach(measured)
        self._explain_breaches(measurements, profile, now)
        return measurements

    def _explain_breaches(self, measurements: list[Measurement], profile: ReferenceProfile, now: datetime) -> None:
        """Split each overall breach's change over the segments (``plan.segment_shares``). The
        reference's segment values are measured the first time a breach needs them, by one query
        for every check that breaches, and kept in the profile."""
        shares = segment_shares.SegmentShares(profile, self.monitor)
        breaching = [m.check for m in measurements if m.segment_key is None and verdict_of(m).status in (WARN, FAIL)]
        on_reference = model_checks.context(self.plan, profile.window, profile, now)
        due = [c for c in shares.due(list({check_name(c): c for c in breaching}.values()))
               if not (model_checks.kind_of(c).needs_labels(c) and not on_reference.labels_mature)]  # fmt: skip
        if due:
            query = model_checks.window_query(self.plan, due, on_reference)
            figures = query.read(self._run(query))
            for check in due:
                shares.save(check, check_measurements(check, figures, on_reference, None))
            self.store.save_profile(profile.key, self.monitor.name, profile.window, profile.to_json(), now)
        shares.explain(measurements)

    def _run(self, query) -> pd.DataFrame | None:
        expression = query.expression()
        return self.execute(expression) if expression is not None else None


def check_measurements(check: CheckBase, figures: WindowFigures, context: Context, references: ReferenceValues | None) -> list[Measurement]:
    """One model or data check measured per column and segment from its query's figures."""
    kind = model_checks.kind_of(check)
    segments = ordered_segments(figures.segments, context.profile.rows) if kind.segmented(check) else [(None, None)]
    measurements = []
    for column in kind.columns(check, context.monitor):
        for segment in segments:
            value = _sized(kind, check, kind.measure(check, column, figures.segment(segment), context), context)
            measured = Measurement(check, kind.check_type, kind.metric(check), column, *segment, value.value, None, value.n, None, value.details, value.std_error, value.weight)
            if references is not None:
                references.attach(measured)
            measurements.append(measured)
    return measurements


def measured_value(kind: CheckKind, check: CheckBase, column: str | None, figures: SegmentFigures, context: Context) -> Value:
    """One check's value for one column from one segment's figures, ``min_rows`` applied."""
    return _sized(kind, check, kind.measure(check, column, figures, context), context)


def _sized(kind: CheckKind, check: CheckBase, value: Value, context: Context) -> Value:
    """A value measured on fewer than ``min_rows`` rows is insufficient_data (SPEC §3)."""
    min_rows = context.monitor.min_rows
    if value.value is None or not kind.sized(check) or value.n is None or value.n >= min_rows:
        return value
    return value.below_min_rows(min_rows)


def counted_figures(totals: Mapping[tuple, pd.Series], layout: CountLayout) -> Known:
    """Per segment, what the drift counting query counted of the current window that the checks
    read too: its rows, and each binned column's non-null values."""
    aliases = {ROWS_KEY: ROWS} | {valid_key(b.column): layout.valid_alias(c) for c, b in enumerate(layout.bins)}
    return {
        tuple(segment): {key: int(sums[alias]) for key, alias in aliases.items()}
        for (side, *segment), sums in totals.items()
        if side == CURRENT
    }


def _add_reference_counts(profile: ReferenceProfile, totals: dict, layout: CountLayout) -> None:
    """The reference's rows and bin counts, per segment, from the counting query's reference side."""
    for (side, segment_key, segment_value), sums in totals.items():
        if side != REFERENCE:
            continue
        profile.rows[(segment_key, segment_value)] = int(sums[ROWS])
        for c, column_bins in enumerate(layout.bins):
            key = (column_bins.column, column_bins.binning, segment_key, segment_value)
            profile.counts[key] = bin_counts(sums, layout, c)


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
