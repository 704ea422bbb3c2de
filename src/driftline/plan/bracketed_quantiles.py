"""Exact quantile edges without sorting the reference, where the warehouse can count a column
against a list of boundaries in one aggregate (DuckDB's ``histogram``).

SPEC §6 wants the reference's exact quantiles, linearly interpolated as numpy's default.
``quantile_cont`` finds them by holding every value of a column and sorting it on one thread:
on a 4M-row reference about half a second per column, most of a first run. The same numbers
come from three light scans:

1. **brackets**: a reservoir sample of m values gives, around each probability p, the sample
   quantiles at p ± j·w/8, j ≤ 8, with w = 2/√m: four standard errors of a sample quantile
   (±0.0078 for m = 65,536), and the sample's min and max. A reference no bigger than the
   sample is all in it, so its brackets never miss;
2. **ranks**: one histogram per column against those values tells how many reference values lie
   at or below each of them. Every bracket value b is preceded by the next smaller double, so
   a value repeated many times has a bucket (b⁻, b] of its own. The two values numpy
   interpolates between (ranks floor and ceil of (n − 1)p) then lie in known buckets, or are a
   bracket value themselves;
3. **values**: the values of the buckets still needed (a few thousand each) are sorted in the
   warehouse, which returns only the two values per edge.

A column with a rank outside its brackets (a sample that unlucky is rare) gets its edges from
``quantile_cont`` in one more query (DuckDB's interpolation, which can differ from numpy's in
the last bit). The result has the keys of the row ``histograms.edges_query`` returns
(``e{i}_q{k}``, ``e{i}_min``, ``e{i}_max``), so ``finish_bins`` reads either.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from driftline import backends
from driftline.plan.columns import DriftColumn
from driftline.plan.histograms import edge_metrics, finite, quantile_probabilities

SAMPLE_SIZE = 65_536
BRACKET_STEPS = 8  # bracket values on each side of a probability

Execute = Callable[[ir.Table], pd.DataFrame]
Bucket = tuple[float, float]  # (low, high]: the values strictly above low, up to high


@ibis.udf.agg.builtin(name="reservoir_quantile")
def _reservoir_quantiles(arg: dt.float64, quantiles: dt.Array(dt.float64), sample_size: dt.int64) -> dt.Array(dt.float64):
    """DuckDB: the quantiles of a uniform reservoir sample of ``sample_size`` values."""


def bracketed_edges(reference: ir.Table, columns: Sequence[DriftColumn], execute: Execute, sample_size: int = SAMPLE_SIZE) -> pd.Series | None:
    """The one row of numeric edge figures ``histograms.edges_query`` computes, exactly."""
    numeric = [c for c in columns if c.binning.kind == "numeric"]
    if not numeric:
        return None
    first = execute(brackets_query(reference, numeric, sample_size)).iloc[0]
    figures = {k: first[k] for k in first.index if k.endswith(("_min", "_max"))}  # uniform binning
    quantiled = {i: c for i, c in enumerate(numeric) if c.binning.method != "uniform"}
    brackets = {i: _with_predecessors(first[f"s{i}"]) for i in quantiled}
    ranked = _ranks(reference, numeric, {i: b for i, b in brackets.items() if b}, execute)
    located = {i: [_locate(ranked[i], r) for r in _ranks_needed(ranked[i], quantiled[i])] for i in ranked}
    fetched = _fetch(reference, numeric, ranked, located, execute)
    missed = []
    for i, column in quantiled.items():
        if i not in ranked or ranked[i].n == 0:  # no finite value: no quantiles, as quantile_cont
            figures |= {f"e{i}_q{k}": None for k in range(len(quantile_probabilities(column)))}
            continue
        values = [_value_of(target, fetched.get(i, {})) for target in located[i]]
        if any(v is None for v in values):
            missed.append(i)
            continue
        figures |= {f"e{i}_q{k}": q for k, q in enumerate(_interpolated(ranked[i].n, column, values))}
    if missed:
        figures |= _exact_fallback(reference, numeric, missed, execute)
    return pd.Series(figures, dtype="object")


# -- 1. brackets ------------------------------------------------------------------------------------


def _bracket_probabilities(column: DriftColumn, sample_size: int) -> list[float]:
    step = 2 / math.sqrt(sample_size) / BRACKET_STEPS
    around = {round(p + j * step, 9) for p in quantile_probabilities(column) for j in range(-BRACKET_STEPS, BRACKET_STEPS + 1)}
    return sorted({0.0, 1.0} | {p for p in around if 0.0 < p < 1.0})


def brackets_query(reference: ir.Table, columns: Sequence[DriftColumn], sample_size: int = SAMPLE_SIZE) -> ir.Table | None:
    """Step 1: the sample quantiles around each edge's probability (and min and max of the
    uniform-binned columns, which need nothing more)."""
    numeric = [c for c in columns if c.binning.kind == "numeric"]
    metrics: dict[str, ir.Scalar] = {}
    for i, column in enumerate(numeric):
        if column.binning.method == "uniform":
            metrics |= edge_metrics(reference, i, column, "duckdb")
        else:
            values = finite(reference[column.name]).cast("float64")
            grid = ibis.literal(_bracket_probabilities(column, sample_size), type="array<float64>")
            metrics[f"s{i}"] = _reservoir_quantiles(values, grid, ibis.literal(sample_size, "int64"))
    return reference.aggregate(**metrics) if metrics else None


def _with_predecessors(sample) -> list[float]:
    """The sample quantiles, each preceded by the next smaller double; [] without values."""
    if sample is None or (not isinstance(sample, (list, np.ndarray)) and pd.isna(sample)):
        return []
    points = {float(v) for v in sample if v is not None and math.isfinite(float(v))}
    return sorted(points | {math.nextafter(v, -math.inf) for v in points})


# -- 2. ranks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    """A column's histogram against its brackets: ``bounds[j]`` closes bucket j, which holds
    the values of ranks ``[below[j], below[j + 1])``; the last bucket may be +inf (values above
    every bracket). ``n``: the column's finite values."""

    bounds: list[float]
    below: list[int]

    @property
    def n(self) -> int:
        return self.below[-1]

    def size(self, bucket: Bucket) -> int:
        j = self.bounds.index(bucket[1])
        return self.below[j + 1] - self.below[j]


def _ranks(reference: ir.Table, numeric: list[DriftColumn], brackets: dict[int, list[float]], execute: Execute) -> dict[int, Ranked]:
    if not brackets:
        return {}
    metrics = {f"h{i}": backends.bounded_histogram(finite(reference[numeric[i].name]).cast("float64"), b) for i, b in brackets.items()}
    row = execute(reference.aggregate(**metrics)).iloc[0]
    ranked = {}
    for i in brackets:
        counts = dict(row[f"h{i}"]) if row[f"h{i}"] is not None else {}
        bounds = sorted(counts)
        ranked[i] = Ranked(bounds, [0, *np.cumsum([int(counts[b]) for b in bounds]).tolist()])
    return ranked


def _ranks_needed(ranked: Ranked | None, column: DriftColumn) -> list[int]:
    """The 0-based ranks numpy's linear method reads: floor and ceil of (n − 1)p, per p."""
    if ranked is None or ranked.n == 0:
        return []
    ranks = []
    for p in quantile_probabilities(column):
        below = math.floor((ranked.n - 1) * p)
        ranks += [below, min(below + 1, ranked.n - 1)]
    return ranks


Target = tuple[Bucket, int]  # a bucket, and a rank within it
Located = float | Target | None  # a value, a target to fetch, or outside the brackets


def _locate(ranked: Ranked, rank: int) -> Located:
    """The value of ``rank`` when its bucket holds one value only, else its bucket and its rank
    within it; None when the rank lies outside the brackets."""
    j = bisect.bisect_right(ranked.below, rank) - 1  # below[j] <= rank < below[j + 1]
    if j == 0 or not math.isfinite(ranked.bounds[j]):
        return None
    low, high = ranked.bounds[j - 1], ranked.bounds[j]
    return high if math.nextafter(high, -math.inf) == low else ((low, high), rank - ranked.below[j])


# -- 3. values --------------------------------------------------------------------------------------


def _fetch(reference: ir.Table, numeric: list[DriftColumn], ranked: dict[int, Ranked], located: dict[int, list[Located]], execute: Execute) -> dict[int, dict[Target, float | None]]:
    """The values at the (bucket, rank) targets, picked in the warehouse: per column, the
    values of its buckets sorted into one list, read at each target's position in it."""
    wanted = {i: sorted({t for t in found if isinstance(t, tuple)}) for i, found in located.items()}
    wanted = {i: targets for i, targets in wanted.items() if targets}
    if not wanted:
        return {}
    sorted_values, picks = {}, {}
    for i, targets in wanted.items():
        buckets = sorted({bucket for bucket, _ in targets})
        starts = dict(zip(buckets, itertools.accumulate((ranked[i].size(b) for b in buckets), initial=0)))
        # The raw column: NaN, ±inf and null fall outside every finite bucket by themselves.
        value = reference[numeric[i].name].cast("float64")
        sorted_values[f"l{i}"] = value.collect(where=_inside(value, buckets)).sort()
        picks[i] = [starts[bucket] + rank for bucket, rank in targets]
    lists = reference.aggregate(**sorted_values)
    row = execute(lists.select(**{f"v{i}": ibis.array([lists[f"l{i}"][p] for p in at]) for i, at in picks.items()})).iloc[0]
    return {i: dict(zip(targets, _numbers(row[f"v{i}"], len(targets)))) for i, targets in wanted.items()}


def _numbers(values, count: int) -> list[float | None]:
    if values is None:
        return [None] * count
    return [None if v is None or pd.isna(v) else float(v) for v in values]


def _inside(value: ir.FloatingColumn, buckets: list[Bucket]) -> ir.BooleanValue:
    """``value`` in one of the sorted, disjoint ``buckets``, tested as a binary search (a CASE
    tree): about log2(buckets) comparisons per row instead of two per bucket."""
    if len(buckets) == 1:
        low, high = buckets[0]
        return (value > low) & (value <= high)
    middle = len(buckets) // 2
    return ibis.ifelse(value <= buckets[middle - 1][1], _inside(value, buckets[:middle]), _inside(value, buckets[middle:]))


def _value_of(target: Located, fetched: dict[Target, float | None]) -> float | None:
    return fetched.get(target) if isinstance(target, tuple) else target


# -- the edges ------------------------------------------------------------------------------------


def _interpolated(n: int, column: DriftColumn, values: list[float]) -> list[float]:
    """numpy's linear method from the two values around each virtual index (n − 1)p."""
    edges = []
    for p, low, high in zip(quantile_probabilities(column), values[::2], values[1::2]):
        virtual = (n - 1) * p
        gamma = virtual - math.floor(virtual) if virtual < n - 1 else 0.0
        difference = high - low
        edges.append(high - difference * (1 - gamma) if gamma >= 0.5 else low + difference * gamma)
    return edges


def _exact_fallback(reference: ir.Table, numeric: list[DriftColumn], missed: list[int], execute: Execute) -> dict[str, float | None]:
    metrics = {k: v for i in missed for k, v in edge_metrics(reference, i, numeric[i], "duckdb").items()}
    row = execute(reference.aggregate(**metrics)).iloc[0]
    return {k: row[k] for k in metrics}
