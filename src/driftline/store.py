"""The result tables: created on first use, migrated additively, and written one window at a
time in a single transaction (re-running a window replaces its rows; nothing half-written)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import ibis
import pandas as pd

from driftline import backends
from driftline.result_schema import ALERTS, HISTOGRAMS, PROFILES, RESULTS, RUNS, TABLES
from driftline.windows import Window


@dataclass
class WindowRecord:
    """Everything one evaluation of a monitor window writes."""

    run: dict[str, Any]
    results: list[dict[str, Any]]
    histograms: list[dict[str, Any]]


class ResultStore:
    def __init__(self, con: ibis.BaseBackend, schema: str | None = None):
        self.con = con
        self.schema = schema

    # -- tables ---------------------------------------------------------------------------------

    def ensure_tables(self) -> None:
        """Create missing tables and add missing columns (never drop or rename)."""
        if self.schema and self.schema not in self.con.list_databases():
            self.con.create_database(self.schema, force=True)
        existing = set(self.con.list_tables(database=self.schema))
        for name, schema in TABLES.items():
            if name not in existing:
                self.con.create_table(name, schema=schema, database=self.schema)
                continue
            present = set(self.con.table(name, database=self.schema).columns)
            for column, dtype in schema.items():
                if column not in present:
                    self._add_column(name, column, dtype)
        self._create_views()

    def _add_column(self, table: str, column: str, dtype: Any) -> None:
        import sqlglot.expressions as sge

        from ibis.backends.sql.datatypes import TYPE_MAPPERS  # type: ignore[attr-defined]

        sql_type = TYPE_MAPPERS[self.con.name].from_ibis(dtype).sql(self.con.name)
        column_sql = sge.to_identifier(column, quoted=True).sql(self.con.name)
        self.con.raw_sql(f"ALTER TABLE {self._name(table)} ADD COLUMN {column_sql} {sql_type}")

    def _create_views(self) -> None:
        try:
            from driftline.views import create_views
        except ImportError:
            return
        create_views(self.con, self.schema)

    def table(self, name: str) -> ibis.Table:
        return self.con.table(name, database=self.schema)

    def _name(self, table: str) -> str:
        return backends.qualified_name(self.con, table, self.schema)

    # -- reading --------------------------------------------------------------------------------

    def completed_until(self, monitor: str) -> datetime | None:
        """End of the latest window of ``monitor`` evaluated successfully."""
        runs = self.table(RUNS)
        latest = runs.filter((runs.monitor == monitor) & (runs.status == "success")).window_end.max()
        value = latest.execute()
        return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()

    def load_profile(self, key: str) -> str | None:
        profiles = self.table(PROFILES)
        found = profiles.filter(profiles.profile_key == key).select("profile").limit(1).execute()
        return None if found.empty else str(found.profile.iloc[0])

    def save_profile(self, key: str, monitor: str, window: Window, profile: str, created_at: datetime) -> None:
        row = {
            "profile_key": key, "monitor": monitor, "reference_start": window.start,
            "reference_end": window.end, "created_at": created_at, "profile": profile,
        }
        with backends.transaction(self.con) as cursor:
            self._delete(cursor, PROFILES, "profile_key", key)
            backends.insert_frame(self.con, cursor, self._name(PROFILES), _frame(PROFILES, [row]))

    # -- writing --------------------------------------------------------------------------------

    def mark_running(self, run: dict[str, Any]) -> None:
        with backends.transaction(self.con) as cursor:
            backends.insert_frame(self.con, cursor, self._name(RUNS), _frame(RUNS, [run]))

    def replace_window(self, record: WindowRecord) -> None:
        """Swap this window's previous rows for the new ones, in one transaction."""
        run = record.run
        with backends.transaction(self.con) as cursor:
            previous = self._run_ids(cursor, run["monitor"], run["window_start"])
            for run_id in previous:
                for table in (RESULTS, HISTOGRAMS, RUNS):
                    self._delete(cursor, table, "run_id", run_id)
            self._delete(cursor, RUNS, "run_id", run["run_id"])
            backends.insert_frame(self.con, cursor, self._name(RUNS), _frame(RUNS, [run]))
            backends.insert_frame(self.con, cursor, self._name(RESULTS), _frame(RESULTS, record.results))
            backends.insert_frame(self.con, cursor, self._name(HISTOGRAMS), _frame(HISTOGRAMS, record.histograms))

    def record_error(self, run: dict[str, Any]) -> None:
        """A failed evaluation: its run row says error; earlier good results stay untouched."""
        with backends.transaction(self.con) as cursor:
            self._delete(cursor, RUNS, "run_id", run["run_id"])
            backends.insert_frame(self.con, cursor, self._name(RUNS), _frame(RUNS, [run]))

    def _run_ids(self, cursor: Any, monitor: str, window_start: datetime) -> list[str]:
        mark = backends.placeholder(self.con)
        cursor.execute(
            f"SELECT run_id FROM {self._name(RUNS)} WHERE monitor = {mark} AND window_start = {mark}",
            [monitor, window_start],
        )
        return [row[0] for row in cursor.fetchall()]

    def _delete(self, cursor: Any, table: str, column: str, value: Any) -> None:
        mark = backends.placeholder(self.con)
        cursor.execute(f'DELETE FROM {self._name(table)} WHERE "{column}" = {mark}', [value])


def _frame(table: str, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame with exactly the table's columns, in order, with its types."""
    schema = TABLES[table]
    frame = pd.DataFrame(list(rows), columns=list(schema.names))
    for name, dtype in schema.items():
        if dtype.is_timestamp():
            frame[name] = pd.to_datetime(frame[name])
        elif dtype.is_int64():
            frame[name] = frame[name].astype("Int64")
        elif dtype.is_float64():
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        elif dtype.is_string():
            frame[name] = frame[name].astype("object").where(frame[name].notna(), None)
    return frame


ALL_TABLES = (RUNS, RESULTS, HISTOGRAMS, ALERTS, PROFILES)
