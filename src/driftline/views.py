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
    Every result with the numbers a line chart needs: the warn and fail threshold lines, the
    anomaly band and the reference value.

Every view ends with ``severity_rank`` (fail 4, error 3, warn 2, insufficient_data 1, ok 0), so
``order by severity_rank desc`` lists fails first; on DuckDB and PostgreSQL the views and their
columns carry comments (``COMMENT ON``) saying what they hold.

The views are built with the ibis expression API, so each backend gets SQL in its own dialect.
They read columns, never search stored text: the bounds, reference value and reason are columns
of ``driftline_results``; only the anomaly band is read from the ``details`` JSON. Like the
tables, the views' columns are a public contract and only ever grow at the end: PostgreSQL's
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

from collections.abc import Callable, Mapping

import ibis
import ibis.expr.types as ir
import sqlglot.expressions as sge

from driftline import dialects, writers
from driftline.judge import SEVERITY_RANK
from driftline.reasons import LABELS_NOT_MATURE
from driftline.result_schema import ALERTS, COLUMN_DESCRIPTIONS, RESULTS

LATEST = "driftline_latest"
OPEN_ALERTS = "driftline_open_alerts"
CHECK_HISTORY = "driftline_check_history"
VIEWS = (LATEST, OPEN_ALERTS, CHECK_HISTORY)

SERIES_KEYS = ("monitor", "check_name", "column_name", "segment_key", "segment_value")
BACKENDS_WITH_COMMENTS = ("duckdb", "postgres")  # Spark's views take comments only when created


# driftline_results columns added after the views gained severity_rank, in the order added.
AFTER_SEVERITY_RANK = ("std_error",)


def create_views(con: ibis.BaseBackend, database: str | None = None) -> None:
    """Create (or replace) the driftline views next to the result tables in ``database``."""
    for name, build in _BUILDERS.items():
        writers.create_view(con, name, build(con, database), database)
        if con.name in BACKENDS_WITH_COMMENTS:
            _comment(con, name, database)


def latest_results(con: ibis.BaseBackend, database: str | None = None) -> ir.Table:
    """The latest row of ``driftline_results`` per monitor, check, column and segment; a row
    waiting for its labels only where the series has no other."""
    results = con.table(RESULTS, database=database)
    # ifelse, not a cast: PostgreSQL cannot cast a boolean to a number
    waiting = ibis.ifelse((results.reason == LABELS_NOT_MATURE).fill_null(False), 1, 0)
    newest_first = ibis.row_number().over(
        group_by=[results[key] for key in SERIES_KEYS],
        order_by=[waiting, ibis.desc(results.window_end), ibis.desc(results.created_at)],
    )
    ranked = results.mutate(_rank=newest_first)
    latest = ranked.filter(ranked._rank == 0).drop("_rank")
    # A view's columns only grow at the end (PostgreSQL's CREATE OR REPLACE VIEW holds a new
    # definition to the old one's columns): results columns added after severity_rank follow it.
    earlier = [c for c in latest.columns if c not in AFTER_SEVERITY_RANK]
    return latest.select(*earlier, severity_rank=severity_rank(latest.status), **{c: latest[c] for c in AFTER_SEVERITY_RANK})


def open_alerts(con: ibis.BaseBackend, database: str | None = None) -> ir.Table:
    """Rows of ``driftline_alerts`` whose episode is still open."""
    alerts = con.table(ALERTS, database=database)
    still_open = alerts.filter(alerts.state == "open")
    return still_open.mutate(severity_rank=severity_rank(still_open.severity))


def check_history(con: ibis.BaseBackend, database: str | None = None) -> ir.Table:
    """Results with thresholds, anomaly band and reference value as numeric columns.

    ``warn_threshold_value`` and ``fail_threshold_value`` are the line to draw for a one-sided
    threshold (a plain number, ``{above}``, ``{below}``, ``{drop}``, ``{rise}``): its one bound,
    as resolved for the window. A two-sided one (``{outside}``, or an anomaly band in the fail
    bounds) gives null there; ``warn_lower`` ... ``fail_upper`` at the end hold both sides.
    """
    results = con.table(RESULTS, database=database)
    band = results.details.cast("json")["band"]
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
        warn_threshold_value=_one_sided(results.warn_lower, results.warn_upper),
        fail_threshold_value=_one_sided(results.fail_lower, results.fail_upper),
        band_lower=dialects.json_number(band["lower"], con.name),
        band_upper=dialects.json_number(band["upper"], con.name),
        reference_value=results.reference_value,
        n_current=results.n_current,
        n_reference=results.n_reference,
        created_at=results.created_at,
        # Added later; columns only grow at the end.
        warn_lower=results.warn_lower,
        warn_upper=results.warn_upper,
        fail_lower=results.fail_lower,
        fail_upper=results.fail_upper,
        reason=results.reason,
        severity_rank=severity_rank(results.status),
        std_error=results.std_error,
    )


def severity_rank(status: ir.StringValue) -> ir.IntegerValue:
    """fail 4, error 3, warn 2, insufficient_data 1, ok 0 (null for anything else)."""
    ranked = ibis.cases(*((status == name, rank) for name, rank in SEVERITY_RANK.items()), else_=ibis.null("int64"))
    return ranked.cast("int64")


def _one_sided(lower: ir.FloatingValue, upper: ir.FloatingValue) -> ir.FloatingValue:
    """The bound of a one-sided threshold; null when it has both sides or none."""
    return ibis.cases(
        (lower.isnull(), upper),
        (upper.isnull(), lower),
        else_=ibis.null("float64"),
    )


# -- comments ---------------------------------------------------------------------------------

_RESULT_COLUMNS = COLUMN_DESCRIPTIONS[RESULTS]
_SEVERITY_RANK = "fail 4, error 3, warn 2, insufficient_data 1, ok 0: order by severity_rank desc lists fails first"
_COMMENTS: dict[str, tuple[str, Mapping[str, str]]] = {
    LATEST: (
        "The latest result per monitor, check, column and segment (a result waiting for its labels only where there is no other)",
        {**_RESULT_COLUMNS, "severity_rank": _SEVERITY_RANK},
    ),
    OPEN_ALERTS: (
        "Alert episodes still open: one per monitor, check, column and segment in breach",
        {
            "severity": "warn | fail: the worst status the episode has seen",
            "opened_at": "the start of the episode's first breaching window (UTC)",
            "last_seen_at": "the start of its latest breaching window (UTC)",
            "notify_status": "pending | sending | sent | failed | suppressed",
            "severity_rank": "fail 4, warn 2: order by severity_rank desc lists fails first",
        },
    ),
    CHECK_HISTORY: (
        "Every result with the numbers a line chart needs: threshold lines, anomaly band, reference value",
        {
            **_RESULT_COLUMNS,
            "warn_threshold_value": "the warn line of a one-sided threshold (its one bound); null for a two-sided one: see warn_lower, warn_upper",
            "fail_threshold_value": "the fail line of a one-sided threshold (its one bound); null for a two-sided one: see fail_lower, fail_upper",
            "band_lower": "the anomaly band's lower edge; null without a band",
            "band_upper": "the anomaly band's upper edge; null without a band",
            "severity_rank": _SEVERITY_RANK,
        },
    ),
}


def descriptions(view: str) -> tuple[str, dict[str, str]]:
    """What the view holds and what each of its columns says: its own comments over those of the
    table it reads."""
    about_view, about_columns = _COMMENTS[view]
    table = ALERTS if view == OPEN_ALERTS else RESULTS
    return about_view, {**COLUMN_DESCRIPTIONS[table], **about_columns}


def _comment(con: ibis.BaseBackend, view: str, database: str | None) -> None:
    """COMMENT ON the view and its columns (replacing a view drops its comments, so every time)."""
    about_view, about_columns = _COMMENTS[view]
    name = sge.table_(view, db=database, quoted=True)
    statements = [f"COMMENT ON VIEW {name.sql(con.dialect)} IS {_literal(about_view, con)}"]
    for column in con.table(view, database=database).columns:
        if column in about_columns:
            target = sge.column(column, table=view, db=database, quoted=True)
            statements.append(f"COMMENT ON COLUMN {target.sql(con.dialect)} IS {_literal(about_columns[column], con)}")
    for statement in statements:
        con.raw_sql(statement)


def _literal(text: str, con: ibis.BaseBackend) -> str:
    return sge.convert(text).sql(con.dialect)


_BUILDERS: dict[str, Callable[[ibis.BaseBackend, str | None], ir.Table]] = {
    LATEST: latest_results,
    OPEN_ALERTS: open_alerts,
    CHECK_HISTORY: check_history,
}
