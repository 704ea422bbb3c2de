"""Connecting by URL, and every per-backend difference in one place.

The planner builds portable ibis expressions; where a backend lacks an operation (ibis raises
``OperationNotDefinedError``), the portable fallback is chosen here, by dialect name, and each
fallback is proven by a compile test for that dialect.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlparse

import ibis
import ibis.expr.types as ir

from driftline.errors import WarehouseError

DIALECTS = ("duckdb", "postgres", "snowflake", "bigquery", "trino", "databricks", "pyspark")
# Dialects whose ibis compiler has no multi-quantile aggregate: one quantile per probability.
_NO_MULTI_QUANTILE = {"snowflake", "bigquery", "trino", "pyspark", "databricks"}


def connect(url: str, root: Path | None = None) -> ibis.BaseBackend:
    """Open an ibis backend; a relative DuckDB path is relative to the project directory."""
    try:
        if url.startswith("duckdb:"):
            return ibis.duckdb.connect(_duckdb_path(url, root))
        if url.startswith("pyspark:") or url == "spark":
            return _connect_local_spark()
        return ibis.connect(url)
    except Exception as error:  # the driver's own error says what is wrong; keep it on one line
        raise WarehouseError(f"cannot connect to {redact(url)}: {_one_line(error)}") from None


def _duckdb_path(url: str, root: Path | None) -> str:
    path = url.split("://", 1)[1] if "://" in url else url.split(":", 1)[1]
    if path in ("", ":memory:", "memory"):
        return ":memory:"
    candidate = Path(path)
    if not candidate.is_absolute() and root is not None:
        candidate = root / candidate
    return str(candidate)


def _connect_local_spark() -> ibis.BaseBackend:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("driftline")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    return ibis.pyspark.connect(session)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def dialect_of(con: ibis.BaseBackend) -> str:
    return con.name


def to_sql(expr: ir.Expr, dialect: str) -> str:
    """The SQL ibis generates for ``dialect`` (pyspark needs its backend's options loaded)."""
    if dialect == "pyspark":
        _ = ibis.pyspark  # instantiating the backend registers the options its compiler reads
    return ibis.to_sql(expr, dialect=dialect)


def quantiles(column: ir.NumericColumn, probabilities: Sequence[float], dialect: str) -> list[ir.Scalar]:
    """Linear-interpolation quantiles of ``column`` (as numpy's default / percentile_cont)."""
    if dialect in _NO_MULTI_QUANTILE:
        return [column.quantile(p) for p in probabilities]
    multi = column.quantile(list(probabilities))
    return [multi[i] for i in range(len(probabilities))]


def table_reference(name: str) -> tuple[str, tuple[str, ...] | str | None]:
    """``[catalog.][schema.]table`` → (table, database) as ibis expects."""
    parts = name.split(".")
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 2:
        return parts[1], parts[0]
    return parts[-1], tuple(parts[:-1])


# -- transactions and plain inserts for the result tables ---------------------------------------


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
        raise WarehouseError(f"writing results is not supported on {con.name} yet")


def placeholder(con: ibis.BaseBackend) -> str:
    return "%s" if con.name == "postgres" else "?"


def qualified_name(con: ibis.BaseBackend, table: str, schema: str | None) -> str:
    """A quoted, dialect-correct table name for the few statements written by hand."""
    import sqlglot.expressions as sge

    return sge.table_(table, db=schema, quoted=True).sql(dialect=con.name)


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
        return value is None or value != value  # NaN and NaT
    except (TypeError, ValueError):
        return False
