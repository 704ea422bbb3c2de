"""Overall and per-segment figures from one pass over the rows: a portable GROUPING SETS.

ibis has no GROUPING SETS, and a UNION ALL of one GROUP BY per segment column would read the
window once per segment column. Instead every row is cross-joined with a tiny constant
*grouping selector* — one row for the overall grouping, one per segment column — and a single
GROUP BY over (grouping, segment value) then yields the overall figures and those of every value
of every segment column at once:

>>> import ibis
>>> rows = ibis.memtable({"region": ["eu", "eu", "us"], "x": [1, 2, 3]})
>>> expanded = by_segment(rows, ["region"])
>>> counts = expanded.group_by([GROUPING, SEGMENT]).aggregate(n=expanded.count())
>>> counts.order_by([GROUPING, SEGMENT]).execute().fillna({SEGMENT: "(all)"}).values.tolist()
[[0, '(all)', 3], [1, 'eu', 2], [1, 'us', 1]]

The selector is a UNION ALL of table-less ``SELECT <constant>`` rows, so the SQL needs neither
``VALUES`` lists nor arrays and reads the same on every backend.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import ibis
import ibis.expr.types as ir

from driftline.plan.histograms import as_text
from driftline.plan.profile import NULL_SEGMENT, SegmentKey

GROUPING = "__grouping"  # 0: overall; i > 0: the i-th segment column
SEGMENT = "__segment"  # the segment column's value, as text (null for the overall grouping)
BY = "__by"  # j > 0: the j-th "by" column (a fairness group column); 0: none
VALUE = "__value"  # the "by" column's value, as text


def by_segment(rows: ir.Table, segments: Sequence[str]) -> ir.Table:
    """``rows`` once per grouping, with ``__grouping`` and ``__segment`` added."""
    selector = _constants([{GROUPING: g} for g in range(len(segments) + 1)])
    expanded = rows.cross_join(selector)
    return expanded.mutate(**{SEGMENT: _pick(expanded[GROUPING], [expanded[s] for s in segments])})


def by_column(rows: ir.Table, columns: Sequence[str]) -> ir.Table:
    """``rows`` once per "by" column, with ``__by`` and that column's ``__value`` added.

    Used where a figure is needed per value of another column, e.g. the counts of each fairness
    group: grouped by the segment values too, the rows add up to every segment's figures, as
    the sums do (``window_query``), so no row is read once per grouping.
    """
    selector = _constants([{BY: b} for b in range(1, len(columns) + 1)])
    expanded = rows.cross_join(selector)
    return expanded.mutate(**{VALUE: _pick(expanded[BY], [expanded[c] for c in columns])})


def segment_of(grouping: int, value: str | None, segments: Sequence[str]) -> SegmentKey:
    """The (segment_key, segment_value) a result row belongs to; a null value is ``__null__``."""
    if grouping == 0:
        return (None, None)
    return (segments[grouping - 1], NULL_SEGMENT if value is None else value)


def _pick(selector: ir.IntegerColumn, columns: Sequence[ir.Column]) -> ir.StringColumn:
    """The text of ``columns[selector - 1]`` (null when the selector is 0)."""
    if not columns:
        return ibis.null("string")
    branches = [(selector == i + 1, as_text(column)) for i, column in enumerate(columns)]
    return ibis.cases(*branches, else_=ibis.null("string"))


def _constants(rows: Sequence[Mapping[str, int]]) -> ir.Table:
    """A constant table as a UNION ALL of table-less one-row SELECTs."""
    parts = []
    for row in rows:
        (first, value), *rest = row.items()
        part = ibis.literal(value, "int64").name(first).as_table()
        parts.append(part.select(first, **{k: ibis.literal(v, "int64") for k, v in rest}))
    return parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=False)
