"""Histograms in the warehouse: bin edges and categories of the reference, then the counts of
every drift column × segment × window in ONE query.

The counting query is one GROUP BY over the segment columns with conditional counts as
aggregates (``sum(x >= edge)`` per edge, ``sum(x = category)`` per category): a single scan,
portable to every backend (no GROUPING SETS), whose result has one row per combination of
segment values. Overall and per-segment counts are sums of those rows, done in Python on a
frame of at most (segment combinations × bins × columns) numbers.

Where the backend has a native histogram aggregate (DuckDB), a column's bins are counted by ONE
such aggregate instead of one conditional sum per bin; :func:`expand_histograms` turns its map
back into the same step counts, so everything after the query is shared.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Sequence

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from driftline import dialects
from driftline.plan.aggregates import add_up_per_segment, count_where
from driftline.plan.columns import DriftColumn
from driftline.plan.profile import ColumnBins, distinct_edges, uniform_edges
from driftline.plan.source import SIDE

ROWS = "__rows"
SEGMENT_KEY = "__seg{}"  # the i-th segment column's value, a key of the counting query


def clean(value: ir.Column) -> ir.Column:
    """NaN becomes null: SPEC §6 excludes both from distributions."""
    if value.type().is_floating():
        return ibis.ifelse(value.isnan(), ibis.null(value.type()), value)
    return value


def finite(value: ir.Column) -> ir.Column:
    """Only finite values set edges: an infinite quantile would make empty, unbounded bins.

    ``BETWEEN -max AND max`` is the portable finiteness test (``isinf()`` compiles to a constant
    false on Spark); NaN fails it too.
    """
    if value.type().is_floating():
        return ibis.ifelse(value.between(-sys.float_info.max, sys.float_info.max), value, ibis.null(value.type()))
    return value


def as_text(value: ir.Column) -> ir.Column:
    return value if value.type().is_string() else value.cast("string")


# -- the reference's edges and categories ------------------------------------------------------


# Where the backend's approximate quantile is slower than an exact one over a sample (DuckDB's
# t-digest took 5.3 s for 20 columns of 4M rows, exact quantiles of a Bernoulli sample of about
# 150,000 rows 0.95 s, a plain scan 0.9 s), approximate edges are the sample's exact quantiles.
# A uniform sample of 150,000 rows puts a quantile's rank within ±1 point (SPEC §6) with a
# standard error of at most 0.13 points; a reference of at most that many rows is used whole,
# which makes its edges exact. The sampling rate comes from the reference's row count, counted
# by a query of its own (:func:`reference_size_query`): the count inside the edges query would
# read the reference twice, and DuckDB then holds all of it in memory (1.5 GB instead of 0.6 GB
# for 4M rows).
SAMPLE_ROWS = 150_000
SIZE = "n"  # the column of the reference size query


def samples(columns: Sequence[DriftColumn], dialect: str) -> bool:
    """Whether the edges query samples the reference (and so needs its size first)."""
    return dialects.samples_for_approximate_quantiles(dialect) and any(_approximate(c) for c in columns)


def reference_size_query(reference: ir.Table, columns: Sequence[DriftColumn], dialect: str) -> ir.Table | None:
    """The reference's row count, when the edges query samples; else None."""
    return reference.aggregate(**{SIZE: reference.count()}) if samples(columns, dialect) else None


def edges_query(reference: ir.Table, columns: Sequence[DriftColumn], dialect: str, reference_rows: int | None = None) -> ir.Table | None:
    """One aggregate row with the quantiles (or min and max) that become numeric edges, in one
    pass over the reference. Where the backend samples (``reference_rows``: the reference's size,
    see :func:`reference_size_query`, above ``SAMPLE_ROWS``), an approximate column's edges are
    the data values at its quantiles' positions in a Bernoulli sample: no interpolation, so an
    edge inside a run of tied values is that value and cuts where an exact quantile would."""
    numeric = list(enumerate(c for c in columns if c.binning.kind == "numeric"))
    if not numeric:
        return None
    sampling = samples(columns, dialect) and bool(reference_rows) and reference_rows > SAMPLE_ROWS
    rows, kept = _sampled(reference, numeric, reference_rows) if sampling else (reference, None)
    metrics: dict[str, ir.Scalar] = {}
    for i, column in numeric:
        values = finite(rows[column.name]).cast("float64")
        probabilities = quantile_probabilities(column)
        if column.binning.method == "uniform":
            metrics |= {f"e{i}_min": values.min(), f"e{i}_max": values.max()}
        elif sampling and _approximate(column):
            metrics |= _quantile_metrics(i, dialects.discrete_quantiles(values, probabilities, dialect, kept))
        elif column.binning.exact or dialects.samples_for_approximate_quantiles(dialect):
            metrics |= _quantile_metrics(i, dialects.quantiles(values, probabilities, dialect))
        else:
            metrics |= _quantile_metrics(i, dialects.approximate_quantiles(values, probabilities, dialect))
    return rows.aggregate(**metrics)


def _sampled(reference: ir.Table, numeric: list[tuple[int, DriftColumn]], reference_rows: int) -> tuple[ir.Table, ir.BooleanValue | None]:
    """The rows the edges query aggregates, and the condition a sampled column's aggregates
    keep rows by. The draw is a column of its own (next to a subquery DuckDB draws a filter's
    random() once per query). When every numeric column is sampled, the query keeps only the
    sample (a filter: 1.3 s for 20 columns of 4M rows); otherwise the sampled aggregates filter
    their own rows (FILTER (WHERE ...): 2.9 s), since the others need every row."""
    draws = reference.mutate(__draw=ibis.random())
    kept = draws.__draw < ibis.literal(SAMPLE_ROWS / reference_rows)
    if all(_approximate(c) for _, c in numeric):
        return draws.filter(kept), None
    return draws, kept


def _quantile_metrics(i: int, quantiles: list[ir.Scalar]) -> dict[str, ir.Scalar]:
    return {f"e{i}_q{k}": q for k, q in enumerate(quantiles)}


def _approximate(column: DriftColumn) -> bool:
    return column.binning.method == "quantile" and not column.binning.exact


def quantile_probabilities(column: DriftColumn) -> list[float]:
    """SPEC §6: the reference quantiles at k/bins, k = 1..bins-1."""
    return [k / column.binning.bins for k in range(1, column.binning.bins)]


def categories_query(reference: ir.Table, columns: Sequence[DriftColumn]) -> ir.Table | None:
    """The ``max_categories`` most frequent values of each categorical column (ties by value):
    one row per kept value, with its ``rank``."""
    parts = []
    for column in (c for c in columns if c.binning.kind == "categorical"):
        value = as_text(clean(reference[column.name]))
        counted = reference.filter(value.notnull()).group_by(value=value).aggregate(n=ibis._.count())
        rank = ibis.row_number().over(order_by=[ibis.desc(counted.n), counted.value])
        top = counted.mutate(rank=rank).filter(ibis._.rank < column.binning.max_categories)
        labels = {"column": ibis.literal(column.name), "binning": ibis.literal(column.binning.key)}
        parts.append(top.select(**labels, value="value", n="n", rank="rank"))
    return ibis.union(*parts, distinct=False) if parts else None


def segment_keys(rows: ir.Table, segments: Sequence[str]) -> dict[str, ir.Value]:
    """What the counting query groups by: the i-th segment column's value, as text, as ``__seg<i>``."""
    return {SEGMENT_KEY.format(i): as_text(rows[s]) for i, s in enumerate(segments)}


def finish_bins(columns: Sequence[DriftColumn], edges: pd.Series | None, categories: pd.DataFrame | None) -> dict[tuple[str, str], ColumnBins]:
    """Turn the two small query results into one ColumnBins per (column, binning)."""
    bins: dict[tuple[str, str], ColumnBins] = {}
    for i, column in enumerate(c for c in columns if c.binning.kind == "numeric"):
        if column.binning.method == "uniform":
            cut = uniform_edges(_number(edges[f"e{i}_min"]), _number(edges[f"e{i}_max"]), column.binning.bins)
        else:
            cut = distinct_edges([_number(edges[f"e{i}_q{k}"]) for k in range(column.binning.bins - 1)])
        bins[column.key] = ColumnBins(column.name, column.binning.key, "numeric", edges=cut)
    for column in (c for c in columns if c.binning.kind == "categorical"):
        mine = categories[(categories.column == column.name) & (categories.binning == column.binning.key)] if categories is not None else None
        kept = tuple(mine.sort_values("rank").value.astype(str)) if mine is not None else ()
        bins[column.key] = ColumnBins(column.name, column.binning.key, "categorical", categories=kept)
    return bins


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


# -- the counts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountLayout:
    """Which aggregate column of the counting query holds what. ``native[c]``: column ``c`` is
    counted by the backend's histogram aggregate (see :func:`native_histogram_columns`)."""

    bins: tuple[ColumnBins, ...]
    segments: tuple[str, ...]
    native: tuple[bool, ...] = ()

    def is_native(self, c: int) -> bool:
        return bool(self.native) and self.native[c]

    def histogram_alias(self, c: int) -> str:
        return f"c{c}_h"

    def segment_alias(self, i: int) -> str:
        return SEGMENT_KEY.format(i)

    def valid_alias(self, c: int) -> str:
        return f"c{c}_n"

    def step_alias(self, c: int, k: int) -> str:
        return f"c{c}_{k}"


def native_histogram_columns(bins: Sequence[ColumnBins], dialect: str) -> tuple[bool, ...]:
    """Which columns the backend's histogram aggregate counts: those with at least two bins."""
    if not dialects.has_native_histogram(dialect):
        return ()
    return tuple(b.size > 1 for b in bins)


def counts_query(rows: ir.Table, layout: CountLayout) -> ir.Table:
    """ONE grouped aggregate: per side and segment combination, conditional counts per bin."""
    metrics: dict[str, ir.Scalar] = {ROWS: rows.count()}
    for c, column_bins in enumerate(layout.bins):
        value = clean(rows[column_bins.column])
        if column_bins.kind == "categorical":
            value = as_text(value)
        if layout.is_native(c):
            metrics[layout.histogram_alias(c)] = _native_histogram(value, column_bins)
            if column_bins.kind == "categorical":  # values outside the kept categories are not in its map
                metrics[layout.valid_alias(c)] = value.count()
            continue
        metrics[layout.valid_alias(c)] = value.count()
        if column_bins.kind == "categorical":
            steps = [value == category for category in column_bins.categories]
        else:
            steps = [value >= edge for edge in column_bins.edges]
        for k, step in enumerate(steps):
            metrics[layout.step_alias(c, k)] = count_where(step)
    return rows.group_by(rows[SIDE], **segment_keys(rows, layout.segments)).aggregate(**metrics)


def _native_histogram(value: ir.Column, column_bins: ColumnBins) -> ir.Scalar:
    """One map aggregate for all bins of a column. Numeric: the histogram counts values in
    (b_prev, b], the bins are [e_prev, e): so it counts -x against the boundaries -e."""
    if column_bins.kind == "categorical":
        return dialects.position_histogram(value, column_bins.categories)
    return dialects.bounded_histogram(-value.cast("float64"), sorted(-edge for edge in column_bins.edges))


def expand_histograms(frame: pd.DataFrame, layout: CountLayout) -> pd.DataFrame:
    """The counting result with every native histogram replaced by the step counts the portable
    query computes (``x >= edge`` per edge, ``x = category`` per category)."""
    expanded: dict[str, np.ndarray] = {}
    native = [layout.histogram_alias(c) for c in range(len(layout.bins)) if layout.is_native(c)]
    for c, column_bins in enumerate(layout.bins):
        if not layout.is_native(c):
            continue
        maps = [dict(counts) if counts is not None else {} for counts in frame[layout.histogram_alias(c)]]
        steps = np.array([_steps_of(counts, column_bins) for counts in maps], dtype="int64")
        steps = steps.reshape(len(frame), column_bins.size - 1)
        expanded |= {layout.step_alias(c, k): steps[:, k] for k in range(column_bins.size - 1)}
        if column_bins.kind == "numeric":
            expanded[layout.valid_alias(c)] = np.array([sum(counts.values()) for counts in maps], dtype="int64")
    steps_frame = pd.DataFrame(expanded, index=frame.index)
    return pd.concat([frame.drop(columns=native), steps_frame], axis=1)


def _steps_of(counts: dict, column_bins: ColumnBins) -> list[int]:
    if column_bins.kind == "categorical":
        return [int(counts.get(k + 1, 0)) for k in range(len(column_bins.categories))]
    # x >= e  <=>  -x <= -e: the counts of every boundary up to -e. The map's keys are the
    # boundaries exactly as sent (backends writes DOUBLE literals DuckDB reads without rounding).
    return [sum(int(n) for bound, n in counts.items() if bound <= -edge) for edge in column_bins.edges]


def rollup(frame: pd.DataFrame, layout: CountLayout) -> dict[tuple[str, str | None, str | None], pd.Series]:
    """Sums of the counting rows: overall, and per value of each segment column, per side."""
    frame = expand_histograms(frame, layout)
    value_columns = [c for c in frame.columns if c != SIDE and not c.startswith("__seg")]
    values = frame[value_columns].apply(pd.to_numeric).fillna(0).astype("int64")
    totals: dict[tuple[str, str | None, str | None], pd.Series] = {}
    for side in frame[SIDE].dropna().unique():
        rows = frame[SIDE] == side
        segment_values = {s: frame.loc[rows, layout.segment_alias(i)] for i, s in enumerate(layout.segments)}
        for key, sums in add_up_per_segment(values[rows], segment_values).items():
            totals[(side, *key)] = sums
    return totals


def bin_counts(totals: pd.Series, layout: CountLayout, c: int) -> list[int]:
    """Counts per bin of column ``c`` from its ``valid`` and step aggregates."""
    column_bins = layout.bins[c]
    valid = int(totals[layout.valid_alias(c)])
    steps = [int(totals[layout.step_alias(c, k)]) for k in range(column_bins.size - 1)]
    if column_bins.kind == "categorical":
        return [*steps, valid - sum(steps)]
    # steps are "x >= edge_k", decreasing in k: bin i holds edge_i <= x < edge_(i+1)
    upper = [valid, *steps]
    return [upper[i] - (upper[i + 1] if i + 1 < len(upper) else 0) for i in range(len(upper))]
