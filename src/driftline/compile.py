"""``driftline compile``: the SQL a run executes, for any supported dialect.

The same plan code builds the expressions as a real run; only the table is swapped for an
unbound one with the warehouse's schema and the user's table name, so the output reads as SQL
for the target warehouse.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Sequence

import ibis

from driftline import backends
from driftline.bind import BoundMonitor
from driftline.errors import ConfigError, Location
from driftline.plan.model_checks import model_checks_query
from driftline.plan.monitor import MonitorPlan, build_plan
from driftline.plan.profile import ColumnBins, ReferenceProfile, profile_key
from driftline.plan.source import CURRENT, REFERENCE
from driftline.spec.errors import did_you_mean
from driftline.windows import Window, last_due_end, reference_window

if TYPE_CHECKING:
    from driftline.api import Workspace


def compile_monitors(workspace: Workspace, names: Sequence[str] | None, dialect: str, now: datetime) -> str:
    if dialect not in backends.DIALECTS:
        raise ConfigError(f"unknown dialect {dialect!r}{did_you_mean(dialect, backends.DIALECTS)}; supported: {', '.join(backends.DIALECTS)}", Location("--dialect"))
    sections = []
    for monitor in workspace.bind(names, dialect):
        sections.append(_compile_monitor(workspace, monitor, dialect, now))
    return "\n\n".join(sections) + "\n"


def _compile_monitor(workspace: Workspace, bound: BoundMonitor, dialect: str, now: datetime) -> str:
    spec = bound.loaded.spec
    end = last_due_end(now, spec.schedule)
    window = Window(end - spec.schedule.every, end)
    reference = reference_window(spec.reference, window)
    table = _unbound(bound)
    where = bound.where if spec.source.sql else _rebind_where(bound, table)
    plan = build_plan(spec, table, where, dialect, labels=_unbound_labels(bound), macros=bound.macros)
    stored = _stored_profile(workspace, plan, reference, bound.source_fingerprint)
    bins, cached = (stored.bins, True) if stored is not None else (_placeholder_bins(plan), False)
    queries: list[tuple[str, object]] = []
    derived = not cached and plan.derives_reference_counts
    if not cached:
        queries += [(_edges_title(dialect), plan.edges_query(reference)),
                    ("reference profile: top categories" + (", counted per segment combination" if derived else ""), plan.categories_query(reference))]
    windows = {CURRENT: window} if cached or derived else {CURRENT: window, REFERENCE: reference}
    counts_title = "histogram counts, every column x segment, one scan"
    if derived:
        counts_title += " (the reference's counts come from the edge and category queries)"
    queries.append((counts_title, plan.counts_query(windows, bins)[0]))
    for (check, column), expr in plan.exact_queries(window, reference).items():
        queries.append((f"exact distances for {check} on {column}", expr))
    profile = stored or ReferenceProfile("", reference)
    queries.append(("model and data checks, every metric x segment, one query", model_checks_query(plan, window, profile, now)))
    header = f"-- monitor {spec.name}: window {window}, reference {reference}, dialect {dialect}"
    if not cached:
        header += "\n-- bin edges and categories below are placeholders until the reference profile is built"
    body = [f"-- {title}\n{backends.to_sql(expr, dialect).strip()};" for title, expr in queries if expr is not None]
    return "\n\n".join([header, *body])


def _edges_title(dialect: str) -> str:
    if backends.has_native_histogram(dialect):
        return ("reference profile: numeric bin edges, step 1 of 3 (a sample brackets each quantile; "
                "the exact values come from a histogram and a fetch built on its result, grouped by the "
                "segment values when they also give the reference's bin counts)")
    return "reference profile: numeric bin edges"


def _unbound(bound: BoundMonitor) -> ibis.Table:
    source = bound.loaded.spec.source
    if source.sql is not None:
        return bound.table
    name, database = backends.table_reference(source.table)
    catalog = database[0] if isinstance(database, tuple) else None
    schema = database[-1] if isinstance(database, tuple) else database
    return ibis.table(bound.table.schema(), name=name, database=schema, catalog=catalog)


def _unbound_labels(bound: BoundMonitor) -> ibis.Table | None:
    """The labels table as an unbound table with its real schema and name."""
    labels = bound.plan.inputs.labels if bound.plan.inputs is not None else None
    if labels is None:
        return None
    name, database = backends.table_reference(bound.loaded.spec.model.labels.table)
    catalog = database[0] if isinstance(database, tuple) else None
    schema = database[-1] if isinstance(database, tuple) else database
    return ibis.table(labels.schema(), name=name, database=schema, catalog=catalog)


def _stored_profile(workspace: Workspace, plan: MonitorPlan, reference: Window, source: str) -> ReferenceProfile | None:
    key = profile_key(plan.monitor.name, reference, plan.binned_columns, plan.segments, source)
    try:
        stored = workspace.store.load_profile(key)
    except Exception:
        return None
    return ReferenceProfile.from_json(key, reference, stored) if stored is not None else None


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
