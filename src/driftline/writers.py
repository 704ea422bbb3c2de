"""Writing the result tables and views: every change of a window applied as one unit, as far as
the backend allows (see :func:`writer`), and the few statements written by hand."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Protocol

import ibis
import ibis.expr.types as ir
import pandas as pd
import sqlglot.expressions as sge

from driftline.errors import WarehouseError


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

# The backends whose result tables driftline can write (see :func:`writer`). Every other backend
# ibis connects to is compile-only: ``validate`` and ``compile`` work there, ``run`` does not.
WRITABLE_BACKENDS = ("duckdb", "postgres", "pyspark", "snowflake")


def check_writable(con: ibis.BaseBackend, command: str = "run") -> None:
    """Stop ``command`` on a compile-only backend before it creates anything there: its result
    tables and views would be created, and then no window could be written to them."""
    if con.name in WRITABLE_BACKENDS:
        return
    from driftline.dialects import DIALECTS

    dialect = con.name if con.name in DIALECTS else f"<{'|'.join(DIALECTS)}>"
    raise WarehouseError(f"`{command}` on {con.name} is not supported yet; `compile --dialect {dialect}` prints its SQL")



class TableWriter(Protocol):
    """Deletes and inserts on the result tables, applied together (see :func:`writer`)."""

    def delete(self, table: str, column: str, values: Iterable[Any]) -> None:
        """Remove the rows of ``table`` whose ``column`` is one of ``values``."""

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        """Add ``frame``'s rows; its columns are exactly the table's, in order."""


@contextlib.contextmanager
def writer(con: ibis.BaseBackend, schema: str | None) -> Iterator[TableWriter]:
    """Changes to the result tables in ``schema``, applied as one unit as far as the backend allows.

    DuckDB, PostgreSQL and Snowflake run every change in one transaction: all of them or none
    (Snowflake's between ``BEGIN`` and ``COMMIT``, see ``snowflake_engine``). Spark has no
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


# DuckDB, PostgreSQL and Snowflake: one transaction.


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
    elif con.name == "snowflake":
        from driftline import snowflake_engine

        with snowflake_engine.transaction(con) as cursor:
            yield cursor
    else:
        raise WarehouseError(f"{con.name} has no transactions driftline can use; write through writers.writer()")


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
    if con.name == "snowflake":
        from driftline import snowflake_engine

        snowflake_engine.insert_frame(cursor, table_sql, frame)
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


# -- views ----------------------------------------------------------------------------------------


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
