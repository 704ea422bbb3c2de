"""Exact two-sample Kolmogorov–Smirnov D and Wasserstein-1 distance, computed in the warehouse.

Both statistics compare the empirical distribution functions (ECDFs) of the reference and the
current values of one numeric column. The warehouse sorts the union of the two windows and walks
it with window functions; only one small row per segment comes back to Python:

1. tag every row with its side and stack the table once per grouping (overall, then one copy
   per segment column with that column's value as the segment);
2. collapse to distinct values: per (segment, value), how many reference and current rows hold
   it. Ties are then one row, so an ECDF is read *after* all tied values, as scipy does;
3. running sums over the distinct values in order give both ECDFs at every value;
4. D = max |F_ref − F_cur|; W1 = Σ |F_ref(x_i) − F_cur(x_i)| · (x_{i+1} − x_i) over
   consecutive distinct finite values.

The reference's standard deviation σ (which normalises W1) leaves out values beyond ±1e150, like
infinities, and reads values and deviations below 1e-100 as 0: their squares would overflow or
underflow, which fails the whole query on PostgreSQL. D and W1 have no squares and stay exact.

>>> import ibis
>>> reference = ibis.memtable({"x": [1.0, 2.0, 3.0]})
>>> current = ibis.memtable({"x": [2.0, 3.0, 4.0]})
>>> row = exact_distances(reference, current, "x").execute().iloc[0]
>>> print(f"{row.ks_statistic:.4f} {row.wasserstein:.4f} {row.reference_std:.4f}")
0.3333 1.0000 0.8165
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

REFERENCE, CURRENT = 0, 1

# Bounds of the float64 range. `value BETWEEN -MAX AND MAX` is the portable finiteness test:
# ibis' `isinf()` compiles to a constant FALSE on Spark and Databricks, which would silently let
# infinities into the Wasserstein sum.
_LARGEST_DOUBLE = sys.float_info.max

_SEGMENT = ("segment_key", "segment_value")

# σ is measured on the reference values within ±SIGMA_LIMIT: their squared deviations (up to
# 4e300) cannot overflow. Values and deviations below NEGLIGIBLE count as 0, so that no square,
# product or quotient underflows (PostgreSQL raises "value out of range: underflow" where one
# rounds to 0). That changes σ only where it is far below 1e-3, which W1 is divided by anyway
# (max(σ, 1e-3)).
SIGMA_LIMIT = 1e150
NEGLIGIBLE = 1e-100


def exact_distances(
    reference: ir.Table,
    current: ir.Table,
    column: str,
    segment_columns: Sequence[str] = (),
) -> ir.Table:
    """Exact KS D and Wasserstein-1 of ``column``, overall and per segment, as one expression.

    ``reference`` and ``current`` are the rows of the two windows, already filtered, with the
    same schema. Nothing is executed: the result is an ibis table with one row for the overall
    comparison (``segment_key`` and ``segment_value`` null) and one row per value of each
    segment column (``segment_key`` = the column name, ``segment_value`` = the value as text),
    and the columns:

    - ``n_reference``, ``n_current`` (int64): non-null, non-NaN values on each side;
    - ``ks_statistic`` (float64): ``scipy.stats.ks_2samp(ref, cur).statistic``. Nulls and NaN
      are excluded; ±inf take part, since they order like any other value;
    - ``wasserstein`` (float64): ``scipy.stats.wasserstein_distance(ref, cur)``, raw (not
      normalised), over the *finite* values only: W1 is undefined when a side holds an infinity;
    - ``reference_std`` (float64): population standard deviation of the reference values within
      ±``SIGMA_LIMIT``, values and deviations below ``NEGLIGIBLE`` read as 0, for the caller to
      normalise ``wasserstein``.

    When a side has no values the statistics are null (for ``wasserstein``: no finite values;
    for ``reference_std``: no reference value within ±``SIGMA_LIMIT``). A segment appears when
    either window has a row in it, so when both windows are empty the result has no rows at all,
    not even the overall one.
    """
    _check_numeric(reference, column)
    rows = _tag_sides(reference, current, column, segment_columns)
    stacked = _stack_groupings(rows, segment_columns)
    counts = _count_distinct_values(stacked)
    curves = _distribution_curves(counts)
    return _summarise(curves)


def _check_numeric(table: ir.Table, column: str) -> None:
    """Fail early, with the column's name, rather than deep inside the compiled SQL."""
    dtype = table.schema()[column]
    if not dtype.is_numeric():
        raise TypeError(f"exact distances need a numeric column; {column!r} is {dtype}")


def _segment_alias(position: int) -> str:
    # Positional names, so a segment column called "value" or "side" cannot collide with ours.
    return f"segment_{position}"


def _tag_sides(
    reference: ir.Table, current: ir.Table, column: str, segment_columns: Sequence[str]
) -> ir.Table:
    """Both windows in one table: ``side``, the cleaned ``value``, and each segment as text."""

    def tagged(table: ir.Table, side: int) -> ir.Table:
        segments = {
            _segment_alias(i): table[name].cast("string") for i, name in enumerate(segment_columns)
        }
        return table.select(
            side=ibis.literal(side, "int8"),
            value=_without_nan(table[column].cast("float64")),
            **segments,
        )

    return tagged(reference, REFERENCE).union(tagged(current, CURRENT), distinct=False)


def _without_nan(value: ir.FloatingValue) -> ir.FloatingValue:
    """NaN becomes null, so one rule excludes both from the distributions."""
    return ibis.ifelse(value.isnan(), ibis.null("float64"), value)


def _stack_groupings(rows: ir.Table, segment_columns: Sequence[str]) -> ir.Table:
    """One copy of the rows per grouping: overall (null key and value), then each segment column.

    Window functions need a partition per grouping, which GROUPING SETS cannot give, hence the
    union of copies.
    """
    overall = rows.select(
        segment_key=ibis.null("string"),
        segment_value=ibis.null("string"),
        side=rows.side,
        value=rows.value,
    )
    per_segment = [
        rows.select(
            segment_key=ibis.literal(name, "string"),
            segment_value=rows[_segment_alias(i)],
            side=rows.side,
            value=rows.value,
        )
        for i, name in enumerate(segment_columns)
    ]
    return ibis.union(overall, *per_segment, distinct=False)


def _count_distinct_values(stacked: ir.Table) -> ir.Table:
    """Per (segment, distinct value): the number of reference and current rows holding it.

    Null values form one group too, with both counts 0: it keeps a segment whose values are all
    null in the result, with null statistics, instead of dropping it.
    """
    counts = stacked.group_by([*_SEGMENT, "value"]).aggregate(
        reference_count=stacked.value.count(where=stacked.side == REFERENCE),
        current_count=stacked.value.count(where=stacked.side == CURRENT),
    )
    finite = counts.value.between(-_LARGEST_DOUBLE, _LARGEST_DOUBLE)
    in_sigma = counts.value.between(-SIGMA_LIMIT, SIGMA_LIMIT)
    return counts.mutate(
        finite_value=ibis.ifelse(finite, counts.value, ibis.null("float64")),
        reference_finite_count=ibis.ifelse(finite, counts.reference_count, 0),
        current_finite_count=ibis.ifelse(finite, counts.current_count, 0),
        sigma_value=ibis.ifelse(in_sigma, _negligible_as_zero(counts.value), ibis.null("float64")),
        reference_sigma_count=ibis.ifelse(in_sigma, counts.reference_count, 0),
    )


def _negligible_as_zero(value: ir.FloatingValue) -> ir.FloatingValue:
    return ibis.ifelse(value.abs() < NEGLIGIBLE, 0.0, value)


def _distribution_curves(counts: ir.Table) -> ir.Table:
    """Both ECDFs at every distinct value, and what D, W1 and the reference std add up from.

    Where the null-value row falls in the order differs between warehouses; it changes nothing,
    because its counts are 0 and its gap to a neighbour is null.
    """
    segment = ibis.window(group_by=list(_SEGMENT))
    in_order = ibis.window(group_by=list(_SEGMENT), order_by="value")
    up_to_here = ibis.cumulative_window(group_by=list(_SEGMENT), order_by="value")

    totals = counts.mutate(
        n_reference=counts.reference_count.sum().over(segment),
        n_current=counts.current_count.sum().over(segment),
        n_reference_finite=counts.reference_finite_count.sum().over(segment),
        n_current_finite=counts.current_finite_count.sum().over(segment),
        reference_below=counts.reference_count.sum().over(up_to_here),
        current_below=counts.current_count.sum().over(up_to_here),
        reference_finite_below=counts.reference_finite_count.sum().over(up_to_here),
        current_finite_below=counts.current_finite_count.sum().over(up_to_here),
        # Null when either end is not finite: the infinite stretches drop out of the sum.
        gap_to_next=counts.finite_value.lead().over(in_order) - counts.finite_value,
        n_reference_sigma=counts.reference_sigma_count.sum().over(segment),
        # Its values are 0 or at least NEGLIGIBLE, so the total is 0 or far above the smallest
        # double: dividing it by the count cannot underflow.
        reference_total=(counts.reference_sigma_count * counts.sigma_value).sum().over(segment),
    )

    ks_gap = (
        _share(totals.reference_below, totals.n_reference)
        - _share(totals.current_below, totals.n_current)
    ).abs()
    finite_gap = (
        _share(totals.reference_finite_below, totals.n_reference_finite)
        - _share(totals.current_finite_below, totals.n_current_finite)
    ).abs()
    # Two-pass variance (mean first, then squared deviations) to avoid cancellation on large
    # values, as numpy does. Each squared deviation is weighted by its share of the values, not
    # its count: the variance is then a weighted mean of squares, which cannot overflow however
    # many rows there are.
    reference_mean = totals.reference_total / _float(totals.n_reference_sigma).nullif(0)
    deviation = _negligible_as_zero(totals.sigma_value - reference_mean)
    variance_term = _share(totals.reference_sigma_count, totals.n_reference_sigma) * deviation**2

    return totals.mutate(
        ks_gap=ks_gap,
        wasserstein_term=finite_gap * totals.gap_to_next,
        variance_term=variance_term,
    )


def _summarise(curves: ir.Table) -> ir.Table:
    """One row per segment, with the statistics null where a side has nothing to compare."""
    sums = curves.group_by(list(_SEGMENT)).aggregate(
        n_reference=curves.reference_count.sum(),
        n_current=curves.current_count.sum(),
        n_reference_finite=curves.reference_finite_count.sum(),
        n_current_finite=curves.current_finite_count.sum(),
        ks_statistic=curves.ks_gap.max(),
        wasserstein=curves.wasserstein_term.sum(),
        variance=curves.variance_term.sum(),
    )
    both_sides = (sums.n_reference > 0) & (sums.n_current > 0)
    both_sides_finite = (sums.n_reference_finite > 0) & (sums.n_current_finite > 0)
    return sums.select(
        segment_key=sums.segment_key,
        segment_value=sums.segment_value,
        n_reference=sums.n_reference.cast("int64"),
        n_current=sums.n_current.cast("int64"),
        ks_statistic=_when(both_sides, sums.ks_statistic),
        # No consecutive finite values (a single distinct value) means no stretch: W1 is 0.
        wasserstein=_when(both_sides_finite, sums.wasserstein.coalesce(0.0)),
        # Null without a value within ±SIGMA_LIMIT: every term is null then.
        reference_std=_float(sums.variance).sqrt(),
    )


def _share(count: ir.IntegerValue, total: ir.IntegerValue) -> ir.FloatingValue:
    """count / total as float64, null for an empty side.

    The casts matter: PostgreSQL sums bigints into numeric, and divides by zero with an error.
    """
    return _float(count) / _float(total).nullif(0)


def _float(value: ir.NumericValue) -> ir.FloatingValue:
    return value.cast("float64")


def _when(condition: ir.BooleanValue, value: ir.FloatingValue) -> ir.FloatingValue:
    return ibis.ifelse(condition, _float(value), ibis.null("float64"))
