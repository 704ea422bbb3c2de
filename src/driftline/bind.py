"""Binding a monitor to the warehouse: find its source table, check every column it names
against the real schema, and translate its ``where`` into an ibis predicate.

Every problem is reported at the YAML key that caused it, with close matches for misspellings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from driftline import connect
from driftline.errors import ConfigError, ConfigErrors
from driftline.macros import check_source_query
from driftline.plan.columns import PREDICTION_COLUMN, selected_columns
from driftline.plan.frame import resolve_labels
from driftline.plan.model_checks import validate_model_checks
from driftline.plan.monitor import EXACT_METHODS, MonitorPlan, build_plan
from driftline.plan.profile import now_utc
from driftline.spec.errors import did_you_mean
from driftline.spec.loader import LoadedMonitor
from driftline.spec.models import Bound, DriftCheck
from driftline.windows import Window, last_due_end, reference_window

P_VALUE_METHODS = ("chi2", "ks")


@dataclass
class BoundMonitor:
    loaded: LoadedMonitor
    table: ir.Table
    where: ir.BooleanValue | None
    plan: MonitorPlan
    macros: Mapping[str, Any]

    @property
    def source_fingerprint(self) -> str:
        """What the rows are: the table (or SQL) and the ``where`` with its macros expanded.

        Part of the reference profile's cache key, so editing the source, the filter or a macro
        it calls builds a new profile instead of reusing a stale one.
        """
        from driftline.macros import parse_expression

        source = self.loaded.spec.source
        where = ""
        if source.where:
            location = self.loaded.positions.locate(("source", "where"))
            where = parse_expression(source.where, macros=self.macros, location=location, what="where").sql()
        return f"{source.table or source.sql}|{where}"


def bind_monitor(loaded: LoadedMonitor, con: ibis.BaseBackend, macros: Mapping[str, Any], dialect: str | None = None) -> BoundMonitor:
    """Resolve and check ``loaded`` against ``con``; raise ConfigErrors listing every problem."""
    problems: list[ConfigError] = []
    table = _source_table(loaded, con)
    schema = dict(table.schema().items())
    _check_columns(loaded, schema, problems)
    _check_drift_options(loaded, schema, problems)
    where = _where(loaded, table, macros, problems)
    validate_model_checks(loaded, table, macros, problems)
    if problems:
        raise ConfigErrors(problems)
    _check_segment_values(loaded, table, where, con)
    labels = resolve_labels(con, loaded.spec)
    plan = build_plan(loaded.spec, table, where, dialect or con.name, labels=labels, macros=macros)
    return BoundMonitor(loaded, table, where, plan, macros)


def _source_table(loaded: LoadedMonitor, con: ibis.BaseBackend) -> ir.Table:
    source = loaded.spec.source
    if source.sql is not None:
        check_source_query(source.sql, location=loaded.positions.locate(("source", "sql")), backend=con.name)
        try:
            return connect.unquoted_names_lower_case(con, con.sql(source.sql))
        except Exception as error:
            raise ConfigError(f"source.sql: the warehouse rejected it: {_first_line(error)}", loaded.positions.locate(("source", "sql"))) from None
    try:
        return connect.find_table(con, source.table)
    except LookupError as error:
        if source.dbt is not None:  # the table is the relation dbt's manifest gave for it
            message = f"source.dbt: {source.dbt!r} is {error}; has dbt built it (`dbt build`) in this warehouse?"
            raise ConfigError(message, loaded.positions.locate(("source", "dbt"))) from None
        raise ConfigError(f"source.table: {error}", loaded.positions.locate(("source", "table"))) from None


def _check_columns(loaded: LoadedMonitor, schema: Mapping[str, dt.DataType], problems: list[ConfigError]) -> None:
    def check(column: str | None, path: tuple, numeric: bool = False) -> None:
        if column is None or column == PREDICTION_COLUMN:
            return
        where = loaded.positions.locate(path)
        if column not in schema:
            problems.append(ConfigError(f"column {column!r} not found in the source{did_you_mean(column, schema)}", where))
        elif numeric and not schema[column].is_numeric():
            problems.append(ConfigError(f"column {column!r} is {schema[column]}, not numeric; list it under features.categorical", where))

    spec = loaded.spec
    timestamp = spec.source.timestamp
    check(timestamp, ("source", "timestamp"))
    if timestamp in schema and not (schema[timestamp].is_timestamp() or schema[timestamp].is_date()):
        problems.append(ConfigError(f"source.timestamp: column {timestamp!r} is {schema[timestamp]}, expected a timestamp", loaded.positions.locate(("source", "timestamp"))))
    for i, column in enumerate(spec.features.numeric):
        check(column, ("features", "numeric", i), numeric=True)
    for i, column in enumerate(spec.features.categorical):
        check(column, ("features", "categorical", i))
    for i, column in enumerate(spec.segments):
        check(column, ("segments", i))
        if column in schema and schema[column].is_floating():
            # every distinct value would be a segment: thousands of result rows per check and window
            message = f"segment column {column!r} is {schema[column]}: segments are categories; bucket it in `source.sql` first"
            problems.append(ConfigError(message, loaded.positions.locate(("segments", i))))
    if spec.model is not None:
        for key in ("score", "prediction", "label"):
            check(getattr(spec.model, key), ("model", key), numeric=key == "score")
    for i, item in enumerate(spec.checks):
        if isinstance(item, DriftCheck) and isinstance(item.columns, list):
            for j, column in enumerate(item.columns):
                check(column, ("checks", i, "drift", "columns", j))


def _check_segment_values(loaded: LoadedMonitor, table: ir.Table, where: ir.BooleanValue | None, con: ibis.BaseBackend) -> None:
    """Each segment column may have at most ``max_segment_values`` distinct values in the
    reference window: one ``count(distinct)`` query over it for all segment columns.

    A decimal or id column as a segment turns one window into tens of thousands of result rows.
    For a trailing reference, the reference of the latest due window is counted.
    """
    spec = loaded.spec
    if not spec.segments:
        return
    reference = reference_window(spec.reference, _latest_window(spec.schedule))
    rows = table.filter(where) if where is not None else table
    stamp = rows[spec.source.timestamp]
    rows = rows.filter(stamp >= ibis.literal(reference.start), stamp < ibis.literal(reference.end))
    counts = rows.aggregate(**{f"n{i}": rows[column].nunique() for i, column in enumerate(spec.segments)})
    with connect.bounded_query(con, None):
        found = counts.execute().iloc[0]
    problems = []
    for i, column in enumerate(spec.segments):
        count = int(found[f"n{i}"])
        if count > spec.max_segment_values:
            message = (
                f"segment column {column!r} has {count:,} distinct values in the reference window {reference}, more than "
                f"max_segment_values ({spec.max_segment_values}); bucket it in `source.sql`, or raise max_segment_values"
            )
            problems.append(ConfigError(message, loaded.positions.locate(("segments", i))))
    if problems:
        raise ConfigErrors(problems)


def _latest_window(schedule) -> Window:
    end = last_due_end(now_utc(), schedule)
    return Window(end - schedule.every, end)


def _check_drift_options(loaded: LoadedMonitor, schema: Mapping[str, dt.DataType], problems: list[ConfigError]) -> None:
    spec = loaded.spec
    for i, item in enumerate(spec.checks):
        if not isinstance(item, DriftCheck):
            continue
        where = loaded.positions.locate(("checks", i, "drift"))
        try:
            columns = selected_columns(item.columns, spec)
        except ValueError as error:
            problems.append(ConfigError(str(error), where))
            continue
        if not columns:
            problems.append(ConfigError(f"drift check selects no columns (columns: {item.columns}); list features or name columns", where))
        if item.method in EXACT_METHODS:
            categorical = [c for c in columns if c in schema and (c in spec.features.categorical or not schema[c].is_numeric())]
            if categorical:
                problems.append(ConfigError(f"method {item.method} needs numeric columns; {categorical[0]!r} is categorical (use psi, chi2, js ...)", where))
        if item.p_value is not None and item.method not in P_VALUE_METHODS:
            problems.append(ConfigError(f"p_value gating needs a method with a p-value ({', '.join(P_VALUE_METHODS)}), not {item.method}", loaded.positions.locate(("checks", i, "drift", "p_value"))))
        for level in ("warn", "fail"):
            threshold = getattr(item, level)
            if isinstance(threshold, Bound) and (threshold.drop is not None or threshold.rise is not None):
                problems.append(ConfigError(f"{level}: drop/rise compare with the reference window, which a drift check already does; use a number", loaded.positions.locate(("checks", i, "drift", level))))
            elif isinstance(threshold, Bound) and (threshold.confidence is not None or threshold.reference_band is not None):
                key = "confidence" if threshold.confidence is not None else "reference_band"
                problems.append(ConfigError(f"{level}: {key} applies to performance, fairness and metric values, not drift distances; use a number (or p_value)", loaded.positions.locate(("checks", i, "drift", level))))


def _where(loaded: LoadedMonitor, table: ir.Table, macros: Mapping[str, Any], problems: list[ConfigError]) -> ir.BooleanValue | None:
    sql = loaded.spec.source.where
    if not sql:
        return None
    from driftline.macros import contains_aggregate, parse_expression
    from driftline.sql_to_ibis import to_ibis

    location = loaded.positions.locate(("source", "where"))
    try:
        expression = parse_expression(sql, macros=macros, location=location, what="where")
        predicate = to_ibis(expression, table, location=location, what="where")
    except ConfigError as error:
        problems.append(error)
        return None
    if contains_aggregate(expression):
        problems.append(ConfigError("where: an aggregate cannot filter rows; use a plain condition such as \"model_version = 'v3'\"", location))
        return None
    if not predicate.type().is_boolean():
        problems.append(ConfigError(f"where: expected a true/false condition, got a {predicate.type()} value", location))
        return None
    return predicate


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
