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
   at or below each of them (and, between the outer boundaries -inf and the largest double, how
   many are infinite). A bracket value b the sample repeats is preceded by the next smaller
   double, so a value tied many times has a bucket (b⁻, b] of its own. The two values numpy
   interpolates between (ranks floor and ceil of (n − 1)p) then lie in known buckets, or are a
   bracket value themselves;
3. **values**: the values of the buckets still needed (a few thousand each) are fetched and
   sorted; numpy's two values per edge are read off at their ranks. Past ``FETCH_BUDGET``
   values (a reference of hundreds of millions of rows) the warehouse sorts them instead and
   returns only the two values per edge.

Given the segment ``keys`` of the counting query, steps 2 and 3 group by them, so the scans also
know, per combination of segment values, how many values lie below any edge (see
:meth:`ColumnScan.count_below`, used by ``reference_counts``); step 2 then computes the
``tallies`` asked for as well. With 5 combinations grouping costs about 3 % of the two scans;
with 1,250 step 2 took 5.8 s instead of 1.4 s, more than counting the reference again saves, so
above ``MAX_COMBINATIONS`` (step 1 estimates their number) the steps are not grouped.

A column with a rank outside its brackets (a sample that unlucky is rare) gets its edges from
``quantile_cont`` in one more query (DuckDB's interpolation, which can differ from numpy's in
the last bit). The figures have the keys of the row ``histograms.edges_query`` returns
(``e{i}_q{k}``, ``e{i}_min``, ``e{i}_max``), so ``finish_bins`` reads either.
"""

from __future__ import annotations

import bisect
import collections
import functools
import itertools
import math
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from driftline import backends
from driftline.plan.columns import DriftColumn
from driftline.plan.histograms import clean, edge_metrics, finite, quantile_probabilities

SAMPLE_SIZE = 65_536
BRACKET_STEPS = 8  # bracket values on each side of a probability
# Step 3 brings at most this many values into Python (8 bytes each); about N/1024 per bucket
# and two buckets per edge, so a 4M-row reference with 20 columns of 10 bins fetches 0.5M.
FETCH_BUDGET = 4_000_000
# Grouped by more combinations of segment values than this, steps 2 and 3 cost more than they
# save (on the benchmark, derived counts won by 1.0 s at 60 combinations, 0.35 s at 250, and lost
# by 2.5 s at 1,250).
MAX_COMBINATIONS = 256

Execute = Callable[[ir.Table], pd.DataFrame]
Bucket = tuple[float, float]  # (low, high]: the values strictly above low, up to high
Combo = tuple[str | None, ...]  # one combination of segment values, as the counting query groups them


@ibis.udf.agg.builtin(name="reservoir_quantile")
def _reservoir_quantiles(arg: dt.float64, quantiles: dt.Array(dt.float64), sample_size: dt.int64) -> dt.Array(dt.float64):
    """DuckDB: the quantiles of a uniform reservoir sample of ``sample_size`` values."""


@dataclass
class BracketedEdges:
    """The edge figures (``figures``), and what steps 2 and 3 learned on the way: per numeric
    column index located in its brackets, its :class:`ColumnScan`; step 2's row per combination
    of segment values with the ``tallies`` asked for (``None`` when step 2 did not run)."""

    figures: pd.Series | None
    scans: dict[int, ColumnScan] = field(default_factory=dict)
    tallies: pd.DataFrame | None = None


def bracketed_edges(
    reference: ir.Table,
    columns: Sequence[DriftColumn],
    execute: Execute,
    sample_size: int | None = None,
    keys: Mapping[str, ir.Value] | None = None,
    tallies: Mapping[str, ir.Scalar] | None = None,
) -> BracketedEdges:
    """The numeric edge figures ``histograms.edges_query`` computes, exactly; steps 2 and 3
    grouped by ``keys``, step 2 computing ``tallies`` too; ``sample_size`` defaults to
    ``SAMPLE_SIZE``."""
    numeric = [c for c in columns if c.binning.kind == "numeric"]
    if not numeric:
        return BracketedEdges(None)
    keys, tallies = dict(keys or {}), dict(tallies or {})
    first = execute(brackets_query(reference, numeric, sample_size, keys)).iloc[0]
    if _combinations(first, keys) > MAX_COMBINATIONS:
        keys, tallies = {}, {}
    figures = {k: first[k] for k in first.index if k.endswith(("_min", "_max"))}  # uniform binning
    quantiled = {i: c for i, c in enumerate(numeric) if c.binning.method != "uniform"}
    brackets = {i: _with_predecessors(first[f"s{i}"]) for i in quantiled}
    step2 = _ranks(reference, numeric, {i: b for i, b in brackets.items() if b}, keys, tallies, execute)
    scans = step2.scans
    located = {i: [_locate(scans[i].overall, r) for r in _ranks_needed(scans[i].overall, quantiled[i])] for i in scans}
    fetched = _fetch(reference, numeric, scans, located, keys, execute)
    missed = []
    for i, column in quantiled.items():
        if i not in scans or scans[i].overall.n == 0:  # no finite value: no quantiles, as quantile_cont
            figures |= {f"e{i}_q{k}": None for k in range(len(quantile_probabilities(column)))}
            scans.pop(i, None)
            continue
        values = [_value_of(target, fetched.get(i, {})) for target in located[i]]
        if any(v is None for v in values):
            missed.append(i)
            del scans[i]
            continue
        figures |= {f"e{i}_q{k}": q for k, q in enumerate(_interpolated(scans[i].overall.n, column, values))}
    if missed:
        figures |= _exact_fallback(reference, numeric, missed, execute)
    return BracketedEdges(pd.Series(figures, dtype="object"), scans, step2.tallies)


def _grouped(table: ir.Table, keys: Mapping[str, ir.Value], metrics: Mapping[str, ir.Scalar]) -> ir.Table:
    return table.group_by(**keys).aggregate(**metrics) if keys else table.aggregate(**metrics)


def combos_of(frame: pd.DataFrame, keys: Sequence[str] | Mapping[str, ir.Value]) -> list[Combo]:
    """Each row's combination of segment values (null as None)."""
    if not keys:
        return [()] * len(frame)
    return [tuple(None if pd.isna(v) else str(v) for v in row) for row in frame[list(keys)].itertuples(index=False)]


# -- 1. brackets ------------------------------------------------------------------------------------


def _bracket_probabilities(column: DriftColumn, sample_size: int) -> list[float]:
    step = 2 / math.sqrt(sample_size) / BRACKET_STEPS
    around = {round(p + j * step, 9) for p in quantile_probabilities(column) for j in range(-BRACKET_STEPS, BRACKET_STEPS + 1)}
    return sorted({0.0, 1.0} | {p for p in around if 0.0 < p < 1.0})


def brackets_query(reference: ir.Table, columns: Sequence[DriftColumn], sample_size: int | None = None, keys: Mapping[str, ir.Value] | None = None) -> ir.Table | None:
    """Step 1: the sample quantiles around each edge's probability (and min and max of the
    uniform-binned columns, which need nothing more); with ``keys``, each key's approximate
    number of values."""
    numeric = [c for c in columns if c.binning.kind == "numeric"]
    metrics: dict[str, ir.Scalar] = {f"{name}_values": key.approx_nunique() for name, key in (keys or {}).items()}
    size = sample_size or SAMPLE_SIZE
    for i, column in enumerate(numeric):
        if column.binning.method == "uniform":
            metrics |= edge_metrics(reference, i, column, "duckdb")
        else:
            values = finite(reference[column.name]).cast("float64")
            grid = ibis.literal(_bracket_probabilities(column, size), type="array<float64>")
            metrics[f"s{i}"] = _reservoir_quantiles(values, grid, ibis.literal(size, "int64"))
    return reference.aggregate(**metrics) if metrics else None


def _combinations(first: pd.Series, keys: Mapping[str, ir.Value]) -> int:
    """At most how many combinations of segment values steps 2 and 3 would group by: the product
    of each key's number of values, plus one for null."""
    return math.prod((0 if pd.isna(first[f"{name}_values"]) else int(first[f"{name}_values"])) + 1 for name in keys)


def _with_predecessors(sample) -> list[float]:
    """The sample quantiles, those the sample repeats preceded by the next smaller double; []
    without values. A value the sample repeats is tied over more than a bracket's step, and gets a
    bucket (b⁻, b] of its own; a value tied less stays in a bucket of a few thousand values."""
    if sample is None or (not isinstance(sample, (list, np.ndarray)) and pd.isna(sample)):
        return []
    values = [float(v) for v in sample if v is not None and math.isfinite(float(v))]
    repeated = [v for v, n in collections.Counter(values).items() if n > 1]
    return sorted(set(values) | {math.nextafter(v, -math.inf) for v in repeated})


# -- 2. ranks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    """A column's finite values counted against its brackets: ``bounds[j]`` closes bucket j,
    which holds the values of ranks ``[below[j], below[j + 1])``. Below the first bracket and
    above the last one (``top``, followed by the largest double) lie the tails, outside the
    brackets. ``n``: the finite values."""

    bounds: list[float]
    below: list[int]
    top: float

    @property
    def n(self) -> int:
        return self.below[-1]

    def size(self, bucket: Bucket) -> int:
        j = self.bounds.index(bucket[1])
        return self.below[j + 1] - self.below[j]

    @classmethod
    def of(cls, bounds: list[float], counts: Mapping[float, int], top: float) -> Ranked:
        return cls(bounds, [0, *np.cumsum([int(counts.get(b, 0)) for b in bounds]).tolist()], top)


@dataclass
class ColumnScan:
    """What steps 2 and 3 learned of one column: per combination of segment values, its finite
    values against the brackets (``by_combo``, every one with the same bounds) and its -inf and
    +inf values (``infinite``); after step 3, the sorted values of the fetched buckets."""

    by_combo: dict[Combo, Ranked]
    infinite: dict[Combo, tuple[int, int]]
    fetched: frozenset[Bucket] = frozenset()
    values: dict[Combo, np.ndarray] | None = None

    @functools.cached_property
    def overall(self) -> Ranked:
        rankings = list(self.by_combo.values())
        if not rankings:
            return Ranked([], [0], -math.inf)
        return Ranked(rankings[0].bounds, np.sum([r.below for r in rankings], axis=0).tolist(), rankings[0].top)

    def count_below(self, edge: float) -> dict[Combo, int] | None:
        """Per combination, the finite values below ``edge``: the values below the bucket
        holding the edge, plus that bucket's values below it, which are none when the bucket is
        empty or holds one repeated value (``edge`` is then that value), else counted among the
        fetched ones. None when that bucket was not fetched (or lies outside the brackets)."""
        overall = self.overall
        j = bisect.bisect_left(overall.bounds, edge)  # bounds[j - 1] < edge <= bounds[j]
        if j == len(overall.bounds):
            return None
        low, high = overall.bounds[j - 1] if j else -math.inf, overall.bounds[j]
        if overall.below[j + 1] == overall.below[j] or math.nextafter(high, -math.inf) == low:
            within = {combo: 0 for combo in self.by_combo}
        elif (low, high) in self.fetched:
            within = {
                combo: int(np.searchsorted(v, edge, "left") - np.searchsorted(v, low, "right"))
                for combo, v in self.values.items()
            }
        else:
            return None
        return {combo: ranked.below[j] + within.get(combo, 0) for combo, ranked in self.by_combo.items()}


@dataclass
class _Step2:
    scans: dict[int, ColumnScan]
    tallies: pd.DataFrame | None


def _ranks(reference: ir.Table, numeric: list[DriftColumn], brackets: dict[int, list[float]], keys: Mapping[str, ir.Value], tallies: Mapping[str, ir.Scalar], execute: Execute) -> _Step2:
    """Step 2: one histogram per column against ``-inf``, its brackets and the largest double,
    so the map's ``-inf`` and ``+inf`` keys count the infinite values and the others the finite
    ones (NaN is null, left out)."""
    if not brackets:
        return _Step2({}, None)
    histograms = {
        f"h{i}": backends.bounded_histogram(clean(reference[numeric[i].name]).cast("float64"), _with_tails(b))
        for i, b in brackets.items()
    }
    frame = execute(_grouped(reference, keys, {**histograms, **tallies}))
    combos = combos_of(frame, keys)
    scans = {}
    for i, b in brackets.items():
        maps = [dict(m) if m is not None else {} for m in frame[f"h{i}"]]
        bounds = sorted(k for k in set().union(*maps) if math.isfinite(k))
        ranked = {combo: Ranked.of(bounds, counts, b[-1]) for combo, counts in zip(combos, maps)}
        infinite = {combo: (int(counts.get(-math.inf, 0)), int(counts.get(math.inf, 0))) for combo, counts in zip(combos, maps)}
        scans[i] = ColumnScan(ranked, infinite)
    return _Step2(scans, frame.drop(columns=list(histograms)) if tallies else None)


def _with_tails(brackets: list[float]) -> list[float]:
    return [-math.inf, *brackets, *([sys.float_info.max] if brackets[-1] < sys.float_info.max else [])]


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
    if j == 0 or ranked.bounds[j] > ranked.top:  # a tail
        return None
    low, high = ranked.bounds[j - 1], ranked.bounds[j]
    return high if math.nextafter(high, -math.inf) == low else ((low, high), rank - ranked.below[j])


# -- 3. values --------------------------------------------------------------------------------------


def _fetch(reference: ir.Table, numeric: list[DriftColumn], scans: dict[int, ColumnScan], located: dict[int, list[Located]], keys: Mapping[str, ir.Value], execute: Execute) -> dict[int, dict[Target, float | None]]:
    """The values at the (bucket, rank) targets. Per column, the values of its buckets, which
    the warehouse finds with one filter; within ``FETCH_BUDGET`` they are fetched per
    combination of segment values and kept in the column's scan, else only the targets' values
    are, picked by the warehouse."""
    wanted = {i: sorted({t for t in found if isinstance(t, tuple)}) for i, found in located.items()}
    wanted = {i: targets for i, targets in wanted.items() if targets}
    if not wanted:
        return {}
    buckets = {i: sorted({bucket for bucket, _ in targets}) for i, targets in wanted.items()}
    starts = {i: dict(zip(b, itertools.accumulate((scans[i].overall.size(x) for x in b), initial=0))) for i, b in buckets.items()}
    positions = {i: [starts[i][bucket] + rank for bucket, rank in targets] for i, targets in wanted.items()}
    # The raw column: NaN, ±inf and null fall outside every finite bucket by themselves.
    values = {i: reference[numeric[i].name].cast("float64") for i in wanted}
    lists = {f"l{i}": values[i].collect(where=_inside(values[i], b)) for i, b in buckets.items()}
    if sum(scans[i].overall.size(x) for i, b in buckets.items() for x in b) > FETCH_BUDGET:
        return _picked_in_warehouse(reference, lists, positions, wanted, execute)
    frame = execute(_grouped(reference, keys, lists))
    picked = {}
    for i, targets in wanted.items():
        by_combo = {combo: np.sort(np.asarray(v if v is not None else [], dtype="float64")) for combo, v in zip(combos_of(frame, keys), frame[f"l{i}"])}
        everything = np.sort(np.concatenate(list(by_combo.values())))
        if len(everything) != sum(scans[i].overall.size(x) for x in buckets[i]):
            continue  # not the values step 2 counted: the column falls back to quantile_cont
        scans[i].fetched = frozenset(buckets[i])
        scans[i].values = by_combo
        picked[i] = dict(zip(targets, (float(everything[p]) for p in positions[i])))
    return picked


def _picked_in_warehouse(reference: ir.Table, lists: dict[str, ir.Value], positions: dict[int, list[int]], wanted: dict[int, list[Target]], execute: Execute) -> dict[int, dict[Target, float | None]]:
    """The targets' values only: each column's bucket values sorted into one list in the
    warehouse, read at the targets' positions (an outer select, as ibis would repeat the
    aggregate once per position)."""
    aggregated = reference.aggregate(**{name: value.sort() for name, value in lists.items()})
    row = execute(aggregated.select(**{f"v{i}": ibis.array([aggregated[f"l{i}"][p] for p in at]) for i, at in positions.items()})).iloc[0]
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
