"""``driftline compile``: every query a run executes, in execution order, for any dialect.

The same plan code builds the expressions as a real run (``measure`` runs them in this order);
only the table is swapped for an unbound one with the warehouse's schema and the user's table
name, so the output reads as SQL for the target warehouse. Each statement ends with ``;`` so the
output pastes into a SQL client. A query that depends on an earlier one's result (the counts on
the edges) is printed with the stored profile's real edges when one exists; otherwise its edges
and categories are placeholders and its comment names the queries it waits for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

import ibis

from driftline import connect, dialects
from driftline.bind import BoundMonitor
from driftline.errors import ConfigError, Location
from driftline.measure import WindowMeasurer
from driftline.plan import estimated, model_checks, reference_band
from driftline.plan.monitor import MonitorPlan, build_plan
from driftline.plan.profile import ColumnBins, ReferenceProfile
from driftline.plan.quality import categories_key
from driftline.plan.source import CURRENT, REFERENCE
from driftline.plan.window_query import ROWS_KEY, valid_key
from driftline.result_schema import RESULTS, TABLES
from driftline.spec.errors import did_you_mean
from driftline.windows import Window, last_due_end, reference_window
from driftline.workspace import Workspace


def compile_monitors(workspace: Workspace, names: Sequence[str] | None, dialect: str, now: datetime) -> str:
    """The text ``driftline compile`` prints: each monitor's queries, numbered, as SQL comments
    and statements."""
    return "\n\n".join(monitor.text() for monitor in compiled_monitors(workspace, names, dialect, now)) + "\n"


def compiled_monitors(workspace: Workspace, names: Sequence[str] | None, dialect: str, now: datetime) -> list[CompiledMonitor]:
    """The same queries as :func:`compile_monitors`, as data (``compile --json``)."""
    if dialect not in dialects.DIALECTS:
        raise ConfigError(f"unknown dialect {dialect!r}{did_you_mean(dialect, dialects.DIALECTS)}; supported: {', '.join(dialects.DIALECTS)}", Location("--dialect"))
    return [_compile_monitor(workspace, monitor, dialect, now) for monitor in workspace.bind(names, dialect)]


SHOWN_REFERENCE_ROWS = 1_000_000  # the reference size compile shows a sampled edges query for


@dataclass
class Step:
    """One query of a run: what it computes, its expression, and what it waits for."""

    title: str
    expr: Any
    note: str = ""


@dataclass
class CompiledQuery:
    title: str
    sql: str  # without the final ";"
    note: str = ""  # what the query waits for, or why it may be skipped


@dataclass
class CompiledMonitor:
    """The queries a run of one window of one monitor executes, in order."""

    monitor: str
    dialect: str
    window: Window
    reference: Window
    queries: list[CompiledQuery]
    profile_stored: bool

    def text(self) -> str:
        count = len(self.queries)
        header = f"-- monitor {self.monitor}: window {self.window}, reference {self.reference}, dialect {self.dialect}, {count} queries"
        if not self.profile_stored:
            header += "\n-- no reference profile is stored yet: a run builds it first (the reference profile queries)"
        body = []
        for number, query in enumerate(self.queries, 1):
            note = f"\n-- {query.note}" if query.note else ""
            body.append(f"-- [{number}/{count}] {query.title}{note}\n{query.sql};")
        return "\n\n".join([header, *body])


def _compile_monitor(workspace: Workspace, bound: BoundMonitor, dialect: str, now: datetime) -> CompiledMonitor:
    spec = bound.loaded.spec
    end = last_due_end(now, spec.schedule)
    window = Window(end - spec.schedule.every, end)
    reference = reference_window(spec.reference, window)
    table = _unbound(bound)
    where = bound.where if spec.source.sql else _rebind_where(bound, table)
    plan = build_plan(spec, table, where, dialect, labels=_unbound_labels(bound), macros=bound.macros)
    plan.inputs.history = ibis.table(TABLES[RESULTS], name=RESULTS, database=workspace.store.schema)
    stored = _stored_profile(workspace, plan, reference, bound.source_fingerprint)
    steps = [s for s in run_steps(plan, window, reference, stored, now) if s.expr is not None]
    queries = [CompiledQuery(step.title, dialects.to_sql(step.expr, dialect).strip(), step.note) for step in steps]
    return CompiledMonitor(spec.name, dialect, window, reference, queries, profile_stored=stored is not None)


def run_steps(plan: MonitorPlan, window: Window, reference: Window, stored: ReferenceProfile | None, now: datetime) -> list[Step]:
    """The queries a run of ``window`` executes, in order (see ``measure``); ``stored``: the
    cached reference profile, None when the run must build it."""
    steps: list[Step] = []
    profile = stored or ReferenceProfile("", reference, _placeholder_bins(plan))
    if stored is None:
        size = plan.reference_size_query(reference)
        steps.append(Step("reference profile: the reference's size, which sets the edges' sample rate", size))
        note = f"its sample rate below is for {SHOWN_REFERENCE_ROWS:,} rows; a run takes it from the size above" if size is not None else ""
        edges = plan.edges_query(reference, SHOWN_REFERENCE_ROWS if size is not None else None)
        steps.append(Step("reference profile: numeric bin edges, one row", edges, note))
        steps.append(Step("reference profile: top categories of each categorical column", plan.categories_query(reference)))
    windows = {CURRENT: window} if stored else {CURRENT: window, REFERENCE: reference}
    counts_expr, layout = plan.counts_query(windows, profile.bins)
    waits = "" if stored else "waits for the edges and categories above: the ones below are placeholders"
    steps.append(Step("histogram counts, every binned column x segment, one scan" + ("" if stored else " of both windows"), counts_expr, waits))
    unknown = stored or ReferenceProfile("", reference)  # no bins: every category set looks missing
    categories = model_checks.missing_reference_categories(plan, unknown)
    steps.append(Step("reference categories of new_category_rate, once per profile",
                      model_checks.reference_categories_query(plan, unknown, categories),
                      "" if stored else "skipped where a drift check's categories hold every reference value"))
    if stored is None:  # the checks query reads the categories the run will have learnt
        profile.metrics = unknown.metrics
        for column in categories:
            key = categories_key(column.name, column.binning.max_categories)
            profile.metrics["categories"][key] = [f"category_{k}" for k in range(1, 4)]
    if estimated.calibration_due(plan, unknown, now):
        steps.append(Step("calibration of estimated_performance: the labeled reference's rows and positives per distinct score, once per profile",
                          estimated.distinct_scores_query(plan, reference)))
        steps.append(Step(f"calibration of estimated_performance: the same in {estimated.MAX_BINS} bins of equal rank",
                          estimated.quantile_bins_query(plan, reference), f"only when the reference has more than {estimated.MAX_BINS} distinct scores"))
        estimated.save_calibration(profile, plan.monitor, estimated.PLACEHOLDER)
        note_calibration = "the calibration's points below are placeholders"
    else:
        note_calibration = ""
    planned = model_checks.reference_values_query(plan, unknown, now)
    if planned is not None:
        steps.append(Step("reference values of relative thresholds (drop/rise), once per profile", planned[0].expression()))
    bands = reference_band.ReferenceBands(unknown, plan.monitor).due(model_checks.model_checks(plan.monitor))
    if bands:
        on_reference = model_checks.context(plan, reference, unknown, now)
        query = reference_band.bands_query(plan, unknown, bands, on_reference)
        if query is not None:
            steps.append(Step("reference_band: the checks on each whole window of the reference, once per profile", query.expression()))
    for (check, column), expr in plan.exact_queries(window, reference).items():
        steps.append(Step(f"exact distances for {check} on {column}", expr))
    steps.append(Step("previous run's schema, for schema_change", model_checks.previous_schema_query(plan, window)))
    checks = model_checks.model_checks(plan.monitor)
    if checks:
        context = model_checks.context(plan, window, profile, now)
        counted = {(None, None): dict.fromkeys([ROWS_KEY, *(valid_key(b.column) for b in layout.bins)], 0)}
        query = model_checks.window_query(plan, checks, context, counted)
        waits = "new_category_rate's reference categories below are placeholders" if stored is None and categories else ""
        waits = "; ".join(w for w in (waits, note_calibration) if w)
        steps.append(Step("model and data checks, every metric x segment, one query", query.expression(), waits))
    return steps


def _unbound(bound: BoundMonitor) -> ibis.Table:
    source = bound.loaded.spec.source
    if source.sql is not None:
        return bound.table
    name, database = connect.table_reference(source.table)
    catalog = database[0] if isinstance(database, tuple) else None
    schema = database[-1] if isinstance(database, tuple) else database
    return ibis.table(bound.table.schema(), name=name, database=schema, catalog=catalog)


def _unbound_labels(bound: BoundMonitor) -> ibis.Table | None:
    """The labels table as an unbound table with its real schema and name."""
    labels = bound.plan.inputs.labels if bound.plan.inputs is not None else None
    if labels is None:
        return None
    name, database = connect.table_reference(bound.loaded.spec.model.labels.table)
    catalog = database[0] if isinstance(database, tuple) else None
    schema = database[-1] if isinstance(database, tuple) else database
    return ibis.table(labels.schema(), name=name, database=schema, catalog=catalog)


def _stored_profile(workspace: Workspace, plan: MonitorPlan, reference: Window, source: str) -> ReferenceProfile | None:
    try:
        return WindowMeasurer(plan, workspace.store, source).cached_profile(reference)
    except Exception:  # no result tables yet, or a warehouse compile cannot read
        return None


def _rebind_where(bound: BoundMonitor, table: ibis.Table):
    """The ``where`` predicate rebuilt on the unbound table (expressions belong to one table)."""
    if bound.where is None:
        return None
    from driftline.macros import parse_expression
    from driftline.sql_to_ibis import to_ibis

    location = bound.loaded.positions.locate(("source", "where"))
    expression = parse_expression(bound.loaded.spec.source.where, macros=bound.macros, location=location, what="where")
    return to_ibis(expression, table, location=location, what="where")


def _placeholder_bins(plan: MonitorPlan) -> dict:
    """Stand-in edges and categories, to show the query's shape before a profile exists."""
    placeholders = {}
    for column in plan.binned_columns:
        if column.binning.kind == "numeric":
            edges = tuple(k / column.binning.bins for k in range(1, column.binning.bins))
            placeholders[column.key] = ColumnBins(column.name, column.binning.key, "numeric", edges=edges)
        else:
            categories = tuple(f"category_{k}" for k in range(1, 4))
            placeholders[column.key] = ColumnBins(column.name, column.binning.key, "categorical", categories=categories)
    return placeholders
