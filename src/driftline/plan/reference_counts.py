"""The reference's bin counts read off the scans that find its edges, so that a first run's
counting query reads the current window only.

On DuckDB the exact edges come from ``bracketed_quantiles``, whose steps 2 and 3 group by the
counting query's segment keys: per combination of segment values, they know how many finite
values lie below any edge (:meth:`ColumnScan.count_below`). Categorical columns are counted per
combination by the categories query (``histograms.categories_query`` with keys). The rest is
asked of step 2 as its :func:`tallies`: the rows and each categorical column's non-null values
(step 2's histograms count a numeric column's infinities in buckets of their own). On the benchmark this replaces counting the reference again: 1.5 s of a 6 s
first run (benchmarks/RESULTS.md).

:func:`derived_counts` returns the reference's rows of the counting query as that query would
(its portable layout: ``__rows``, ``c<c>_n``, ``c<c>_<k>``), so ``histograms.rollup`` and
everything after it are shared. Counts are derived only when every column's are: a
uniform-binned column, a column whose edges fell back to ``quantile_cont`` or whose values were
picked in the warehouse (``FETCH_BUDGET``), or too many combinations of segment values to group
by (``MAX_COMBINATIONS``) send the whole reference back to the counting query.
"""

from __future__ import annotations

from typing import Sequence

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from driftline.plan.bracketed_quantiles import BracketedEdges, ColumnScan, Combo, combos_of
from driftline.plan.columns import DriftColumn
from driftline.plan.histograms import ROWS, CountLayout, as_text, clean
from driftline.plan.profile import ColumnBins
from driftline.plan.source import REFERENCE, SIDE


def tallies(reference: ir.Table, columns: Sequence[DriftColumn]) -> dict[str, ir.Scalar]:
    """What step 2 counts besides the ranks: the rows, and each categorical column's non-null
    values (a numeric column's, infinities included, are in its histogram)."""
    layout = CountLayout((), ())
    metrics: dict[str, ir.Scalar] = {ROWS: reference.count()}
    for c, column in enumerate(columns):
        if column.binning.kind == "categorical":
            metrics[layout.valid_alias(c)] = as_text(clean(reference[column.name])).count()
    return metrics


def derivable(columns: Sequence[DriftColumn]) -> bool:
    """Whether the reference's counts can come from the edge scans at all: there are numeric
    columns (else there are no such scans) and all have quantile edges (uniform edges, from
    min and max, need no scan that could count)."""
    numeric = [c for c in columns if c.binning.kind == "numeric"]
    return bool(numeric) and all(c.binning.method != "uniform" for c in numeric)


def derived_counts(
    columns: Sequence[DriftColumn],
    bins: Sequence[ColumnBins],
    segments: Sequence[str],
    scan: BracketedEdges,
    categories: pd.DataFrame | None,
) -> pd.DataFrame | None:
    """The reference's rows of the counting query (``bins`` in ``columns``' order); None when
    some column's counts are not known."""
    if scan.tallies is None:
        return None
    layout = CountLayout(tuple(bins), tuple(segments))
    keys = [layout.segment_alias(i) for i in range(len(segments))]
    tallied = scan.tallies
    combos = combos_of(tallied, keys)
    frame = {SIDE: [REFERENCE] * len(tallied), **{k: tallied[k].to_numpy() for k in keys}, ROWS: tallied[ROWS].to_numpy()}
    numeric = [c for c, column in enumerate(columns) if column.binning.kind == "numeric"]  # i-th: scan.scans[i]
    for c, (column, column_bins) in enumerate(zip(columns, bins)):
        if column_bins.kind == "categorical":
            valid = tallied[layout.valid_alias(c)].fillna(0).to_numpy(dtype="int64")
            steps = _category_counts(categories, column, column_bins, keys, combos)
        else:
            column_scan = scan.scans.get(numeric.index(c))
            if column_scan is None:  # edges from quantile_cont, or no finite reference value
                return None
            valid = np.array([column_scan.by_combo[k].n + sum(column_scan.infinite[k]) for k in combos], dtype="int64")
            steps = _at_least(column_scan, column_bins, combos)
        if steps is None:
            return None
        frame[layout.valid_alias(c)] = valid
        frame |= {layout.step_alias(c, k): counts for k, counts in enumerate(steps)}
    return pd.DataFrame(frame)


def _at_least(column_scan: ColumnScan, column_bins: ColumnBins, combos: list[Combo]) -> list[np.ndarray] | None:
    """Per edge, per combination: the values >= edge, which are the finite ones not below it
    and the +inf."""
    steps = []
    for edge in column_bins.edges:
        below = column_scan.count_below(edge)
        if below is None:
            return None
        steps.append(np.array([column_scan.by_combo[k].n - below[k] + column_scan.infinite[k][1] for k in combos], dtype="int64"))
    return steps


def _category_counts(categories: pd.DataFrame | None, column: DriftColumn, column_bins: ColumnBins, keys: list[str], combos: list[Combo]) -> list[np.ndarray]:
    """Per kept category, per combination: its values (the categories query's ``n``)."""
    if categories is None or not column_bins.categories:
        return []
    mine = categories[(categories.column == column.name) & (categories.binning == column.binning.key)]
    counted = {(value, combo): int(n) for value, combo, n in zip(mine.value.astype(str), combos_of(mine, keys), mine.n)}
    return [np.array([counted.get((category, combo), 0) for combo in combos], dtype="int64") for category in column_bins.categories]
