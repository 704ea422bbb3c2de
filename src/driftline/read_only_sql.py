"""What a ``source.sql`` query may call and read from: an allowlist, not a denylist.

``source.sql`` is the one piece of user SQL that reaches the warehouse as text (``con.sql``).
A warehouse offers far more than tables to a SELECT: DuckDB reads files and URLs
(``read_text('/etc/passwd')``, ``read_csv``, ``glob``, ``FROM 'x.csv'``), PostgreSQL reads the
server's files (``pg_read_file``), sleeps (``pg_sleep``) and changes the session's settings
(``set_config``). A denylist misses the next such function; so the query is parsed in the
warehouse's own dialect and every node is checked against what a monitor needs:

- functions: aggregates, window functions, and scalar math, string, date, conditional and cast
  functions (``FUNCTIONS`` and ``FUNCTION_NAMES``);
- table sources: named tables (``[catalog.][schema.]table``), subqueries, CTEs and ``VALUES``;
  no table functions, files or URLs.

``where``, macros and custom metric ``sql:`` never reach the warehouse as text: they are
translated node by node by :mod:`driftline.sql_to_ibis`, which is an allowlist of its own.
"""

from __future__ import annotations

import re

from sqlglot import exp

from driftline.errors import ConfigError, Location

_FUNCTION_CLASSES = """
    Count CountIf Sum Avg Min Max Stddev StddevSamp StddevPop Variance VariancePop Median Quantile
    PercentileCont PercentileDisc ApproxQuantile ApproxDistinct LogicalAnd LogicalOr AnyValue Corr
    CovarSamp CovarPop First Last ArgMax ArgMin GroupConcat ArrayAgg
    RowNumber Rank DenseRank Lag Lead FirstValue LastValue NthValue Ntile PercentRank CumeDist
    Abs Round Floor Ceil Ln Log Exp Sqrt Pow Sign Least Greatest Trunc SafeDivide IsNan IsInf
    Lower Upper Length Trim Substring Concat ConcatWs SplitPart Left Right Pad StrPosition Initcap
    Replace RegexpLike RegexpExtract RegexpReplace
    TimestampTrunc DateTrunc DatetimeTrunc Extract TimeToStr StrToTime StrToDate DateDiff DateAdd
    DateSub TimestampAdd TimestampSub TimestampDiff TsOrDsToDate TimeStrToTime TimeToUnix UnixToTime
    CurrentDate CurrentTimestamp CurrentTime Date Datetime DateStrToDate DateFromParts Year Month Day
    DayOfWeek DayOfMonth DayOfYear WeekOfYear Quarter LastDay
    Case If Coalesce Nullif Cast TryCast Collate Exists Array JSONExtract JSONExtractScalar
""".split()
FUNCTIONS: frozenset[type[exp.Func]] = frozenset(getattr(exp, name) for name in _FUNCTION_CLASSES if hasattr(exp, name))
"""The functions sqlglot knows by meaning that a source query may call."""

FUNCTION_NAMES = frozenset({"now", "age", "date_part", "make_date", "isfinite", "to_timestamp", "mod", "rank"})
"""Functions sqlglot parses by name only (``exp.Anonymous``) that a source query may call."""

ALLOWED = (
    "aggregates (count, sum, avg, min, max, stddev, percentile_cont ...), window functions (row_number, "
    "lag ...), math, string, date and conditional functions (round, lower, date_trunc, extract, coalesce, "
    "case, cast ...); FROM reads named tables, subqueries and CTEs only"
)
"""What the allowlist admits, as said in its error messages."""

# A table name part with any of these is a file or a URL to DuckDB's replacement scans.
_PATH_LIKE = re.compile(r"[/\\:.~*?]")
# Spark reads files through a data source "schema": SELECT * FROM parquet.`/data/x`.
_SPARK_FILE_FORMATS = {"csv", "json", "parquet", "orc", "text", "avro", "delta", "binaryfile", "jdbc", "libsvm"}


def check_reads_tables_only(query: exp.Expression, *, location: Location, what: str) -> None:
    """Refuse any function outside the allowlist, and any table source but a named table."""
    for node in query.walk():
        if isinstance(node, exp.Table):
            _check_table(node, location, what)
        elif isinstance(node, exp.Func) and not _allowed_function(node):
            name = function_name(node)
            raise ConfigError(f"{what}: function {name}() is not allowed in a monitor's SQL; allowed: {ALLOWED}", location)


def function_name(node: exp.Func) -> str:
    """The function's name as a user would write it."""
    return node.name.lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()


def _allowed_function(node: exp.Func) -> bool:
    if isinstance(node, exp.Anonymous):
        return node.name.lower() in FUNCTION_NAMES
    return type(node) in FUNCTIONS


def _check_table(table: exp.Table, location: Location, what: str) -> None:
    """A table source is a name; a function (``read_csv(...)``, ``dblink(...)``) or a path is not."""
    source = table.this
    if isinstance(source, exp.Func):
        name = function_name(source)
        raise ConfigError(f"{what}: table function {name}() in FROM is not allowed; allowed: {ALLOWED}", location)
    if not isinstance(source, exp.Identifier):
        raise ConfigError(f"{what}: '{table.sql()}' in FROM is not a table name; allowed: {ALLOWED}", location)
    parts = [part for part in (table.args.get("catalog"), table.args.get("db"), source) if part is not None]
    for part in parts:
        if not isinstance(part, exp.Identifier) or _PATH_LIKE.search(part.name):
            raise ConfigError(f"{what}: '{table.sql()}' in FROM looks like a file or URL, not a table; allowed: {ALLOWED}", location)
    if table.args.get("db") is not None and table.args["db"].name.lower() in _SPARK_FILE_FORMATS and source.quoted:
        raise ConfigError(f"{what}: '{table.sql()}' in FROM reads files, not a table; allowed: {ALLOWED}", location)
