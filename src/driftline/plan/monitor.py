"""A monitor's plan: given its spec, source table, a window and a reference profile, the ibis
expressions a run executes. Pure: nothing runs here, so ``driftline compile`` and a real run
share every line of SQL generation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import ibis.expr.types as ir

from driftline.plan import histograms
from driftline.plan.columns import DriftColumn, drift_columns, selected_columns
from driftline.plan.exact import exact_distances
from driftline.plan.histograms import CountLayout
from driftline.plan.profile import ColumnBins
from driftline.plan.source import CURRENT, REFERENCE, Source, prepare_source
from driftline.spec.models import DriftCheck, Monitor, check_name
from driftline.windows import Window

EXACT_METHODS = ("ks", "wasserstein")


@dataclass
class MonitorPlan:
    monitor: Monitor
    source: Source
    dialect: str
    columns_by_check: dict[str, list[DriftColumn]] = field(default_factory=dict)

    @property
    def segments(self) -> list[str]:
        return list(self.monitor.segments)

    @property
    def binned_columns(self) -> list[DriftColumn]:
        """Distinct (column, binning) pairs of the binned drift checks, in check order."""
        seen: dict[tuple[str, str], DriftColumn] = {}
        for check in self.drift_checks(binned=True):
            for column in self.columns_by_check[check_name(check)]:
                seen.setdefault(column.key, column)
        return list(seen.values())

    def drift_checks(self, binned: bool | None = None) -> list[DriftCheck]:
        checks = [c for c in self.monitor.checks if isinstance(c, DriftCheck)]
        if binned is None:
            return checks
        return [c for c in checks if (c.method not in EXACT_METHODS) == binned]

    # -- queries --------------------------------------------------------------------------------

    def edges_query(self, reference: Window) -> ir.Table | None:
        return histograms.edges_query(self.source.between(reference), self.binned_columns, self.dialect)

    def categories_query(self, reference: Window) -> ir.Table | None:
        return histograms.categories_query(self.source.between(reference), self.binned_columns)

    def counts_query(self, windows: Mapping[str, Window], bins: Mapping[tuple[str, str], ColumnBins]) -> tuple[ir.Table, CountLayout]:
        """Histogram counts of every binned column × segment for ``windows`` in one scan."""
        layout = CountLayout(tuple(bins[c.key] for c in self.binned_columns), tuple(self.segments))
        return histograms.counts_query(self.source.tagged(windows), layout), layout

    def exact_queries(self, current: Window, reference: Window) -> dict[tuple[str, str], ir.Table]:
        """One exact-distance query per (check, column) for ``ks`` and ``wasserstein`` checks."""
        queries = {}
        for check in self.drift_checks(binned=False):
            for column in self.columns_by_check[check_name(check)]:
                queries[(check_name(check), column.name)] = exact_distances(
                    self.source.between(reference), self.source.between(current), column.name, self.segments
                )
        return queries


def needed_columns(monitor: Monitor) -> list[str]:
    """Every source column a monitor reads (besides its timestamp)."""
    columns: list[str] = list(monitor.segments)
    for check in monitor.checks:
        if isinstance(check, DriftCheck):
            columns += selected_columns(check.columns, monitor)
    return list(dict.fromkeys(columns))


def build_plan(monitor: Monitor, table: ir.Table, where: ir.BooleanValue | None, dialect: str) -> MonitorPlan:
    source = prepare_source(table, monitor, where, needed_columns(monitor))
    schema = dict(source.table.schema().items())
    plan = MonitorPlan(monitor, source, dialect)
    for check in plan.drift_checks():
        plan.columns_by_check[check_name(check)] = drift_columns(check, monitor, schema)
    return plan


WINDOW_NAMES = (CURRENT, REFERENCE)
