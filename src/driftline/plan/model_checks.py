"""Model and data checks (performance, fairness, quality, latency, custom metrics): their one
query per window and their measurements. The drift checks live in ``histograms``/``drift``/``exact``.

Per window:

1. every check registers its aggregates in one :class:`WindowQuery` (see its kind:
   ``performance``, ``fairness``, ``quality``, ``latency``, ``custom_metrics``);
2. that ONE query runs — overall and every segment in one pass — and returns small figures;
3. each check is measured per column and segment from those figures, values below ``min_rows``
   rows become insufficient_data, and relative thresholds get the reference value.

The reference window's share (reference values for ``drop``/``rise`` thresholds, the category
set of ``new_category_rate``) is computed once per reference profile by
:func:`complete_reference` and stored in ``profile.metrics``. A ``schema_change`` check adds
one small read of the previous run's result.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from driftline.plan import histograms, quality
from driftline.plan.check_kind import CheckKind, Context, Value
from driftline.plan.check_validation import Validator
from driftline.plan.columns import Binning, DriftColumn
from driftline.plan.custom_metrics import CustomMetric
from driftline.plan.drift import Measurement
from driftline.plan.fairness import Fairness
from driftline.plan.frame import window_rows
from driftline.plan.histograms import CountLayout, categories_query
from driftline.plan.latency import Latency
from driftline.plan.performance import Performance
from driftline.plan.profile import ReferenceProfile, SegmentKey
from driftline.plan.source import CURRENT
from driftline.plan.window_query import ROWS_KEY, Known, WindowFigures, WindowQuery, valid_key
from driftline.spec.models import (
    Bound, CheckBase, FairnessCheck, LatencyCheck, MetricCheck, Monitor, PerformanceCheck, QualityCheck, check_name,
)
from driftline.windows import Window

KINDS: dict[type, CheckKind] = {
    PerformanceCheck: Performance(),
    FairnessCheck: Fairness(),
    QualityCheck: quality.Quality(),
    LatencyCheck: Latency(),
    MetricCheck: CustomMetric(),
}
Execute = Callable[[Any], pd.DataFrame]


def model_checks(monitor: Monitor) -> list[CheckBase]:
    return [c for c in monitor.checks if type(c) in KINDS]


# -- a window --------------------------------------------------------------------------------------


def measure_model_checks(
    plan: Any,
    window: Window,
    reference: Window,
    profile: ReferenceProfile,
    execute: Execute,
    now: datetime,
    counted: Known | None = None,
) -> list[Measurement]:
    """Measurements of every non-drift check of ``plan.monitor`` for ``window``; ``counted``:
    the window's figures the drift counting query has (see :func:`counted_figures`)."""
    checks = model_checks(plan.monitor)
    if not checks:
        return []
    context = _context(plan, window, profile, now)
    if any(getattr(c, "metric", None) == "schema_change" for c in checks):
        context.previous_schema = _previous_schema(plan, window, execute)
    figures = _figures(plan, checks, context, execute, counted)
    references = ReferenceValues(profile, plan.monitor)
    return [m for check in checks for m in _measurements(check, figures, context, references)]


def window_query(plan: Any, checks: Iterable[CheckBase], context: Context, known: Known | None = None) -> WindowQuery:
    """The window's one query, with the aggregates of ``checks`` registered (not run)."""
    rows = window_rows(plan.source, plan.monitor, plan.inputs, context.window)
    query = WindowQuery(rows, plan.segments, plan.dialect, source=plan.source.table, known=known)
    for check in checks:
        KINDS[type(check)].register(check, query, context)
    return query


def model_checks_query(plan: Any, window: Window, profile: ReferenceProfile, now: datetime):
    """The expression a run executes for the model and data checks of ``window`` (for compile)."""
    checks = model_checks(plan.monitor)
    if not checks:
        return None
    # which figures the drift counts have, not their values, shapes the query
    counted = {(None, None): dict.fromkeys([ROWS_KEY, *(valid_key(c.name) for c in plan.binned_columns)], 0)}
    return window_query(plan, checks, _context(plan, window, profile, now), counted).expression()


def _context(plan: Any, window: Window, profile: ReferenceProfile, now: datetime) -> Context:
    return Context(plan.monitor, window, now, plan.dialect, profile, plan.inputs)


def counted_figures(totals: Mapping[tuple, pd.Series], layout: CountLayout) -> Known:
    """Per segment, what the drift counting query counted of the current window that the checks
    read too: its rows, and each binned column's non-null values."""
    aliases = {ROWS_KEY: histograms.ROWS} | {valid_key(b.column): layout.valid_alias(c) for c, b in enumerate(layout.bins)}
    return {
        tuple(segment): {key: int(sums[alias]) for key, alias in aliases.items()}
        for (side, *segment), sums in totals.items()
        if side == CURRENT
    }


def _figures(plan: Any, checks: list[CheckBase], context: Context, execute: Execute, known: Known | None = None) -> WindowFigures:
    query = window_query(plan, checks, context, known)
    expression = query.expression()
    return query.read(execute(expression) if expression is not None else None)


def _previous_schema(plan: Any, window: Window, execute: Execute) -> dict[str, str] | None:
    if plan.inputs.history is None:
        return None
    return quality.read_previous_schema(execute(quality.previous_schema_query(plan.inputs.history, plan.monitor.name, window)))


def _segments(figures: WindowFigures, profile: ReferenceProfile) -> list[SegmentKey]:
    """Overall first, then every segment seen in the window or the reference."""
    keys = set(figures.segments) | set(profile.rows) | {(None, None)}
    return sorted(keys, key=lambda k: (k[0] is not None, k[0] or "", k[1] or ""))


def _measurements(check: CheckBase, figures: WindowFigures, context: Context, references: ReferenceValues | None) -> list[Measurement]:
    kind = KINDS[type(check)]
    segments = _segments(figures, context.profile) if kind.segmented(check) else [(None, None)]
    measurements = []
    for column in kind.columns(check, context.monitor):
        for segment in segments:
            value = _sized(kind, check, kind.measure(check, column, figures.segment(segment), context), context)
            measured = Measurement(check, kind.check_type, kind.metric(check), column, *segment, value.value, None, value.n, None, value.details)
            if references is not None:
                references.attach(measured)
            measurements.append(measured)
    return measurements


def _sized(kind: CheckKind, check: CheckBase, value: Value, context: Context) -> Value:
    """A value measured on fewer than ``min_rows`` rows is insufficient_data (SPEC §3)."""
    min_rows = context.monitor.min_rows
    if value.value is None or not kind.sized(check) or value.n is None or value.n >= min_rows:
        return value
    return Value(None, value.n, {**value.details, "reason": f"not enough rows ({value.n} < min_rows {min_rows})"})


# -- the reference window's share of the profile -------------------------------------------------------


def complete_reference(plan: Any, profile: ReferenceProfile, execute: Execute, now: datetime) -> bool:
    """Add to ``profile.metrics`` what the checks need from the reference and it lacks; True
    when something was added (the caller saves the profile). Runs when a profile is built, and
    again only for checks added since or whose reference labels were not mature yet."""
    added = _complete_categories(plan, profile, execute)
    return _complete_reference_values(plan, profile, execute, now) or added


def _complete_categories(plan: Any, profile: ReferenceProfile, execute: Execute) -> bool:
    """The reference value sets of ``new_category_rate``: from the drift bins when complete,
    else one query for all the missing columns."""
    stored = profile.metrics.setdefault("categories", {})
    wanted = {
        (column, check.max_categories)
        for check in plan.monitor.checks
        if isinstance(check, QualityCheck) and check.metric == "new_category_rate"
        for column in KINDS[QualityCheck].columns(check, plan.monitor)
    }
    missing = sorted(w for w in wanted if quality.categories_key(*w) not in stored)
    to_query = []
    for column, size in missing:
        complete = quality.complete_drift_categories(profile, column)
        if complete is not None:
            stored[quality.categories_key(column, size)] = complete[:size]
        else:
            to_query.append(DriftColumn(column, Binning("categorical", "categories", 0, size)))
    if to_query:
        frame = execute(categories_query(plan.source.between(profile.window), to_query))
        for column in to_query:
            mine = frame[(frame.column == column.name) & (frame.binning == column.binning.key)].sort_values("rank")
            stored[quality.categories_key(column.name, column.binning.max_categories)] = [str(v) for v in mine.value]
    return bool(missing)


def _complete_reference_values(plan: Any, profile: ReferenceProfile, execute: Execute, now: datetime) -> bool:
    references = ReferenceValues(profile, plan.monitor)
    context = _context(plan, profile.window, profile, now)
    due = [c for c in model_checks(plan.monitor) if _relative(c) and not references.has(c)]
    ready = [c for c in due if not (KINDS[type(c)].needs_labels(c) and not context.labels_mature)]
    if not ready:
        return False
    figures = _figures(plan, ready, context, execute)
    for check in ready:
        references.save(check, _measurements(check, figures, context, None))
    return True


def _relative(check: CheckBase) -> bool:
    """Whether a threshold compares with the reference value (drop/rise)."""
    return any(
        isinstance(t, Bound) and (t.drop is not None or t.rise is not None) for t in (check.warn, check.fail)
    )


class ReferenceValues:
    """The reference window's value of each check with a relative threshold, and the rows it
    was measured on, per column and segment, kept in ``profile.metrics`` with a fingerprint of
    the check's configuration (a changed check is measured on the reference again)."""

    KEY = "reference_values"

    def __init__(self, profile: ReferenceProfile, monitor: Monitor):
        self.stored: dict[str, Any] = profile.metrics.setdefault(self.KEY, {})
        self.monitor = monitor

    def fingerprint(self, check: CheckBase) -> str:
        model = self.monitor.model.model_dump(mode="json") if self.monitor.model else None
        config = json.dumps([check.model_dump(mode="json"), model, self.monitor.min_rows], sort_keys=True, default=str)
        return hashlib.sha256(config.encode()).hexdigest()[:16]

    def has(self, check: CheckBase) -> bool:
        entry = self.stored.get(check_name(check))
        return entry is not None and entry["fingerprint"] == self.fingerprint(check)

    def save(self, check: CheckBase, measurements: list[Measurement]) -> None:
        values = [[m.column_name, m.segment_key, m.segment_value, m.value, m.n_current] for m in measurements]
        self.stored[check_name(check)] = {"fingerprint": self.fingerprint(check), "values": values}

    def attach(self, measured: Measurement) -> None:
        """Put the reference value in ``details["reference_value"]``, where judge reads it, and
        the rows it was measured on in ``n_reference`` (profiles stored before it was kept
        have only the value)."""
        if not self.has(measured.check):
            return
        for column, segment_key, segment_value, value, *n in self.stored[measured.check_name]["values"]:
            if (column, segment_key, segment_value) == (measured.column_name, measured.segment_key, measured.segment_value):
                if value is not None:
                    measured.details["reference_value"] = value
                measured.n_reference = n[0] if n else None
                return


# -- validation ----------------------------------------------------------------------------------


def validate_model_checks(loaded: Any, table: Any, macros: Any, problems: list) -> None:
    """Append a located ConfigError to ``problems`` for every model/data check that cannot run
    against ``table`` (unknown columns, wrong types, a metric for another task, bad SQL ...)."""
    validator = Validator(loaded, table, macros, problems)
    if any(isinstance(c, (PerformanceCheck, FairnessCheck)) for c in loaded.spec.checks):
        validator.model()
    for index, check in enumerate(loaded.spec.checks):
        kind = KINDS.get(type(check))
        if kind is not None:
            kind.validate(check, index, validator)
