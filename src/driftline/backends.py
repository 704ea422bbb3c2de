"""Connecting by URL, and every per-backend difference in one place.

The planner builds portable ibis expressions; where a backend lacks an operation (ibis raises
``OperationNotDefinedError``), the portable fallback is chosen here, by dialect name, and each
fallback is proven by a compile test for that dialect.

Connection URLs are ibis URLs, plus two forms of our own:

``duckdb://PATH``
    A DuckDB file, relative to the project directory (``duckdb://`` or ``duckdb://:memory:``
    for an in-memory database).
``pyspark://local`` or ``pyspark://local?warehouse=DIR``
    A local Spark session started in this process (see :func:`local_spark_session`). ``DIR``
    holds the tables and their catalog; relative to the project directory, default
    ``spark-warehouse``.
``pyspark://``
    The Spark session already running in this process: a cluster job started by
    ``spark-submit``, a Databricks or Jupyter notebook.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence
from urllib.parse import parse_qs, unquote, urlparse

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandas as pd
import sqlglot.expressions as sge

from driftline.errors import WarehouseError

DIALECTS = ("duckdb", "postgres", "snowflake", "bigquery", "trino", "databricks", "clickhouse", "pyspark")
# Dialects whose ibis compiler has no multi-quantile aggregate: one quantile per probability.
_NO_MULTI_QUANTILE = {"snowflake", "bigquery", "trino", "pyspark", "databricks"}
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

SPARK_WAREHOUSE = "spark-warehouse"  # default local warehouse, inside the project directory


def _exact_duckdb_float_literals() -> None:
    """Make ibis write a finite DOUBLE literal for DuckDB as ``62.79495413313312e0``.

    ibis writes it as ``62.79495413313312``, which DuckDB reads as a DECIMAL and converts to
    DOUBLE with a rounding error: about one literal in forty lands one ulp off (more inside a list,
    whose elements share one wide DECIMAL type). A bin edge is often a data value itself, so a
    value equal to its edge would fall into the wrong bin. With an exponent DuckDB parses the
    text as a DOUBLE, exactly. (PostgreSQL and Spark convert their decimal literals exactly.)
    """
    from ibis.backends.sql.compilers.duckdb import DuckDBCompiler

    write_literal = DuckDBCompiler.visit_NonNullLiteral

    def visit_NonNullLiteral(self, op, *, value, dtype):
        if dtype.is_float64() and math.isfinite(value):
            return _double_literal(float(value))
        return write_literal(self, op, value=value, dtype=dtype)

    DuckDBCompiler.visit_NonNullLiteral = visit_NonNullLiteral


def _double_literal(value: float) -> sge.Expression:
    # Built by hand: sqlglot's Literal.number rewrites a negative number's text without the exponent.
    text = repr(abs(value))
    literal = sge.Literal(this=text if "e" in text else f"{text}e0", is_string=False)
    return sge.Neg(this=literal) if math.copysign(1.0, value) < 0 else literal


_exact_duckdb_float_literals()


def connect(url: str, root: Path | None = None, read_only: bool = False) -> ibis.BaseBackend:
    """Open an ibis backend; relative paths in the URL are relative to the project directory.
    ``read_only`` opens a DuckDB file without write access (elsewhere the user's grants decide)."""
    try:
        if url.startswith("duckdb:"):
            path = _duckdb_path(url, root)
            return ibis.duckdb.connect(path, read_only=read_only and path != ":memory:")
        if url.startswith("pyspark:"):
            return _connect_spark(url, root)
        return ibis.connect(url)
    except WarehouseError:
        raise
    except Exception as error:  # the driver's own error says what is wrong; keep it on one line
        raise WarehouseError(f"cannot connect to {redact(url)}: {_without_secrets_of(url, _one_line(error))}") from None


def _duckdb_path(url: str, root: Path | None) -> str:
    path = url.split("://", 1)[1] if "://" in url else url.split(":", 1)[1]
    if path in ("", ":memory:", "memory"):
        return ":memory:"
    return str(_under(root, path))


def _under(root: Path | None, path: str) -> Path:
    candidate = Path(path)
    if not candidate.is_absolute() and root is not None:
        candidate = root / candidate
    return candidate


# A query parameter whose name says it holds a credential (``password``, ``pwd``, ``token``,
# ``secret``, ``key``, ``access_key``, ``private_key_passphrase`` ..., any case), and its value.
# Masking a harmless one by mistake costs little; printing a secret costs a rotation.
_SECRET_PARAMETER = re.compile(r"(?P<name>[?&;][^=&;#?]*(?:pass|pwd|token|secret|key|credential)[^=&;#?]*=)(?P<value>[^&;#]*)", re.I)


def redact(url: str) -> str:
    """The URL with its secrets masked as ``***``, for messages: the password of
    ``user:password@`` and the value of every password-like query parameter."""
    parsed = urlparse(url)
    if parsed.password:
        url = url.replace(f":{parsed.password}@", ":***@", 1)
    return _SECRET_PARAMETER.sub(r"\g<name>***", url)


def _without_secrets_of(url: str, message: str) -> str:
    """A driver's message with the URL's secrets masked, should the driver quote one."""
    secrets = [urlparse(url).password] + [m["value"] for m in _SECRET_PARAMETER.finditer(url)]
    for secret in filter(None, secrets):
        message = message.replace(secret, "***").replace(unquote(secret), "***")
    return message


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


# -- Spark ----------------------------------------------------------------------------------------


def _connect_spark(url: str, root: Path | None) -> ibis.BaseBackend:
    """``pyspark://local[?warehouse=DIR]`` starts (or reuses) a local session; ``pyspark://``
    attaches to the session already running in this process."""
    parsed = urlparse(url)
    options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    unknown = sorted(set(options) - {"warehouse"})
    if unknown:
        raise WarehouseError(f"{redact(url)}: unknown option {unknown[0]!r}; pyspark URLs take ?warehouse=DIR")
    if parsed.netloc == "local":
        warehouse = _under(root or Path.cwd(), options.get("warehouse", SPARK_WAREHOUSE))
        return ibis.pyspark.connect(local_spark_session(warehouse.resolve()))
    if parsed.netloc or options:
        raise WarehouseError(f"{redact(url)}: expected pyspark://local[?warehouse=DIR] or pyspark://")
    return ibis.pyspark.connect(_running_spark_session())


def local_spark_session(warehouse: Path) -> Any:
    """The process's local Spark session, started on first use and reused afterwards.

    A process runs one Spark context, whose warehouse and catalog are fixed when it starts, and
    starting one takes seconds: a second connection reuses the first session, provided it asks
    for the same warehouse. The session runs on two local threads, bound to the loopback
    interface, with the UI off and few shuffle partitions (driftline's queries return small
    aggregates). Its catalog is an embedded Derby metastore inside ``warehouse``, so the result
    tables outlive the process: Spark's default in-memory catalog would forget them, and the next
    run could not even recreate them over their leftover files. Embedded Derby admits one
    process at a time, so two driftline processes cannot share a local warehouse concurrently.
    Nothing is downloaded.
    """
    from pyspark.sql import SparkSession

    running = SparkSession.getActiveSession()
    if running is not None:
        _check_same_warehouse(running, warehouse)
        return running
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no lookup of the host's public address
    builder = SparkSession.builder
    for key, value in _local_spark_settings(warehouse).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    # Derby writes derby.log into its home directory (the working directory by default); the
    # metastore only starts on the first catalog access, so setting the home here is in time.
    session.sparkContext._jvm.java.lang.System.setProperty("derby.system.home", str(warehouse))
    return session


def _local_spark_settings(warehouse: Path) -> dict[str, str]:
    metastore = warehouse / "metastore_db"
    return {
        "spark.master": "local[2]",
        "spark.app.name": "driftline",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true",
        # Arrow converts pandas timestamps in the session time zone (UTC); without it PySpark
        # reads naive timestamps in the Python process's local time zone.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


def _check_same_warehouse(session: Any, warehouse: Path) -> None:
    current = Path(urlparse(session.conf.get("spark.sql.warehouse.dir")).path)
    if current != warehouse:
        raise WarehouseError(
            f"a Spark session with warehouse {current} is already running in this process, and Spark "
            f"cannot change it to {warehouse}; use the same warehouse, or pyspark:// to attach to it"
        )


def _running_spark_session() -> Any:
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is None:
        raise WarehouseError("pyspark:// attaches to a running Spark session and none is running; use pyspark://local to start one")
    return session


# -- what differs between SQL dialects ------------------------------------------------------------


def dialect_of(con: ibis.BaseBackend) -> str:
    return con.name


def to_sql(expr: ir.Expr, dialect: str) -> str:
    """The SQL ibis generates for ``dialect`` (pyspark needs its backend's options loaded)."""
    if dialect == "pyspark":
        _ = ibis.pyspark  # instantiating the backend registers the options its compiler reads
    return ibis.to_sql(expr, dialect=dialect)


def quantiles(column: ir.NumericColumn, probabilities: Sequence[float], dialect: str) -> list[ir.Scalar]:
    """Linear-interpolation quantiles of ``column`` (as numpy's default / percentile_cont)."""
    if dialect in _NO_QUANTILE:
        return [_interpolated_quantile(column, p, dialect) for p in probabilities]
    if dialect in _NO_MULTI_QUANTILE:
        return [column.quantile(p) for p in probabilities]
    multi = column.quantile(list(probabilities))
    if dialect == "duckdb":
        return _tie_exact(multi, _duckdb_quantile_disc(column.cast("float64"), list(probabilities)), len(probabilities))
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


def _interpolated_quantile(column: ir.NumericColumn, probability: float, dialect: str) -> ir.Scalar:
    """The exact quantile read from the group's sorted values: x[lo] + (h - lo)(x[hi] - x[lo]),
    h = (n - 1) p, as numpy's default. It holds the group's values in one array, so it suits
    the windows of a monitor, not a whole warehouse table."""
    values = column.cast("float64")
    # nulls are left out, as the other quantiles do
    ordered = values.collect().sort() if dialect in _NO_ORDERED_COLLECT else values.collect(order_by=values)
    position = (values.count() - 1).cast("float64") * probability
    # Clamped at 0 so an empty group reads past the end (null) instead of at index -1 (an error on Trino).
    low = ibis.greatest(position.floor(), 0).cast("int64")
    high = ibis.greatest(position.ceil(), 0).cast("int64")
    return ordered[low] + (position - low.cast("float64")) * (ordered[high] - ordered[low])


def find_table(con: ibis.BaseBackend, name: str) -> ir.Table:
    """The table ``[catalog.][schema.]table``; LookupError with close matches when missing."""
    from driftline.spec.errors import did_you_mean

    table, database = table_reference(name)
    try:
        return con.table(table, database=database)
    except Exception:
        pass
    try:
        known = con.list_tables(database=database)
    except Exception:
        known = []
    raise LookupError(f"table {name!r} not found{did_you_mean(table, known)}")


def table_reference(name: str) -> tuple[str, tuple[str, ...] | str | None]:
    """``[catalog.][schema.]table`` → (table, database) as ibis expects."""
    parts = name.split(".")
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 2:
        return parts[1], parts[0]
    return parts[-1], tuple(parts[:-1])


def qualified_name(con: ibis.BaseBackend, table: str, schema: str | None) -> str:
    """A quoted, dialect-correct table name for the few statements written by hand."""
    return sge.table_(table, db=schema, quoted=True).sql(dialect=con.dialect)


def add_column(con: ibis.BaseBackend, table: str, schema: str | None, column: str, dtype: Any) -> None:
    """``ALTER TABLE ... ADD COLUMN`` with the backend's name for ``dtype``."""
    statement = sge.Alter(
        this=sge.table_(table, db=schema, quoted=True),
        kind="TABLE",
        actions=[sge.ColumnDef(this=sge.to_identifier(column, quoted=True), kind=con.compiler.type_mapper.from_ibis(dtype))],
    )
    con.raw_sql(statement.sql(dialect=con.dialect))


# -- writing the result tables --------------------------------------------------------------------


class TableWriter(Protocol):
    """Deletes and inserts on the result tables, applied together (see :func:`writer`)."""

    def delete(self, table: str, column: str, values: Iterable[Any]) -> None:
        """Remove the rows of ``table`` whose ``column`` is one of ``values``."""

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        """Add ``frame``'s rows; its columns are exactly the table's, in order."""


@contextlib.contextmanager
def writer(con: ibis.BaseBackend, schema: str | None) -> Iterator[TableWriter]:
    """Changes to the result tables in ``schema``, applied as one unit as far as the backend allows.

    DuckDB and PostgreSQL run every change in one transaction: all of them or none. Spark has no
    multi-statement transactions: there, the changes are collected and applied when the block
    ends without an error, one table at a time, in the order the tables were first touched; each
    table is swapped whole (see :class:`SparkWriter`), so the change is atomic per table, not
    across tables. A caller orders its tables so that an interruption between two of them is
    repaired by the next write.
    """
    if con.name == "pyspark":
        changes = SparkWriter(con, schema)
        yield changes
        changes.apply()
        return
    with transaction(con) as cursor:
        yield TransactionWriter(con, cursor, schema)


def finish_interrupted_writes(con: ibis.BaseBackend, schema: str | None, tables: Iterable[str]) -> None:
    """Complete table swaps that a crash cut short (Spark only; transactions need no repair)."""
    if con.name != "pyspark":
        return
    present = set(con.list_tables(database=schema))
    for table in tables:
        _finish_spark_swap(con, schema, table, present)


# DuckDB and PostgreSQL: one transaction.


@contextlib.contextmanager
def transaction(con: ibis.BaseBackend) -> Iterator[Any]:
    """A DB-API cursor inside one transaction: everything or nothing is written."""
    if con.name == "duckdb":
        raw = con.con
        raw.begin()
        try:
            yield raw
        except BaseException:
            raw.rollback()
            raise
        raw.commit()
    elif con.name == "postgres":
        with con.con.cursor() as cursor, con.con.transaction():
            yield cursor
    else:
        raise WarehouseError(f"{con.name} has no transactions driftline can use; write through backends.writer()")


@dataclass
class TransactionWriter:
    """Runs each change at once, inside the caller's transaction."""

    con: ibis.BaseBackend
    cursor: Any
    schema: str | None

    def delete(self, table: str, column: str, values: Iterable[Any]) -> None:
        values = list(values)
        if not values:
            return
        marks = ", ".join([placeholder(self.con)] * len(values))
        column_sql = sge.to_identifier(column, quoted=True).sql(dialect=self.con.dialect)
        self.cursor.execute(f"DELETE FROM {self._name(table)} WHERE {column_sql} IN ({marks})", values)

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        insert_frame(self.con, self.cursor, self._name(table), frame)

    def _name(self, table: str) -> str:
        return qualified_name(self.con, table, self.schema)


def placeholder(con: ibis.BaseBackend) -> str:
    return "%s" if con.name == "postgres" else "?"


def insert_frame(con: ibis.BaseBackend, cursor: Any, table_sql: str, frame: Any) -> None:
    """Bulk-insert a small pandas frame inside the caller's transaction."""
    if frame.empty:
        return
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    if con.name == "duckdb":
        cursor.register("__driftline_rows", frame)
        try:
            cursor.execute(f"INSERT INTO {table_sql} ({columns}) SELECT {columns} FROM __driftline_rows")
        finally:
            cursor.unregister("__driftline_rows")
        return
    with cursor.copy(f"COPY {table_sql} ({columns}) FROM STDIN") as copy:
        for row in frame.itertuples(index=False, name=None):
            copy.write_row([None if _is_missing(v) else v for v in row])


def _is_missing(value: Any) -> bool:
    try:
        return value is None or value is pd.NA or bool(value != value)  # NaN, NaT and pandas' NA
    except (TypeError, ValueError):
        return False


# Spark: no transactions, and plain parquet tables cannot DELETE.


@dataclass
class _PendingChange:
    removals: dict[str, set[Any]] = field(default_factory=dict)
    additions: list[pd.DataFrame] = field(default_factory=list)


@dataclass
class SparkWriter:
    """Collects the changes, then applies them table by table when :meth:`apply` is called.

    A table that only gains rows gets them with one ``INSERT``: Spark's commit protocol adds the
    new files when the job succeeds, and a failed job adds none. A table that also loses rows is
    rewritten: its kept rows and the new ones are written to a staging table
    ``<table>__driftline_new``, which then takes the table's place by two renames (the old table
    becomes ``<table>__driftline_old`` and is dropped). Readers see the old table or the new
    one, never a half-written one; for the instant between the renames the table is missing.
    If the process dies between the renames, :func:`finish_interrupted_writes` completes the
    swap on the next run. Rewriting costs a read and a write of the whole table: fine for the
    result tables, which hold aggregates.
    """

    con: ibis.BaseBackend
    schema: str | None
    pending: dict[str, _PendingChange] = field(default_factory=dict)

    def delete(self, table: str, column: str, values: Iterable[Any]) -> None:
        removals = self.pending.setdefault(table, _PendingChange()).removals
        removals.setdefault(column, set()).update(values)

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        self.pending.setdefault(table, _PendingChange()).additions.append(frame)

    def apply(self) -> None:
        for table, change in self.pending.items():
            self._apply(table, change)
        self.pending.clear()

    def _apply(self, table: str, change: _PendingChange) -> None:
        target = self.con.table(table, database=self.schema)
        new_rows = [ibis.memtable(f, schema=target.schema()) for f in change.additions if not f.empty]
        doomed = _any_of(target, change.removals)
        try:
            if doomed is not None and target.filter(doomed).count().execute() > 0:
                kept = target.filter(~doomed)
                _swap_spark_table(self.con, self.schema, table, ibis.union(kept, *new_rows, distinct=False))
            elif new_rows:
                self.con.insert(table, ibis.union(*new_rows, distinct=False), database=self.schema)
        finally:
            # ibis registers each in-memory frame as a temporary view that lives as long as the
            # session; a long-lived process (an orchestrator worker) would pile them up.
            for rows in new_rows:
                self.con.drop_view(rows.get_name(), force=True)


def _any_of(table: ir.Table, removals: dict[str, set[Any]]) -> ir.BooleanValue | None:
    """True for the rows to remove, false (never null) for the rows to keep."""
    tests = [table[column].isin(sorted(values)).fill_null(False) for column, values in removals.items() if values]
    return ibis.or_(*tests) if tests else None


def _swap_names(table: str) -> tuple[str, str]:
    return f"{table}__driftline_new", f"{table}__driftline_old"


def _swap_spark_table(con: ibis.BaseBackend, schema: str | None, table: str, contents: ir.Table) -> None:
    """Replace ``table`` by ``contents``: write a staging table, then swap names."""
    staging, retired = _swap_names(table)
    con.drop_table(staging, database=schema, force=True)
    con.drop_table(retired, database=schema, force=True)
    # Reading ``table`` while writing another table is fine; Spark cannot overwrite a table it
    # reads from, which is why the rows are not written back into ``table`` directly.
    con.create_table(staging, contents, database=schema)
    _rename(con, schema, table, retired)
    try:
        _rename(con, schema, staging, table)
    except Exception:
        _rename(con, schema, retired, table)  # put the old table back; the staging one is dropped next time
        raise
    con.drop_table(retired, database=schema, force=True)


def _finish_spark_swap(con: ibis.BaseBackend, schema: str | None, table: str, present: set[str]) -> None:
    """After a crash mid-swap: a complete staging table wins, else the old table comes back."""
    staging, retired = _swap_names(table)
    if table not in present:
        if staging in present:  # written in full before the first rename: roll forward
            _rename(con, schema, staging, table)
            present = present - {staging}
        elif retired in present:
            _rename(con, schema, retired, table)
            present = present - {retired}
    for leftover in {staging, retired} & present:
        con.drop_table(leftover, database=schema, force=True)


def _rename(con: ibis.BaseBackend, schema: str | None, old: str, new: str) -> None:
    statement = sge.Alter(
        this=sge.table_(old, db=schema, quoted=True),
        kind="TABLE",
        actions=[sge.AlterRename(this=sge.table_(new, db=schema, quoted=True))],
    )
    con.raw_sql(statement.sql(dialect=con.dialect))


# -- views and JSON over the result tables --------------------------------------------------------


def create_view(con: ibis.BaseBackend, name: str, expr: ir.Table, schema: str | None) -> None:
    """Create or replace the view ``name`` over ``expr`` in ``schema``.

    ibis makes Spark views TEMPORARY: gone with the session and invisible to BI tools. Spark
    gets a view stored in its catalog instead.
    """
    if con.name != "pyspark":
        con.create_view(name, expr, database=schema, overwrite=True)
        return
    view = sge.table_(name, db=schema, quoted=True).sql(dialect=con.dialect)
    con.raw_sql(f"CREATE OR REPLACE VIEW {view} AS {con.compile(expr)}")


def json_number(value: ir.JSONValue, dialect: str) -> ir.FloatingValue:
    """A JSON value as a double; null when it is missing or not a number.

    On Spark, ibis unwraps JSON with a Python UDF of the session, which a stored view cannot
    call; Spark's own ``TRY_CAST`` of the extracted text does the same for numbers.
    """
    if dialect == "pyspark":
        return value.cast("string").try_cast("float64")
    return value.unwrap_as("float64")
