"""The rows of a monitor's source that fall in a window, with only the columns it needs.

Window filters are plain range predicates on the raw timestamp column (``ts >= a AND ts < b``),
never a function of the column, so partitions and zone maps prune.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import ibis
import ibis.expr.types as ir

from driftline.plan.columns import PREDICTION_COLUMN
from driftline.spec.models import Monitor
from driftline.windows import Window

SIDE = "__side"  # which window a row belongs to when one scan reads several
CURRENT, REFERENCE = "current", "reference"


@dataclass(frozen=True)
class Source:
    """A monitor's source table with its ``where`` applied and derived columns added."""

    table: ir.Table
    timestamp: str

    def between(self, window: Window) -> ir.Table:
        ts = self.table[self.timestamp]
        return self.table.filter(ts >= ibis.literal(window.start), ts < ibis.literal(window.end))

    def tagged(self, windows: Mapping[str, Window]) -> ir.Table:
        """Rows of several windows in one scan, each tagged with its window's name in ``__side``.

        Overlapping windows (a backfill over the fixed reference period) cannot share a scan, as
        a row belongs to both: they are read as a union instead.
        """
        if _overlap(list(windows.values())):
            parts = [self.between(w).mutate(**{SIDE: ibis.literal(n)}) for n, w in windows.items()]
            return ibis.union(*parts, distinct=False)
        ts = self.table[self.timestamp]
        branches = [
            ((ts >= ibis.literal(w.start)) & (ts < ibis.literal(w.end)), name) for name, w in windows.items()
        ]
        in_any = ibis.or_(*(inside for inside, _ in branches))
        return self.table.filter(in_any).mutate(**{SIDE: ibis.cases(*branches)})


def _overlap(windows: list[Window]) -> bool:
    ordered = sorted(windows)
    return any(a.end > b.start for a, b in zip(ordered, ordered[1:]))


def prepare_source(table: ir.Table, monitor: Monitor, where: ir.BooleanValue | None, columns: Sequence[str]) -> Source:
    """Apply ``where``, derive the binary prediction if needed, keep only ``columns``."""
    if where is not None:
        table = table.filter(where)
    model = monitor.model
    if PREDICTION_COLUMN in columns and model is not None and model.score is not None:
        table = table.mutate(**{PREDICTION_COLUMN: table[model.score] >= model.threshold})
    keep = list(dict.fromkeys([monitor.source.timestamp, *columns]))
    return Source(table.select(*keep), monitor.source.timestamp)
