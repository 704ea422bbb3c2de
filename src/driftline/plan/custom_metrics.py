"""Custom KPI metrics: ``metric: {name, sql}``, one aggregate SQL expression that may call macros.

The SQL is parsed with sqlglot and macro-expanded (``macros.parse_expression``), then rebuilt as
an ibis expression over the window's rows (``sql_to_ibis.to_ibis``), so it is computed in the
window's one query with every other aggregate, overall and per segment, on every backend.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from sqlglot import exp

from driftline import reasons, standard_errors
from driftline.errors import ConfigError, Location
from driftline.macros import contains_aggregate, parse_expression, referenced_columns
from driftline.plan.check_kind import CheckKind, Context, Value
from driftline.plan.window_query import ROWS_KEY, SegmentFigures, WindowQuery
from driftline.reasons import Reason
from driftline.spec.models import MetricCheck, Monitor
from driftline.sql_to_ibis import to_ibis


def parse_metric(check: MetricCheck, macros: Mapping[str, Any], location: Location) -> exp.Expression:
    """The check's SQL parsed and macro-expanded; a ConfigError unless it is one aggregate."""
    what = f"metric {check.name}"
    expression = parse_expression(check.sql, macros=macros, location=location, what=what)
    if not contains_aggregate(expression):
        raise ConfigError(f"{what}: expected an aggregate expression such as avg(x) or count(*); '{check.sql}' aggregates nothing", location)
    return expression


def parse_metrics(monitor: Monitor, macros: Mapping[str, Any]) -> dict[str, exp.Expression]:
    """Every metric check's parsed SQL by check name (validated before, so it parses)."""
    return {
        check.name: parse_metric(check, macros, _location(check))
        for check in monitor.checks
        if isinstance(check, MetricCheck)
    }


def metric_columns(parsed: Mapping[str, exp.Expression], table_columns: Sequence[str]) -> list[str]:
    """The source columns the parsed metrics read, spelled as in the table (unquoted names in
    SQL match case-insensitively, as ``to_ibis`` resolves them)."""
    by_folded = {c.lower(): c for c in table_columns}
    names = (name for expression in parsed.values() for name in sorted(referenced_columns(expression)))
    return [name if name in table_columns else by_folded[name.lower()] for name in names if name in table_columns or name.lower() in by_folded]


def _location(check: MetricCheck) -> Location:
    return Location(f"metric {check.name}")


def _key(check: MetricCheck) -> str:
    return f"metric:{check.name}"


def _averaged(expression: exp.Expression) -> exp.Expression | None:
    """What the metric averages when it is one ``avg(x)`` (its standard error is then s / sqrt(n));
    None for any other aggregate, whose error driftline does not know."""
    while isinstance(expression, exp.Paren):
        expression = expression.this
    return expression.this if isinstance(expression, exp.Avg) else None


def _spread_keys(check: MetricCheck) -> tuple[str, str]:
    """The figures of an ``avg(x)`` metric's x: its sample standard deviation and count."""
    return f"metric_stddev:{check.name}", f"metric_count:{check.name}"


class CustomMetric(CheckKind):
    check_type = "metric"

    def metric(self, check: MetricCheck) -> str:
        return check.name

    def register(self, check: MetricCheck, query: WindowQuery, context: Context) -> None:
        expression = context.inputs.metric_sql[check.name]
        query.add_sum(ROWS_KEY, lambda t: t.count())
        query.add(_key(check), lambda t: to_ibis(expression, t, location=_location(check), what=f"metric {check.name}"))
        averaged = _averaged(expression)
        if averaged is not None:  # the same query also returns the spread of what is averaged
            stddev_key, count_key = _spread_keys(check)
            spread = {stddev_key: exp.StddevSamp(this=averaged.copy()), count_key: exp.Count(this=averaged.copy())}
            for key, sql in spread.items():
                query.add(key, lambda t, sql=sql: to_ibis(sql, t, location=_location(check), what=f"metric {check.name}"))

    def measure(self, check: MetricCheck, column: str | None, figures: SegmentFigures, context: Context) -> Value:
        f = figures.main
        value = Value.of(f[_key(check)], f.count(ROWS_KEY), Reason(reasons.NO_VALUES, f"metric {check.name} is null here"))
        stddev_key, count_key = _spread_keys(check)
        return value.with_error(standard_errors.mean_error(f[stddev_key], f[count_key])).weighted(f[count_key])

    def has_std_error(self, check: MetricCheck, macros: Mapping[str, Any]) -> bool:
        """Only a metric that is one ``avg(x)`` has one (s / sqrt(n))."""
        try:
            return _averaged(parse_metric(check, macros, _location(check))) is not None
        except ConfigError:
            return False  # the SQL's own error is reported by validate

    def validate(self, check: MetricCheck, index: int, validator) -> None:
        validator.metric_sql(check, index)
