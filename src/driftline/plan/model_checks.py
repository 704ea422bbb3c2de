"""Model and data checks (performance, fairness, quality, latency, custom metrics): the queries
that measure them. The drift checks' queries live in ``histograms`` and ``exact``; ``measure``
runs both and turns the figures into measurements.

Per window, every check registers its aggregates in ONE :class:`WindowQuery` (see its kind:
``performance``, ``fairness``, ``quality``, ``latency``, ``custom_metrics``), which measures
overall and every segment in one pass, reusing what the drift counting query counted.

Once per reference profile, checks with a relative threshold (``drop``/``rise``) are measured on
the reference window by the same kind of query (:func:`reference_values_query`), and
``new_category_rate`` learns the reference's categories (:func:`reference_categories_query`)
unless a drift check's categories already hold them all. A ``schema_change`` check adds one small
read of the previous run's result.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from driftline.plan.drift import Measurement

from driftline.plan import quality
from driftline.plan.check_kind import CheckKind, Context
from driftline.plan.check_validation import Validator
from driftline.plan.columns import Binning, DriftColumn
from driftline.plan.custom_metrics import CustomMetric
from driftline.plan.estimated import EstimatedPerformance
from driftline.plan.fairness import Fairness
from driftline.plan.frame import window_rows
from driftline.plan.histograms import categories_query
from driftline.plan.latency import Latency
from driftline.plan.performance import Performance
from driftline.plan.profile import ReferenceProfile, StoredPerCheck
from driftline.plan.window_query import Known, WindowQuery
from driftline.spec.models import (
    Bound, CheckBase, EstimatedPerformanceCheck, FairnessCheck, LatencyCheck, MetricCheck, Monitor, PerformanceCheck, QualityCheck, check_name,
)
from driftline.windows import Window

KINDS: dict[type, CheckKind] = {
    PerformanceCheck: Performance(),
    EstimatedPerformanceCheck: EstimatedPerformance(),
    FairnessCheck: Fairness(),
    QualityCheck: quality.Quality(),
    LatencyCheck: Latency(),
    MetricCheck: CustomMetric(),
}


def model_checks(monitor: Monitor) -> list[CheckBase]:
    return [c for c in monitor.checks if type(c) in KINDS]


def kind_of(check: CheckBase) -> CheckKind:
    return KINDS[type(check)]


# -- a window ----------------------------------------------------------------------------------


def context(plan: Any, window: Window, profile: ReferenceProfile, now: datetime) -> Context:
    return Context(plan.monitor, window, now, plan.dialect, profile, plan.inputs)


def window_query(plan: Any, checks: Iterable[CheckBase], context: Context, known: Known | None = None) -> WindowQuery:
    """The window's one query, with the aggregates of ``checks`` registered (not run);
    ``known``: the figures the drift counting query has (see ``measure.counted_figures``)."""
    rows = window_rows(plan.source, plan.monitor, plan.inputs, context.window)
    query = WindowQuery(rows, plan.segments, plan.dialect, source=plan.source.table, known=known)
    for check in checks:
        kind_of(check).register(check, query, context)
    return query


def previous_schema_query(plan: Any, window: Window):
    """The previous run's schema, read when a ``schema_change`` check needs it; else None."""
    wanted = any(getattr(c, "metric", None) == "schema_change" for c in model_checks(plan.monitor))
    if not wanted or plan.inputs.history is None:
        return None
    return quality.previous_schema_query(plan.inputs.history, plan.monitor.name, window)


# -- the reference window's share of the profile -------------------------------------------------------


def reference_values_query(plan: Any, profile: ReferenceProfile, now: datetime) -> tuple[WindowQuery, list[CheckBase]] | None:
    """The query measuring on the reference window the checks with a relative threshold whose
    reference value the profile lacks (new checks, or labels not mature when it was built),
    and those checks; None when there are none."""
    references = ReferenceValues(profile, plan.monitor)
    on_reference = context(plan, profile.window, profile, now)
    due = [c for c in model_checks(plan.monitor) if _relative(c) and not references.has(c)]
    ready = [c for c in due if kind_of(c).ready_on_reference(c, on_reference)]
    if not ready:
        return None
    return window_query(plan, ready, on_reference), ready


def missing_reference_categories(plan: Any, profile: ReferenceProfile) -> list[DriftColumn]:
    """The ``new_category_rate`` columns whose reference categories the profile lacks; the
    complete category sets of drift columns are copied into it first."""
    stored = profile.metrics.setdefault("categories", {})
    wanted = {
        (column, check.max_categories)
        for check in plan.monitor.checks
        if isinstance(check, QualityCheck) and check.metric == "new_category_rate"
        for column in KINDS[QualityCheck].columns(check, plan.monitor)
    }
    missing = []
    for column, size in sorted(w for w in wanted if quality.categories_key(*w) not in stored):
        complete = quality.complete_drift_categories(profile, column)
        if complete is not None:
            stored[quality.categories_key(column, size)] = complete[:size]
        else:
            missing.append(DriftColumn(column, Binning("categorical", "categories", 0, size)))
    return missing


def reference_categories_query(plan: Any, profile: ReferenceProfile, columns: list[DriftColumn]):
    return categories_query(plan.source.between(profile.window), columns) if columns else None


def _relative(check: CheckBase) -> bool:
    """Whether a threshold compares with the reference value (drop/rise)."""
    return any(
        isinstance(t, Bound) and (t.drop is not None or t.rise is not None) for t in (check.warn, check.fail)
    )


class ReferenceValues(StoredPerCheck):
    """The reference window's value of each check with a relative threshold, its standard error
    and the rows it was measured on, per column and segment."""

    KEY = "reference_values"

    def save(self, check: CheckBase, measurements: list[Measurement]) -> None:
        values = [[m.column_name, m.segment_key, m.segment_value, m.value, m.n_current, m.std_error] for m in measurements]
        self.stored[check_name(check)] = {"fingerprint": self.fingerprint(check), "values": values}

    def attach(self, measured: Measurement) -> None:
        """Put the reference value in ``details["reference_value"]``, where judge reads it, its
        standard error in ``details["reference_std_error"]``, and the rows it was measured on
        in ``n_reference`` (profiles stored before these were kept have only the value)."""
        if not self.has(measured.check):
            return
        for column, segment_key, segment_value, value, *n_and_error in self.stored[measured.check_name]["values"]:
            if (column, segment_key, segment_value) == (measured.column_name, measured.segment_key, measured.segment_value):
                if value is not None:
                    measured.details["reference_value"] = value
                n, std_error = (n_and_error + [None, None])[:2]
                measured.n_reference = n
                if std_error is not None:  # a {drop}/{rise} with a confidence adds it (SPEC §3)
                    measured.details["reference_std_error"] = std_error
                return


# -- validation ----------------------------------------------------------------------------------


def validate_model_checks(loaded: Any, table: Any, macros: Any, problems: list) -> None:
    """Append a located ConfigError to ``problems`` for every model/data check that cannot run
    against ``table`` (unknown columns, wrong types, a metric for another task, bad SQL ...)."""
    validator = Validator(loaded, table, macros, problems)
    if any(isinstance(c, (PerformanceCheck, EstimatedPerformanceCheck, FairnessCheck)) for c in loaded.spec.checks):
        validator.model()
    for index, check in enumerate(loaded.spec.checks):
        kind = KINDS.get(type(check))
        if kind is not None:
            kind.validate(check, index, validator)
            what = f"{kind.check_type} {kind.metric(check)}"
            validator.significance(check, ("checks", index, kind.check_type), kind.has_std_error(check, macros), what)
