"""A monitor's plan: given its spec, source table, a window and a reference profile, the ibis
expressions a run executes. Pure: nothing runs here, so ``driftline compile`` and a real run
share every line of SQL generation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import ibis.expr.types as ir

from driftline.plan import histograms, quality
from driftline.plan.custom_metrics import metric_columns, parse_metrics
from driftline.plan.frame import CheckInputs, model_columns
from driftline.plan.columns import DriftColumn, drift_columns, selected_columns
from driftline.plan.exact import exact_distances
from driftline.plan.histograms import CountLayout
from driftline.plan.profile import ColumnBins
from driftline.plan.source import Source, prepare_source
from driftline.spec.models import DriftCheck, FairnessCheck, LatencyCheck, Monitor, QualityCheck, check_name
from driftline.windows import Window

EXACT_METHODS = ("ks", "wasserstein")


@dataclass
class MonitorPlan:
    monitor: Monitor
    source: Source
    dialect: str
    columns_by_check: dict[str, list[DriftColumn]] = field(default_factory=dict)
    inputs: CheckInputs | None = None  # what the model and data checks read besides the source

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

    # -- queries, in the order a run executes them (see ``measure``) -------------------------------

    def reference_size_query(self, reference: Window) -> ir.Table | None:
        """The reference's row count, which sets the edges' sample rate where the edges query
        samples (DuckDB); None elsewhere."""
        return histograms.reference_size_query(self.source.between(reference), self.binned_columns, self.dialect)

    def edges_query(self, reference: Window, reference_rows: int | None = None) -> ir.Table | None:
        """The reference profile's numeric edges: one aggregate row of quantiles (or min/max)."""
        return histograms.edges_query(self.source.between(reference), self.binned_columns, self.dialect, reference_rows)

    def categories_query(self, reference: Window) -> ir.Table | None:
        """The reference profile's categories: the top values of each categorical column."""
        return histograms.categories_query(self.source.between(reference), self.binned_columns)

    def counts_query(self, windows: Mapping[str, Window], bins: Mapping[tuple[str, str], ColumnBins]) -> tuple[ir.Table, CountLayout]:
        """Histogram counts of every binned column × segment for ``windows`` in one scan."""
        column_bins = tuple(bins[c.key] for c in self.binned_columns)
        native = histograms.native_histogram_columns(column_bins, self.dialect)
        layout = CountLayout(column_bins, tuple(self.segments), native)
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


def needed_columns(monitor: Monitor, metric_columns: Sequence[str] = ()) -> list[str]:
    """Every source column a monitor reads (besides its timestamp); ``metric_columns`` are those
    the custom metrics' SQL reads, once macros are expanded."""
    columns: list[str] = [*monitor.segments, *model_columns(monitor), *metric_columns]
    for check in monitor.checks:
        if isinstance(check, DriftCheck):
            columns += selected_columns(check.columns, monitor)
        elif isinstance(check, FairnessCheck):
            columns.append(check.group)
        elif isinstance(check, LatencyCheck):
            columns.append(check.column)
        elif isinstance(check, QualityCheck):
            columns += quality.needed_columns(check, monitor)
    return list(dict.fromkeys(columns))


def build_plan(
    monitor: Monitor,
    table: ir.Table,
    where: ir.BooleanValue | None,
    dialect: str,
    *,
    labels: ir.Table | None = None,
    macros: Mapping[str, Any] | None = None,
) -> MonitorPlan:
    """The plan of ``monitor`` over ``table``; ``labels`` is the table of ``model.labels`` and
    ``macros`` expand the custom metrics' SQL."""
    metric_sql = parse_metrics(monitor, macros or {})
    inputs = CheckInputs(table, labels, metric_sql)
    source = prepare_source(table, monitor, where, needed_columns(monitor, metric_columns(metric_sql, table.columns)))
    schema = dict(source.table.schema().items())
    plan = MonitorPlan(monitor, source, dialect, inputs=inputs)
    for check in plan.drift_checks():
        plan.columns_by_check[check_name(check)] = drift_columns(check, monitor, schema)
    return plan

