"""Named aggregates: what checks ask the warehouse for, and how their answers are read back.

A check does not own a query. It registers the aggregates it needs under descriptive keys
(``"tp"``, ``"null:country"``) in an :class:`Aggregates` set; two checks asking for the same key
share one aggregate. Each key becomes a short positional alias in the SQL (``a0``, ``a1`` ...), so
column names, however odd, never end up in an identifier.

Back in Python, :class:`Figures` reads one result row by key, and :func:`ratio` finishes the
formulas, returning None — not 0, not an error — where a denominator is zero (SPEC §6).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Mapping

import ibis
import ibis.expr.types as ir
import pandas as pd

from driftline.plan.profile import NULL_SEGMENT


Aggregate = Callable[[ir.Table], ir.Scalar]


def count_where(condition: ir.BooleanValue) -> ir.IntegerScalar:
    """The number of rows where ``condition`` is true (null counts as false).

    ``SUM(CAST(condition AS INT))``, not ``COUNT(*) FILTER (WHERE condition)``, which is what
    ``table.count(where=...)`` compiles to: DuckDB runs the FILTER form about 1.5x slower, and a
    window's query holds dozens of these (benchmarks/RESULTS.md). Coalesced once per group, so
    a group whose conditions are all null still reads 0, as COUNT does.
    """
    return ibis.coalesce(condition.sum(), 0)


class Aggregates:
    """Aggregates by key, each computed once however many checks read it.

    An aggregate is kept as a function of the table it reads, and built once that table is
    known (a branch's rows are only final when every check has registered).
    """

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._builders: dict[str, Aggregate] = {}

    def add(self, key: str, aggregate: Aggregate) -> None:
        self._builders.setdefault(key, aggregate)

    def __bool__(self) -> bool:
        return bool(self._builders)

    def aliases(self) -> dict[str, str]:
        """key → the column alias its value has in the query."""
        return {key: f"{self.prefix}{i}" for i, key in enumerate(self._builders)}

    def named(self, table: ir.Table) -> dict[str, ir.Scalar]:
        """alias → aggregate over ``table``, as float64 so every branch of a query lines up."""
        aliases = self.aliases()
        return {aliases[key]: build(table).cast("float64") for key, build in self._builders.items()}


class Figures(Mapping[str, Any]):
    """One result row read by key; a missing row or null reads as None (counts: as 0)."""

    def __init__(self, values: Mapping[str, Any] | None = None):
        self._values = {k: _number(v) for k, v in (values or {}).items()}

    def __getitem__(self, key: str) -> float | None:
        return self._values.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def count(self, key: str) -> int:
        value = self._values.get(key)
        return 0 if value is None else int(round(value))


def add_up_per_segment(values: pd.DataFrame, segment_values: Mapping[str, pd.Series]) -> dict[tuple[str | None, str | None], pd.Series]:
    """Rows that each hold one combination of segment values, added up overall ``(None, None)``
    and per value of every segment column ``(column, value)``; a null value is ``__null__``.

    How a query grouped by the segment columns themselves yields the figures of every segment
    without reading a row twice (the drift counts, the checks' sums). A sum stays null only
    where every row's is.
    """
    totals = {(None, None): values.sum(min_count=1)}
    for segment, labels in segment_values.items():
        keys = labels.astype(object).fillna(NULL_SEGMENT).astype(str).to_numpy()
        for value, part in values.groupby(keys, sort=False):
            totals[(segment, value)] = part.sum(min_count=1)
    return totals


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is zero."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def _number(value: Any) -> float | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    number = float(value)
    return None if math.isnan(number) else number
