"""Convenience views over the result tables, for BI tools and the report.

Three views live next to the result tables (same database/schema):

``driftline_latest``
    The latest result per monitor, check, column and segment: the row with the greatest
    ``window_end`` (then ``created_at``), passing over results still waiting for their labels
    (a late-label monitor's newest windows always are), so a matured breach stays in view. A
    null segment is the overall row; SQL's ``PARTITION BY`` already groups nulls together, so
    the overall row is one partition.
``driftline_open_alerts``
    Breach episodes that are still open.
``driftline_check_history``
    Every result with the numbers a line chart needs as numeric columns: the warn and fail
    thresholds, the anomaly band and the reference value, parsed from ``details`` (JSON) and from
    the threshold text as written in the monitor.

The views are built with the ibis expression API, so each backend gets SQL in its own dialect.
Like the tables, their columns are a public contract and only ever grow at the end: PostgreSQL's
``CREATE OR REPLACE VIEW`` accepts new trailing columns but not renamed or reordered ones.

>>> import ibis
>>> from driftline.views import VIEWS, create_views
>>> con = ibis.duckdb.connect()
>>> from driftline.result_schema import TABLES
>>> for name, schema in TABLES.items():
...     _ = con.create_table(name, schema=schema)
>>> create_views(con)
>>> sorted(set(VIEWS) & set(con.list_tables()))
['driftline_check_history', 'driftline_latest', 'driftline_open_alerts']
"""

from __future__ import annotations

from collections.abc import Callable

import ibis
import ibis.expr.types as ir

from driftline import backends
from driftline.plan.labels import LABELS_NOT_MATURE
from driftline.result_schema import ALERTS, RESULTS

LATEST = "driftline_latest"
OPEN_ALERTS = "driftline_open_alerts"
CHECK_HISTORY = "driftline_check_history"
VIEWS = (LATEST, OPEN_ALERTS, CHECK_HISTORY)

# A decimal number as a threshold is written in YAML: 0.25, -1, 1e-3, .5
_NUMBER = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
# A one-key mapping such as `{below: 0.7}`, `{"drop": 0.03}` or `{'above': 5}`.
_ONE_KEY = r"""^\s*\{\s*["']?(above|below|drop|rise)["']?\s*:\s*(""" + _NUMBER + r""")\s*\}\s*$"""
_PLAIN = r"^\s*(" + _NUMBER + r")\s*$"

SERIES_KEYS = ("monitor", "check_name", "column_name", "segment_key", "segment_value")


def create_views(con: ibis.BaseBackend, database: str | None = None) -> None:
    """Create (or replace) the driftline views next to the result tables in ``database``."""
    for name, build in _BUILDERS.items():
        backends.create_view(con, name, build(con, database), database)


def latest_results(con: ibis.BaseBackend, database: str | None = None) -> ir.Table:
    """The latest row of ``driftline_results`` per monitor, check, column and segment; a row
    waiting for its labels only where the series has no other."""
    results = con.table(RESULTS, database=database)
    # ifelse, not a cast: PostgreSQL cannot cast a boolean to a number
    waiting = ibis.ifelse(results.details.contains(LABELS_NOT_MATURE).fill_null(False), 1, 0)
    newest_first = ibis.row_number().over(
        group_by=[results[key] for key in SERIES_KEYS],
        order_by=[waiting, ibis.desc(results.window_end), ibis.desc(results.created_at)],
    )
    ranked = results.mutate(_rank=newest_first)
    return ranked.filter(ranked._rank == 0).drop("_rank")


def open_alerts(con: ibis.BaseBackend, database: str | None = None) -> ir.Table:
    """Rows of ``driftline_alerts`` whose episode is still open."""
    alerts = con.table(ALERTS, database=database)
    return alerts.filter(alerts.state == "open")


def check_history(con: ibis.BaseBackend, database: str | None = None) -> ir.Table:
    """Results with thresholds, anomaly band and reference value as numeric columns.

    ``warn_threshold_value`` and ``fail_threshold_value`` are the line to draw for each window:
    a plain number or ``{above: x}`` / ``{below: x}`` give x; ``{drop: x}`` and ``{rise: x}`` are
    relative to the reference value, so they give ``reference_value - x`` and
    ``reference_value + x``. Other forms (``{outside: [lo, hi]}``) give null.
    """
    results = con.table(RESULTS, database=database)
    details = results.details.cast("json")
    reference_value = _json_number(details["reference_value"], con.name)
    return results.select(
        "run_id",
        "monitor",
        "check_name",
        "check_type",
        "metric",
        "column_name",
        "segment_key",
        "segment_value",
        "window_start",
        "window_end",
        "value",
        "p_value",
        "status",
        "warn_threshold",
        "fail_threshold",
        warn_threshold_value=_threshold_value(results.warn_threshold, reference_value),
        fail_threshold_value=_threshold_value(results.fail_threshold, reference_value),
        band_lower=_json_number(details["band"]["lower"], con.name),
        band_upper=_json_number(details["band"]["upper"], con.name),
        reference_value=reference_value,
        n_current=results.n_current,
        n_reference=results.n_reference,
        created_at=results.created_at,
    )


def _json_number(value: ir.JSONValue, dialect: str) -> ir.FloatingValue:
    """A JSON value as a double; null when it is missing or not a number."""
    return backends.json_number(value, dialect)


def _threshold_value(text: ir.StringValue, reference_value: ir.FloatingValue) -> ir.FloatingValue:
    """The numeric line of a threshold written as text (see :func:`check_history`)."""
    plain = _regex_number(text, _PLAIN, 1)
    key = _regex_group(text, _ONE_KEY, 1)
    amount = _regex_number(text, _ONE_KEY, 2)
    return ibis.cases(
        (plain.notnull(), plain),
        (key.isin(["above", "below"]), amount),
        (key == "drop", reference_value - amount),
        (key == "rise", reference_value + amount),
        else_=ibis.null("float64"),
    )


def _regex_group(text: ir.StringValue, pattern: str, group: int) -> ir.StringValue:
    """Group ``group`` of ``pattern`` in ``text``; null when it does not match.

    Backends disagree on a failed match (DuckDB returns '', PostgreSQL null), so both become null.
    """
    return text.re_extract(pattern, group).nullif("")


def _regex_number(text: ir.StringValue, pattern: str, group: int) -> ir.FloatingValue:
    """A regex group as a double. The cast only runs on rows where the number pattern matched."""
    matched = _regex_group(text, pattern, group)
    return ibis.ifelse(matched.notnull(), matched.cast("float64"), ibis.null("float64"))


_BUILDERS: dict[str, Callable[[ibis.BaseBackend, str | None], ir.Table]] = {
    LATEST: latest_results,
    OPEN_ALERTS: open_alerts,
    CHECK_HISTORY: check_history,
}
