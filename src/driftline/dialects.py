"""Every difference between SQL dialects that driftline's queries meet, in one place.

The planner builds portable ibis expressions; where a backend lacks an operation (ibis raises
``OperationNotDefinedError``), the portable fallback is chosen here, by dialect name, and each
fallback is proven by a compile test for that dialect. Every dialect compiles with a subclass of
ibis's compiler, set on driftline's own connections and used by :func:`to_sql`, not patched into
ibis: each knows driftline's own operations (:class:`SearchStep`, :class:`SegmentLine`), and DuckDB's,
Spark's and Databricks' also write a double literal as a double (:class:`DuckDBCompiler`, :class:`PySparkCompiler`).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import ibis
import ibis.backends.sql.compilers as sc
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.rules as rlz
import ibis.expr.types as ir
import sqlglot.expressions as sge
from ibis.backends.sql.compilers.bigquery import BigQueryCompiler as IbisBigQueryCompiler
from ibis.backends.sql.compilers.clickhouse import ClickHouseCompiler as IbisClickHouseCompiler
from ibis.backends.sql.compilers.databricks import DatabricksCompiler as IbisDatabricksCompiler
from ibis.backends.sql.compilers.duckdb import DuckDBCompiler as IbisDuckDBCompiler
from ibis.backends.sql.compilers.postgres import PostgresCompiler as IbisPostgresCompiler
from ibis.backends.sql.compilers.pyspark import PySparkCompiler as IbisPySparkCompiler
from ibis.backends.sql.compilers.snowflake import SnowflakeCompiler as IbisSnowflakeCompiler
from ibis.backends.sql.compilers.trino import TrinoCompiler as IbisTrinoCompiler
from ibis.common.typing import VarTuple

DIALECTS = ("duckdb", "postgres", "snowflake", "bigquery", "trino", "databricks", "clickhouse", "pyspark")
# Dialects whose ibis compiler has no multi-quantile aggregate: one quantile per probability.
# (Spark has one, PERCENTILE(x, ARRAY(...)): as one aggregate per edge, Spark kept every value
# once per edge, and a 4g executor ran out of heap on a monitor's 180 edges at 1M rows.)
_NO_MULTI_QUANTILE = {"snowflake", "bigquery", "trino"}
# Dialects without an exact quantile aggregate at all (BigQuery's PERCENTILE_CONT is analytic
# only, Trino has approx_percentile only, ClickHouse's `quantile` samples): interpolated from the
# ordered array of the values.
_NO_QUANTILE = {"bigquery", "trino", "clickhouse"}
# Dialects whose ibis compiler has no CUME_DIST: counted over a RANGE frame instead.
_NO_CUME_DIST = {"clickhouse"}
# Dialects whose array aggregate takes no ORDER BY (ClickHouse's groupArray): sorted afterwards.
_NO_ORDERED_COLLECT = {"clickhouse"}

# Dialects with a native histogram aggregate (DuckDB's ``histogram``): a column's bin counts as one
# map per group instead of one conditional sum per bin, 2-2.5x faster there.
_NATIVE_HISTOGRAM = {"duckdb"}


# -- a piecewise-linear function in SQL (estimated performance's calibration curve) ----------------
#
# numpy's ``interp`` of a column over a few hundred points: a binary search for the row's segment
# over the points in arrays, a few levels of the search per projection, then the segment's line.
# Each step is one ibis operation that driftline's compilers write as text (DriftlineRules):
# built from ibis expressions, the search is a few thousand nodes that ibis rewrites in every
# query, which cost more than running the query. A CASE tree over the points instead compiles
# cheaply but runs slowly (DuckDB evaluates each of its branches per chunk of rows: 7x slower at
# a thousand points). The operations are Impure, as ibis takes a user's function to be: ibis
# then keeps each in its projection, neither inlining the expressions it reads (named several
# times in its text) nor copying it into the projections that read its result.


class SearchStep(ops.Impure):
    """The next levels of a binary search of ``arg`` in a complete search tree of points
    (:func:`search_levels`): the branch taken so far (``taken``; None in the first step),
    extended by one bit per level of ``levels`` — 1 where the level's node on the way is ≤ arg.
    After the last step the branch is the number of points ≤ arg."""

    arg: ops.Value[dt.Numeric]
    taken: Optional[ops.Value[dt.Integer]]
    levels: VarTuple[VarTuple[float]]

    dtype = dt.int64
    shape = rlz.shape_like("arg")


class SegmentLine(ops.Impure):
    """The line of segment ``index`` at ``arg``: slopes[index] · (arg − starts[index]) +
    bases[index], numpy's arithmetic."""

    arg: ops.Value[dt.Numeric]
    index: ops.Value[dt.Integer]
    starts: VarTuple[float]
    slopes: VarTuple[float]
    bases: VarTuple[float]

    dtype = dt.float64
    shape = rlz.shape_like("arg")


def _search_depth(points: int) -> int:
    """The levels of the complete search tree over ``points``: 2^depth − 1 ≥ points nodes."""
    return max(1, points.bit_length())


def search_levels(points: Sequence[float]) -> list[tuple[float, ...]]:
    """The levels of the complete search tree over ``points`` (ascending), padded with the last
    point to 2^depth − 1 nodes: a value at or beyond the last point passes every padded node,
    so its branch counts them all."""
    depth = _search_depth(len(points))
    padded = [*points, *[points[-1]] * (2**depth - 1 - len(points))]
    levels = []
    for level in range(depth):
        span = 2 ** (depth - level)  # the padded points under one node of this level
        levels.append(tuple(padded[branch * span + span // 2 - 1] for branch in range(2**level)))
    return levels


def search_step(value: ir.NumericValue, taken: ir.IntegerValue | None, levels: Sequence[Sequence[float]]) -> ir.IntegerValue:
    return SearchStep(value, taken, tuple(tuple(float(v) for v in level) for level in levels)).to_expr()


def segment_line(value: ir.NumericValue, index: ir.IntegerValue, xs: Sequence[float], ys: Sequence[float]) -> ir.FloatingValue:
    """numpy's ``interp`` of ``value`` over the points (xs, ys), given ``index``, the branch the
    search over xs found (the number of points ≤ value; the padded nodes count past the last
    point): ys[0] below the first point, ys[-1] from the last on, between two the line from
    the lower one."""
    if not all(math.isfinite(v) for v in (*xs, *ys)) or any(not b > a for a, b in zip(xs, xs[1:])):
        raise ValueError("a piecewise-linear function needs finite points, xs strictly ascending")
    xs, ys = [float(x) for x in xs], [float(y) for y in ys]
    slopes = [0.0] + [(ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1]) for i in range(1, len(xs))]
    starts, bases = [xs[0], *xs[:-1]], [ys[0], *ys[:-1]]  # segment i > 0 starts at point i − 1
    flat_end = 2 ** _search_depth(len(xs)) - len(xs)  # the branches from len(xs) on: the last value
    line = SegmentLine(value, index, tuple([*starts, *[xs[-1]] * flat_end]), tuple([*slopes, *[0.0] * flat_end]), tuple([*bases, *[ys[-1]] * flat_end]))
    return line.to_expr()


class DriftlineRules:
    """The compile rules of driftline's own operations, mixed into every dialect's compiler;
    ``dialect_name`` picks the array syntax (:data:`_ARRAY_LITERAL`, :data:`_ARRAY_READ`)."""

    dialect_name: str

    def visit_SearchStep(self, op, *, arg, taken, levels):
        value = arg.sql(dialect=self.dialect)
        branch = None if taken is None else f"({taken.sql(dialect=self.dialect)})"
        arrays = [_array_text(self.dialect_name, level) for level in levels]

        def descend(level: int, local: int) -> str:
            if level == len(levels):
                return str(local)
            if branch is None:  # the first step: its nodes are constants
                node = _double_text(levels[level][local])
            else:
                node = _array_read(self.dialect_name, arrays[level], f"{branch} * {2**level} + {local}")
            return f"CASE WHEN {node} <= {value} THEN {descend(level + 1, 2 * local + 1)} ELSE {descend(level + 1, 2 * local)} END"

        below = descend(0, 0)
        return sge.Var(this=f"({below})" if branch is None else f"({branch} * {2 ** len(levels)} + {below})")

    def visit_SegmentLine(self, op, *, arg, index, starts, slopes, bases):
        value, at = arg.sql(dialect=self.dialect), index.sql(dialect=self.dialect)
        slope, start, base = (_array_read(self.dialect_name, _array_text(self.dialect_name, v), at) for v in (slopes, starts, bases))
        return sge.Var(this=f"({slope} * ({value} - {start}) + {base})")


# How each dialect writes an array of doubles, and reads its element at a 0-based index ≥ 0.
_ARRAY_LITERAL = {
    "duckdb": "[{}]", "clickhouse": "[{}]", "bigquery": "[{}]", "trino": "ARRAY[{}]",
    "postgres": "ARRAY[{}]::DOUBLE PRECISION[]",  # of NUMERIC literals otherwise
    "pyspark": "ARRAY({})", "databricks": "ARRAY({})", "snowflake": "ARRAY_CONSTRUCT({})",
}
_ARRAY_READ = {
    "duckdb": "LIST_EXTRACT({array}, {index} + 1)", "postgres": "({array})[{index} + 1]",
    "pyspark": "ELEMENT_AT({array}, {index} + 1)", "databricks": "ELEMENT_AT({array}, {index} + 1)",
    "trino": "ELEMENT_AT({array}, {index} + 1)", "clickhouse": "arrayElement({array}, {index} + 1)",
    "bigquery": "{array}[OFFSET({index})]", "snowflake": "CAST(GET({array}, {index}) AS DOUBLE)",
}


def _array_text(dialect: str, values: Sequence[float]) -> str:
    return _ARRAY_LITERAL[dialect].format(", ".join(_double_text(v) for v in values))


def _array_read(dialect: str, array: str, index: str) -> str:
    return _ARRAY_READ[dialect].format(array=array, index=index)


def _double_text(value: float) -> str:
    """A double written so that every dialect reads it as that double: with an exponent
    (``0.1e0``), which DuckDB, Spark, Snowflake, BigQuery, Trino and ClickHouse read as a
    double and PostgreSQL as an exact NUMERIC that it converts to the double, correctly rounded."""
    text = repr(abs(float(value)))  # float(): numpy's repr is np.float64(...)
    text = text if "e" in text else f"{text}e0"
    return f"(-{text})" if math.copysign(1.0, value) < 0 else text


class DuckDBCompiler(DriftlineRules, IbisDuckDBCompiler):
    """ibis's DuckDB compiler, writing a finite DOUBLE literal as ``62.79495413313312e0``.

    ibis writes it as ``62.79495413313312``, which DuckDB reads as a DECIMAL and converts to
    DOUBLE with a rounding error: about one literal in forty lands one ulp off (more inside a list,
    whose elements share one wide DECIMAL type). A bin edge is often a data value itself, so a
    value equal to its edge would fall into the wrong bin. With an exponent DuckDB parses the
    text as a DOUBLE, exactly. (PostgreSQL converts its decimal literals exactly.)
    """

    dialect_name = "duckdb"

    def visit_NonNullLiteral(self, op, *, value, dtype):
        written = _doubles(self, value, dtype)
        return written if written is not None else super().visit_NonNullLiteral(op, value=value, dtype=dtype)


class PySparkCompiler(DriftlineRules, IbisPySparkCompiler):
    """ibis's Spark compiler, writing a finite DOUBLE literal as ``0.1e0``.

    ibis writes it as ``0.1``, which Spark reads as a DECIMAL(1,1): ``avg(case when c then 1.0
    else 0.0 end)`` (a rate macro) then averages decimals and returns a DECIMAL rounded to 5
    places, where every other backend returns the double. With an exponent Spark parses the
    text as a DOUBLE, exactly.
    """

    dialect_name = "pyspark"

    def visit_NonNullLiteral(self, op, *, value, dtype):
        written = _doubles(self, value, dtype)
        return written if written is not None else super().visit_NonNullLiteral(op, value=value, dtype=dtype)


class DatabricksCompiler(DriftlineRules, IbisDatabricksCompiler):
    """ibis's Databricks compiler (Spark SQL), with :class:`PySparkCompiler`'s double literals."""

    dialect_name = "databricks"

    def visit_NonNullLiteral(self, op, *, value, dtype):
        written = _doubles(self, value, dtype)
        return written if written is not None else super().visit_NonNullLiteral(op, value=value, dtype=dtype)


class PostgresCompiler(DriftlineRules, IbisPostgresCompiler):
    dialect_name = "postgres"


class SnowflakeCompiler(DriftlineRules, IbisSnowflakeCompiler):
    dialect_name = "snowflake"


class BigQueryCompiler(DriftlineRules, IbisBigQueryCompiler):
    dialect_name = "bigquery"


class TrinoCompiler(DriftlineRules, IbisTrinoCompiler):
    dialect_name = "trino"


class ClickHouseCompiler(DriftlineRules, IbisClickHouseCompiler):
    dialect_name = "clickhouse"


def _doubles(compiler: Any, value: Any, dtype: dt.DataType) -> sge.Expression | None:
    """A finite DOUBLE literal, or an array of them, written as :func:`_double_literal`; None
    for any other literal. An array's elements are written directly: ibis would build a literal
    expression per element, which for the hundreds of a histogram's boundaries costs more than
    compiling the rest of the query."""
    if dtype.is_float64() and math.isfinite(value):
        return _double_literal(float(value))
    if dtype.is_array() and dtype.value_type.is_float64() and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
        return compiler.f.array(*(_double_literal(float(v)) for v in value))
    return None


def _double_literal(value: float) -> sge.Expression:
    # Built by hand: sqlglot's Literal.number rewrites a negative number's text without the exponent.
    literal = sge.Literal(this=_double_text(abs(value)), is_string=False)
    return sge.Neg(this=literal) if math.copysign(1.0, value) < 0 else literal


_COMPILERS = {
    compiler.dialect_name: compiler()
    for compiler in (DuckDBCompiler, PySparkCompiler, DatabricksCompiler, PostgresCompiler, SnowflakeCompiler, BigQueryCompiler, TrinoCompiler, ClickHouseCompiler)
}


def use_driftline_compiler(con: Any) -> Any:
    """``con`` compiling with driftline's compiler for its dialect, where there is one."""
    if con.name in _COMPILERS:
        con.compiler = _COMPILERS[con.name]
    return con


def to_sql(expr: ir.Expr, dialect: str) -> str:
    """The SQL a run sends for ``expr`` on ``dialect``, pretty-printed."""
    if dialect == "pyspark":
        _ = ibis.pyspark  # instantiating the backend registers the options its compiler reads
    compiler = _COMPILERS.get(dialect) or getattr(sc, dialect).compiler
    return compiler.to_sqlglot(expr.unbind()).sql(dialect=compiler.dialect, pretty=True)


def quantiles(column: ir.NumericColumn, probabilities: Sequence[float], dialect: str, where: ir.BooleanValue | None = None) -> list[ir.Scalar]:
    """Linear-interpolation quantiles of ``column`` (as numpy's default / percentile_cont), over
    the rows where ``where`` holds (all rows when None)."""
    if dialect in _NO_QUANTILE:
        return [_interpolated_quantile(column, p, dialect, where) for p in probabilities]
    if dialect in _NO_MULTI_QUANTILE:
        return [column.quantile(p, where=where) for p in probabilities]
    multi = column.quantile(list(probabilities), where=where)
    if dialect == "duckdb":
        discrete = _duckdb_quantile_disc(column.cast("float64"), list(probabilities), where=where)
        return _tie_exact(multi, discrete, len(probabilities))
    return [multi[i] for i in range(len(probabilities))]


def discrete_quantiles(column: ir.NumericColumn, probabilities: Sequence[float], dialect: str, where: ir.BooleanValue | None = None) -> list[ir.Scalar]:
    """The data values at the quantiles' positions, no interpolation (DuckDB's ``quantile_disc``;
    used for sampled edges, see ``histograms.edges_query``)."""
    if dialect != "duckdb":
        raise NotImplementedError(f"discrete quantiles are only written for DuckDB, not {dialect}")
    multi = _duckdb_quantile_disc(column.cast("float64"), list(probabilities), where=where)
    return [multi[i] for i in range(len(probabilities))]


def _tie_exact(interpolated: ir.ArrayScalar, discrete: ir.ArrayScalar, n: int) -> list[ir.Scalar]:
    """DuckDB interpolates as lo·(1−d) + hi·d, which misses lo where lo = hi (a quantile inside a
    run of tied values): 0.9·0.6 + 0.9·0.4 = 0.9000000000000001. An edge one ulp above a data
    value moves every copy of that value to the bin below, so where the interpolated quantile
    lies within rounding of the discrete one (a data value), the data value is taken, as numpy's
    interpolation gives it."""
    picked = []
    for i in range(n):
        cont, disc = interpolated[i], discrete[i]
        picked.append(ibis.ifelse((cont - disc).abs() <= disc.abs() * 1e-15, disc, cont))
    return picked


# Dialects whose approximate quantile is slower than exact quantiles of a sample (see
# ``histograms.SAMPLE_ROWS``): DuckDB's t-digest.
_SAMPLED_APPROXIMATE_QUANTILE = {"duckdb"}
# Dialects whose ibis compiler has no multi-quantile form of its approximate quantile.
_NO_MULTI_APPROX_QUANTILE = {"snowflake"}


def approximate_quantiles(column: ir.NumericColumn, probabilities: Sequence[float], dialect: str) -> list[ir.Scalar]:
    """The backend's own approximate quantiles of ``column`` (SPEC §6 bounds their rank error):
    DuckDB and ClickHouse t-digest, Spark and Databricks ``percentile_approx``, Snowflake
    ``APPROX_PERCENTILE``, BigQuery ``APPROX_QUANTILES``, Trino ``approx_percentile``.
    PostgreSQL has none: ibis writes its exact ``percentile_cont``, which is what we want there."""
    if dialect in _NO_MULTI_APPROX_QUANTILE:
        return [column.approx_quantile(p) for p in probabilities]
    if dialect == "duckdb":  # its approx_quantile takes FLOAT[] probabilities, not ibis's DOUBLE[]
        # (driftline samples there instead, see samples_for_approximate_quantiles; kept so that
        # the function is whole for every dialect)
        multi = _duckdb_approx_quantiles(column.cast("float64"), ibis.literal(list(probabilities), type="array<float32>"))
        return [multi[i] for i in range(len(probabilities))]
    multi = column.approx_quantile(list(probabilities))
    return [multi[i] for i in range(len(probabilities))]


def samples_for_approximate_quantiles(dialect: str) -> bool:
    return dialect in _SAMPLED_APPROXIMATE_QUANTILE


def cume_dist(order_by: ir.Column, group_by: ir.Column | None, dialect: str) -> ir.FloatingValue:
    """CUME_DIST() over ``order_by`` within ``group_by``: the fraction of the partition's rows
    ordered at or before the row, its ties included (rows with a non-null ``order_by``, as the
    ranked rows are)."""
    if dialect not in _NO_CUME_DIST:
        return ibis.cume_dist().over(ibis.window(group_by=group_by, order_by=order_by))
    up_to_peers = ibis.window(group_by=group_by, order_by=order_by, range=(None, 0))
    return order_by.count().over(up_to_peers).cast("float64") / order_by.count().over(ibis.window(group_by=group_by)).cast("float64")


def has_native_histogram(dialect: str) -> bool:
    return dialect in _NATIVE_HISTOGRAM


@ibis.udf.agg.builtin(name="histogram")
def _bounded_histogram(arg: dt.float64, boundaries: dt.Array(dt.float64)) -> dt.Map(dt.float64, dt.int64):
    """DuckDB: per boundary b (ascending), the count of values in (previous boundary, b]; values
    above the last boundary are counted under +inf. Nulls are left out."""


@ibis.udf.agg.builtin(name="histogram")
def _position_histogram(arg: dt.int64) -> dt.Map(dt.int64, dt.int64):
    """DuckDB: the count of every distinct non-null value."""


@ibis.udf.agg.builtin(name="quantile_disc")
def _duckdb_quantile_disc(arg: dt.float64, probabilities: dt.Array(dt.float64)) -> dt.Array(dt.float64):
    """DuckDB: the data values at the quantiles' positions (no interpolation)."""


@ibis.udf.agg.builtin(name="approx_quantile")
def _duckdb_approx_quantiles(arg: dt.float64, probabilities: dt.Array(dt.float32)) -> dt.Array(dt.float64):
    """DuckDB: t-digest quantiles of ``arg`` at each probability. Nulls are left out."""


@ibis.udf.scalar.builtin(name="list_position")
def _list_position(items: dt.Array(dt.string), value: dt.string) -> dt.int64:
    """DuckDB: the 1-based position of ``value`` in ``items``; null when absent or null."""


def bounded_histogram(value: ir.FloatingColumn, boundaries: Sequence[float]) -> ir.MapScalar:
    return _bounded_histogram(value, ibis.literal(list(boundaries), type="array<float64>"))


def position_histogram(value: ir.StringColumn, items: Sequence[str]) -> ir.MapScalar:
    """Per 1-based position in ``items``, how many values equal that item; other values are
    left out, so the map stays as small as ``items`` however many values the column holds."""
    return _position_histogram(_list_position(ibis.literal(list(items), type="array<string>"), value))


def _interpolated_quantile(column: ir.NumericColumn, probability: float, dialect: str, where: ir.BooleanValue | None = None) -> ir.Scalar:
    """The exact quantile read from the group's sorted values: x[lo] + (h - lo)(x[hi] - x[lo]),
    h = (n - 1) p, as numpy's default. It holds the group's values in one array, so it suits
    the windows of a monitor, not a whole warehouse table."""
    values = column.cast("float64")
    # nulls are left out, as the other quantiles do
    ordered = values.collect(where=where).sort() if dialect in _NO_ORDERED_COLLECT else values.collect(order_by=values, where=where)
    position = (values.count(where=where) - 1).cast("float64") * probability
    # Clamped at 0 so an empty group reads past the end (null) instead of at index -1 (an error on Trino).
    low = ibis.greatest(position.floor(), 0).cast("int64")
    high = ibis.greatest(position.ceil(), 0).cast("int64")
    return ordered[low] + (position - low.cast("float64")) * (ordered[high] - ordered[low])


def json_number(value: ir.JSONValue, dialect: str) -> ir.FloatingValue:
    """A JSON value as a double; null when it is missing or not a number.

    On Spark, ibis unwraps JSON with a Python UDF of the session, which a stored view cannot
    call; Spark's own ``TRY_CAST`` of the extracted text does the same for numbers. Snowflake
    gets the same ``TRY_CAST``: ibis's ``AS_DOUBLE`` is Snowflake's, but emulators lack it.
    """
    if dialect in ("pyspark", "snowflake"):
        return value.cast("string").try_cast("float64")
    return value.unwrap_as("float64")
