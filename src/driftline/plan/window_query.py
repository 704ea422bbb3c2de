"""ONE query for every model and data check of a window, and its result read back per segment.

Checks register what they need (see ``performance``, ``fairness``, ``quality``, ``latency``,
``custom_metrics``); the number of queries does not grow with the number of checks, metrics or
columns. The query is a UNION ALL of at most a few grouped *branches* over the window's rows,
each computing overall and per-segment figures in one pass through the grouping selector
(``groupings``):

- ``sums``: every additive aggregate (counts and sums: confusion counts, loss and error sums,
  null counts ...), grouped by the segment columns themselves, one row per combination of
  their values, so it reads each row once; the overall and per-segment figures are the sums of
  those rows, added up in Python (as the drift histograms are);
- ``main``: every other plain aggregate (means, quantiles, distinct counts, custom KPI
  expressions ...), grouped by (grouping, segment);
- ``per_value``: additive figures per value of a "by" column (fairness groups), grouped by
  that value and the segment columns' values, added up per segment in Python as the sums are;
- extra branches a check adds when a plain aggregate cannot do, e.g. ``auc`` (a rank step with
  window functions) or ``classes`` (per-class counts for multiclass macro averages), or
  ``freshness`` (the newest timestamp of the whole source, not only the window).

Figures the window's drift counting query already has — its rows and each binned column's
non-null values, per segment (``known``) — are not computed again: ``add_sum`` skips their keys
(:data:`ROWS_KEY`, :func:`valid_key`) and :meth:`WindowQuery.read` puts them in. Dropping the null
counts of 25 features from the benchmark's checks query took it from 0.12 s to 0.03 s.

Every branch is padded to the same columns — keys ``__branch``, ``__grouping``, ``__segment``,
``__by``, ``__value``, ``__seg<i>`` and float64 values, each branch's own named
``<branch>__<name>`` — so one result set carries them all; :class:`WindowFigures` sorts the
rows back per segment. Checks read sums and main aggregates alike, as ``figures.main[key]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import ibis
import ibis.expr.types as ir
import pandas as pd

from driftline.plan.aggregates import Aggregate, Aggregates, Figures, add_up_per_segment
from driftline.plan.groupings import BY, GROUPING, SEGMENT, VALUE, by_column, by_segment, segment_of
from driftline.plan.histograms import segment_keys
from driftline.plan.profile import NULL_SEGMENT, SegmentKey

BRANCH = "__branch"
MAIN, PER_VALUE, SUMS = "main", "per_value", "sums"
KEYS = (BRANCH, GROUPING, SEGMENT, BY, VALUE)
_KEY_TYPES = {BRANCH: "string", GROUPING: "int64", SEGMENT: "string", BY: "int64", VALUE: "string"}

BranchBuilder = Callable[["WindowQuery"], ir.Table]
Known = Mapping[SegmentKey, Mapping[str, float]]  # figures per segment computed elsewhere

ROWS_KEY = "rows"  # the sum of a segment's rows, shared by the check kinds


def valid_key(column: str) -> str:
    """The key of the sum of ``column``'s non-null values (NaN is null), shared likewise."""
    return f"valid:{column}"


class WindowQuery:
    """What the checks of one window need, collected, then built into one expression."""

    def __init__(self, rows: ir.Table, segments: Sequence[str], dialect: str, source: ir.Table | None = None, known: Known | None = None):
        self.rows = rows  # the window's rows (see frame.window_rows)
        self.source = source  # the whole source, for figures not bound to the window
        self.known = known or {}
        self._known_keys = {key for figures in self.known.values() for key in figures}
        self.segments = list(segments)
        self.dialect = dialect
        self.main = Aggregates("m")
        self.sums = Aggregates("s")
        self.per_value = Aggregates("v")
        self.by_columns: list[str] = []
        self._branches: dict[str, BranchBuilder] = {}

    # -- registration ----------------------------------------------------------------------------

    def add(self, key: str, aggregate: Aggregate) -> None:
        """A plain aggregate over the rows of each segment, read back as ``figures.main[key]``."""
        self.main.add(key, aggregate)

    def add_sum(self, key: str, aggregate: Aggregate) -> None:
        """An additive aggregate — a count or a sum, whose value over a segment is the sum of its
        values over parts of it — read back as ``figures.main[key]`` too (unless ``known``)."""
        if key not in self._known_keys:
            self.sums.add(key, aggregate)

    def add_per_value(self, column: str, key: str, aggregate: Aggregate) -> None:
        """An additive aggregate per value of ``column`` within each segment
        (``figures.per_value(column)``)."""
        if column not in self.by_columns:
            self.by_columns.append(column)
        self.per_value.add(key, aggregate)

    def add_column(self, name: str, extend: Callable[[ir.Table], ir.Table]) -> None:
        """A value computed once per row of the window, for several aggregates to read as
        ``t[name]`` (the calibrated probability of estimated performance): written once in the
        SQL, not once per aggregate that reads it. ``extend`` returns the rows with the column
        ``name`` added, in as many steps as it takes."""
        if name not in self.rows.columns:
            self.rows = extend(self.rows)

    def add_branch(self, name: str, build: BranchBuilder) -> None:
        """A grouped table with ``__grouping``, ``__segment`` (and ``__value``) keys and numbers."""
        self._branches.setdefault(name, build)

    def expanded(self) -> ir.Table:
        """The rows once per grouping (overall, each segment column): what branches group."""
        return by_segment(self.rows, self.segments)

    # -- the query -------------------------------------------------------------------------------

    def branches(self) -> dict[str, ir.Table]:
        """Every grouped branch the registered checks need, by name."""
        tables = {name: build(self) for name, build in self._branches.items()}
        if self.sums:
            keys = segment_keys(self.rows, self.segments)
            grouped = self.rows.group_by(**keys) if keys else self.rows
            tables[SUMS] = grouped.aggregate(**self.sums.named(self.rows))
        if self.main:
            expanded = self.expanded()
            tables[MAIN] = expanded.group_by([GROUPING, SEGMENT]).aggregate(**self.main.named(expanded))
        if self.per_value:
            expanded = by_column(self.rows, self.by_columns)
            grouped = expanded.group_by([BY, VALUE], **segment_keys(expanded, self.segments))
            tables[PER_VALUE] = grouped.aggregate(**self.per_value.named(expanded))
        return tables

    def expression(self) -> ir.Table | None:
        """The UNION ALL of every branch; None when no check needs the warehouse."""
        branches = self.branches()
        if not branches:
            return None
        keys = (*KEYS, *self.segment_keys)
        columns = [f"{name}__{c}" for name, table in branches.items() for c in table.columns if c not in keys]
        parts = [_padded(name, table, columns, self.segment_keys) for name, table in branches.items()]
        return parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=False)

    def read(self, frame: pd.DataFrame | None) -> WindowFigures:
        """The query's result, sorted back per segment, with aggregate aliases replaced by keys."""
        figures = WindowFigures()
        if frame is None:
            return self._merged(figures, self.known)
        names = {MAIN: self.main.aliases()}
        sums, per_value = frame[BRANCH] == SUMS, frame[BRANCH] == PER_VALUE
        for record in frame[~(sums | per_value)].to_dict("records"):
            branch = record[BRANCH]
            prefix = f"{branch}__"
            values = {k[len(prefix):]: v for k, v in record.items() if k.startswith(prefix)}
            if branch in names:
                values = {key: values.get(alias) for key, alias in names[branch].items()}
            segment = segment_of(int(record[GROUPING]), _text(record[SEGMENT]), self.segments)
            figures.segment(segment).add(branch, None, _text(record[VALUE]), Figures(values))
        if sums.any():
            self._add_up_sums(frame[sums], figures)
        if per_value.any():
            self._add_up_per_value(frame[per_value], figures)
        return self._merged(figures, self.known)

    @property
    def segment_keys(self) -> list[str]:
        """The key columns of the sums branch: the i-th segment column's value, as text."""
        return list(segment_keys(self.rows, self.segments))

    def _add_up_sums(self, frame: pd.DataFrame, figures: WindowFigures) -> None:
        """The sums branch's rows (one per combination of segment values) added up overall and
        per value of each segment column, merged into each segment's main figures."""
        self._merged(figures, self._added_up(frame, SUMS, self.sums))

    def _add_up_per_value(self, frame: pd.DataFrame, figures: WindowFigures) -> None:
        """The per_value branch's rows (one per "by" value and combination of segment values)
        added up per segment, one row of figures per (by column, value) in each segment."""
        for (by, value), part in frame.groupby([frame[BY].astype(int), frame[VALUE]], sort=False, dropna=False):
            for segment, values in self._added_up(part, PER_VALUE, self.per_value).items():
                figures.segment(segment).add(PER_VALUE, self.by_columns[by - 1], _text(value), Figures(values))

    def _added_up(self, frame: pd.DataFrame, branch: str, aggregates: Aggregates) -> dict[SegmentKey, dict[str, float]]:
        """A branch's rows of additive figures, one per combination of segment values, added up
        overall and per value of each segment column: key → total, per segment."""
        aliases = {key: f"{branch}__{alias}" for key, alias in aggregates.aliases().items()}
        values = frame[list(aliases.values())].apply(pd.to_numeric).astype("float64")
        totals = add_up_per_segment(values, {s: frame[k] for s, k in zip(self.segments, self.segment_keys)})
        return {segment: {key: total[alias] for key, alias in aliases.items()} for segment, total in totals.items()}

    @staticmethod
    def _merged(figures: WindowFigures, per_segment: Known) -> WindowFigures:
        """``figures`` with ``per_segment``'s values added to each segment's main figures."""
        for segment, values in per_segment.items():
            figures.segment(segment).add(MAIN, None, None, Figures({**figures.segment(segment).main, **values}))
        return figures


def _padded(name: str, table: ir.Table, columns: list[str], segment_keys: Sequence[str]) -> ir.Table:
    """The branch with every key and value column of the union, in one order, typed alike."""
    segment_values = {k: table[k] if k in table.columns else ibis.null("string") for k in segment_keys}
    keys = {
        BRANCH: ibis.literal(name, "string"),
        GROUPING: table[GROUPING].cast("int64") if GROUPING in table.columns else ibis.literal(0, "int64"),
        SEGMENT: table[SEGMENT].cast("string") if SEGMENT in table.columns else ibis.null("string"),
        BY: table[BY].cast("int64") if BY in table.columns else ibis.literal(0, "int64"),
        VALUE: table[VALUE].cast("string") if VALUE in table.columns else ibis.null("string"),
        **segment_values,
    }
    prefix = f"{name}__"
    values = {
        c: table[c[len(prefix):]].cast("float64") if c.startswith(prefix) else ibis.null("float64")
        for c in columns
    }
    return table.select(**keys, **values)


def _text(value) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


# -- the result, per segment ----------------------------------------------------------------------


@dataclass
class SegmentFigures:
    """Every result row of one segment (or the overall one), by branch."""

    rows: dict[tuple[str, str | None, str | None], Figures] = field(default_factory=dict)

    def add(self, branch: str, column: str | None, value: str | None, figures: Figures) -> None:
        self.rows[(branch, column, value)] = figures

    @property
    def main(self) -> Figures:
        return self.branch(MAIN)

    def branch(self, name: str) -> Figures:
        """The one row of a branch without values; empty figures when the segment had no rows."""
        return self.rows.get((name, None, None), Figures())

    def values(self, name: str, column: str | None = None) -> dict[str, Figures]:
        """The rows of a branch keyed by ``__value`` (e.g. per class), or per value of a "by"
        column; a null value (a null fairness group) reads as ``__null__``."""
        return {
            NULL_SEGMENT if value is None else value: figures
            for (branch, by, value), figures in self.rows.items()
            if branch == name and by == column
        }

    def per_value(self, column: str) -> dict[str, Figures]:
        return self.values(PER_VALUE, column)


@dataclass
class WindowFigures:
    segments: dict[SegmentKey, SegmentFigures] = field(default_factory=dict)

    def segment(self, key: SegmentKey) -> SegmentFigures:
        return self.segments.setdefault(key, SegmentFigures())
