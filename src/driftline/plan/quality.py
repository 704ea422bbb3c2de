"""Data quality (SPEC §6): per-column figures in the window's one query, plus the table's
freshness and its schema compared with the previous run's.

NaN counts as null. ``stddev`` is the *sample* standard deviation (n − 1 in the denominator, as
SQL's ``STDDEV`` and pandas' ``std()``). ``mean``, ``stddev``, ``min``, ``max`` and
``out_of_range_rate`` read numeric columns; rates are shares of the rows (``null_rate``) or of
the non-null values (the others). ``out_of_range_rate`` counts values below ``min:`` or above
``max:`` (both bounds are in range).

Infinities are values (they land in the outer bins for drift), with one exception: ``mean`` and
``stddev`` are computed over the finite values within ±1e150 only (``SUMMABLE_LIMIT``): an
average with an infinity in it says nothing, and both an infinity and a larger finite value
overflow the running sums of squares, which fails the whole query on DuckDB and PostgreSQL.
Their ``n_current`` is the number of values kept, ``details["infinite_values"]`` how many ±inf
and ``details["huge_values"]`` how many finite values beyond ±1e150 were left out; ``mean`` is
null without a value kept, ``stddev`` with fewer than two. Tiny values need no rule: the
aggregates read a square below the smallest double as 0 without an error, so the ``stddev`` of
values that differ from their mean by less than about 1e-154 loses precision (0 below about
1e-162). ``min`` and ``max`` keep ±inf, the true extremes, and ``out_of_range_rate`` counts them
as out of range.

``new_category_rate`` compares with the reference's set of values, read once into the reference
profile: the categories of a categorical drift column when they are complete (fewer than its
``max_categories``), else the check's own ``max_categories`` most frequent reference values.

``freshness_hours`` is now − the newest timestamp of the whole source (not only the window) at
or before now. ``schema_change`` counts the columns added, removed or retyped since the previous
run, whose column list it reads back from that run's result ``details``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Callable

import ibis
import ibis.expr.types as ir
import pandas as pd

from driftline import reasons
from driftline.plan.aggregates import Figures, count_where, ratio
from driftline.plan.check_kind import NOTHING_TO_MEASURE, CheckKind, Context, Value
from driftline.plan.columns import selected_columns
from driftline.plan.histograms import as_text, clean, finite
from driftline.plan.window_query import ROWS_KEY, SegmentFigures, WindowQuery, valid_key
from driftline.reasons import Reason
from driftline.spec.models import Monitor, QualityCheck
from driftline.windows import EPOCH, Window

TABLE_METRICS = ("row_count", "freshness_hours", "schema_change")  # about the table, not a column
NUMERIC_METRICS = ("mean", "stddev", "min", "max", "out_of_range_rate")
UNSEGMENTED = ("freshness_hours", "schema_change")


def _number(t: ir.Table, column: str) -> ir.FloatingValue:
    return clean(t[column]).cast("float64")


# The squared deviations of values within ±1e150 stay below 1e300, so the running sums of squares
# (DuckDB's and PostgreSQL's STDDEV, and PostgreSQL's AVG, which keeps one too) cannot overflow
# before some 10^8 values lie at the limit itself.
SUMMABLE_LIMIT = 1e150


def _summable(t: ir.Table, column: str) -> ir.FloatingValue:
    """The column's values that ``mean`` and ``stddev`` read: finite and within ±``SUMMABLE_LIMIT``
    (NaN, null and ±inf fail the test)."""
    x = _number(t, column)
    return ibis.ifelse(x.between(-SUMMABLE_LIMIT, SUMMABLE_LIMIT), x, ibis.null("float64"))


def _mean(t: ir.Table, column: str, *_) -> ir.FloatingScalar:
    return _summable(t, column).mean()


def _stddev(t: ir.Table, column: str, *_) -> ir.FloatingScalar:
    return _summable(t, column).std(how="sample")


def _outside(t: ir.Table, column: str, check: QualityCheck, known: list[str] | None) -> ir.Scalar:
    x = _number(t, column)
    below = x < check.min if check.min is not None else ibis.literal(False)
    above = x > check.max if check.max is not None else ibis.literal(False)
    return count_where(x.notnull() & (below | above))


def _new(t: ir.Table, column: str, check: QualityCheck, known: list[str] | None) -> ir.Scalar:
    value = as_text(clean(t[column]))
    return count_where(value.notnull() & ~value.isin(known))


@dataclass(frozen=True)
class ColumnMetric:
    """A per-column metric: its own aggregate ``(table, column, check, reference categories)``
    (None: it needs none), and its value from that, the column's non-null values (``valid``) and
    the rows; ``sample`` names the count the value is measured on (``rows``, ``valid`` or
    ``summable``: the values :func:`_summable` keeps), which becomes ``n_current``;
    ``undefined`` says why the value is null in a window that has rows."""

    aggregate: Callable[[ir.Table, str, QualityCheck, list[str] | None], ir.Scalar] | None
    value: Callable[[float | None, int, int], float | None]
    sample: str = "valid"
    additive: bool = False  # a count: computed per combination of segment values and summed
    undefined: Reason = Reason(reasons.NO_VALUES, "no non-null values")


def _as_is(own: float | None, valid: int, rows: int) -> float | None:
    return own


COLUMN_METRICS = {
    # the rows and non-null values suffice; for a drift column the drift counts have both
    "null_rate": ColumnMetric(None, lambda own, valid, rows: ratio(rows - valid, rows), "rows"),
    "distinct_count": ColumnMetric(lambda t, c, *_: clean(t[c]).nunique(), _as_is),
    "mean": ColumnMetric(_mean, _as_is, "summable", undefined=Reason(reasons.NO_VALUES, "no finite values within ±1e150")),
    "stddev": ColumnMetric(_stddev, _as_is, "summable", undefined=Reason(reasons.NO_VALUES, "fewer than two finite values within ±1e150")),
    "min": ColumnMetric(lambda t, c, *_: _number(t, c).min(), _as_is),
    "max": ColumnMetric(lambda t, c, *_: _number(t, c).max(), _as_is),
    "out_of_range_rate": ColumnMetric(_outside, lambda own, valid, rows: ratio(own, valid), additive=True),
    "new_category_rate": ColumnMetric(_new, lambda own, valid, rows: ratio(own, valid), additive=True),
}


def _finite_key(column: str) -> str:
    """The key of the count of ``column``'s finite values."""
    return f"finite:{column}"


def _summable_key(column: str) -> str:
    """The key of the count of the values ``mean`` and ``stddev`` read (``sample`` "summable")."""
    return f"summable:{column}"


def _key(check: QualityCheck, column: str) -> str:
    """The aggregate's key: the same metric, column and parameters share one aggregate."""
    return f"{check.metric}:{column}:{check.min}:{check.max}:{check.max_categories}"


# -- reference categories (new_category_rate) ---------------------------------------------------


def categories_key(column: str, max_categories: int) -> str:
    return f"{column}:{max_categories}"


def reference_categories(context: Context, column: str, max_categories: int) -> list[str] | None:
    return context.profile.metrics.get("categories", {}).get(categories_key(column, max_categories))


def complete_drift_categories(profile: Any, column: str) -> list[str] | None:
    """A categorical drift column's reference categories, when they hold every reference value."""
    for bins in profile.bins.values():
        if bins.column != column or bins.kind != "categorical":
            continue
        kept_at_most = int(bins.binning.split(":")[1])  # the binning key is "categories:<max_categories>"
        if len(bins.categories) < kept_at_most:  # fewer than the cap: none were cut off
            return list(bins.categories)
    return None


# -- freshness and schema --------------------------------------------------------------------------


def freshness_branch(query: WindowQuery, timestamp: str, now: datetime) -> ir.Table:
    """The newest timestamp of the whole source at or before now, in seconds since the epoch."""
    source = query.source
    seen = source.filter(source[timestamp] <= ibis.literal(now))
    newest = seen[timestamp].max()
    if newest.type().is_date():
        newest = newest.cast("timestamp")
    return seen.aggregate(newest=newest.epoch_seconds())


def freshness(figures: SegmentFigures, now: datetime) -> Value:
    newest = figures.branch("freshness")["newest"]
    if newest is None:
        return Value.missing(Reason(reasons.EMPTY_WINDOW, "the source has no rows at or before now"))
    hours = ((now - EPOCH).total_seconds() - newest) / 3600
    return Value(hours, None, {"newest": pd.Timestamp(newest, unit="s").isoformat()})


def schema_of(table: ir.Table) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in table.schema().items()}


def schema_change(previous: dict[str, str] | None, current: dict[str, str]) -> Value:
    details: dict[str, Any] = {"columns": current}
    if previous is None:
        return Value.missing(Reason(reasons.NO_PREVIOUS_RUN, "no previous run to compare with"), **details)
    added = sorted(set(current) - set(previous))
    removed = sorted(set(previous) - set(current))
    retyped = {c: [previous[c], current[c]] for c in current if c in previous and previous[c] != current[c]}
    details.update(added=added, removed=removed, retyped=retyped)
    return Value(float(len(added) + len(removed) + len(retyped)), None, details)


def previous_schema_query(history: ir.Table, monitor: str, window: Window) -> ir.Table:
    """The details of the latest schema_change result of an earlier window of ``monitor``
    (every one lists the columns it saw, judged or not)."""
    found = history.filter(
        (history.monitor == monitor)
        & (history.check_type == "quality")  # not a custom metric that happens to share the name
        & (history.metric == "schema_change")
        & history.segment_key.isnull()
        & (history.window_start < ibis.literal(window.start))
    )
    return found.order_by(ibis.desc(found.window_start)).limit(1).select("details")


def read_previous_schema(frame: pd.DataFrame) -> dict[str, str] | None:
    if frame.empty or frame.details.iloc[0] is None:
        return None
    return json.loads(frame.details.iloc[0]).get("columns")


def _column_value(metric: ColumnMetric, own: float | None, f: Figures, column: str) -> Value:
    """A column metric's value from its aggregate (``own``) and the column's counts, with the
    sample it is measured on as ``n`` and the counts in the details."""
    counts = {"rows": f.count(ROWS_KEY), "valid": f.count(valid_key(column))}
    details: dict[str, Any] = {"rows": counts["rows"], "non_null": counts["valid"]}
    if metric.sample == "summable":
        n_finite, counts["summable"] = f.count(_finite_key(column)), f.count(_summable_key(column))
        details.update(infinite_values=counts["valid"] - n_finite, huge_values=n_finite - counts["summable"])
    value = metric.value(own, counts["valid"], counts["rows"])
    if value is None:
        details.update((metric.undefined if counts["rows"] else NOTHING_TO_MEASURE).details)
    return Value(value, counts[metric.sample], details)


# -- the check kind ----------------------------------------------------------------------------------


class Quality(CheckKind):
    check_type = "quality"

    def columns(self, check: QualityCheck, monitor: Monitor) -> list[str | None]:
        if check.metric in TABLE_METRICS:
            return [None]
        return list(selected_columns(check.columns or "features", monitor))

    def segmented(self, check: QualityCheck) -> bool:
        return check.metric not in UNSEGMENTED

    def sized(self, check: QualityCheck) -> bool:
        return check.metric not in TABLE_METRICS  # a small or empty window is what row_count reports

    def register(self, check: QualityCheck, query: WindowQuery, context: Context) -> None:
        query.add_sum(ROWS_KEY, lambda t: t.count())
        if check.metric == "freshness_hours":
            query.add_branch("freshness", partial(freshness_branch, timestamp=context.monitor.source.timestamp, now=context.now))
        metric = COLUMN_METRICS.get(check.metric)
        if metric is None:
            return
        for column in self.columns(check, context.monitor):
            known = reference_categories(context, column, check.max_categories)
            if check.metric == "new_category_rate" and not known:
                continue  # nothing to compare with: measured as insufficient_data
            query.add_sum(valid_key(column), lambda t, c=column: clean(t[c]).count())
            if metric.sample == "summable":
                query.add_sum(_finite_key(column), lambda t, c=column: finite(t[c]).count())
                query.add_sum(_summable_key(column), lambda t, c=column: _summable(t, c).count())
            if metric.aggregate is not None:
                add = query.add_sum if metric.additive else query.add
                add(_key(check, column), lambda t, c=column, k=known: metric.aggregate(t, c, check, k))

    def measure(self, check: QualityCheck, column: str | None, figures: SegmentFigures, context: Context) -> Value:
        f = figures.main
        if check.metric == "row_count":
            return Value(float(f.count(ROWS_KEY)), f.count(ROWS_KEY))
        if check.metric == "freshness_hours":
            return freshness(figures, context.now)
        if check.metric == "schema_change":
            return schema_change(context.previous_schema, schema_of(context.inputs.table))
        if check.metric == "new_category_rate" and not reference_categories(context, column, check.max_categories):
            return Value.missing(Reason(reasons.NO_REFERENCE, "no reference categories (an empty reference window?)"))
        return _column_value(COLUMN_METRICS[check.metric], f[_key(check, column)], f, column)

    def validate(self, check: QualityCheck, index: int, validator) -> None:
        where = ("checks", index, "quality")
        if check.metric in TABLE_METRICS:
            if check.metric in UNSEGMENTED:
                validator.no_relative_threshold(check, where, f"{check.metric} has no reference value")
            return
        try:
            columns = selected_columns(check.columns or "features", validator.spec)
        except ValueError as error:
            validator.error(str(error), (*where, "columns"))
            return
        if not columns:
            validator.error(f"{check.metric} needs columns: list them under `columns:` or declare features", where)
        for j, column in enumerate(columns):
            path = (*where, "columns", j) if isinstance(check.columns, list) else (*where, "columns")
            validator.column(column, path, numeric=check.metric in NUMERIC_METRICS)


def needed_columns(check: QualityCheck, monitor: Monitor) -> list[str]:
    return [c for c in Quality().columns(check, monitor) if c is not None]
