"""Small driftline projects on DuckDB for the model and data check tests.

A project is a directory with ``driftline_project.yml``, ``monitors/*.yml`` and a DuckDB file
holding the tables; it runs through the public API (``driftline.api.run`` / ``backfill``), and
its results are read back from ``driftline_results`` as a user's BI tool would.
"""

from __future__ import annotations

import json
import math
import shutil
import textwrap
from pathlib import Path
from typing import Any, Mapping

import duckdb
import pandas as pd

from driftline import api
from driftline.result_schema import RESULTS

REPO = Path(__file__).resolve().parents[1]
DAY = pd.Timedelta(days=1)
START = pd.Timestamp("2024-03-01")


def make_project(
    root: Path,
    monitors: str | list[str],
    tables: Mapping[str, pd.DataFrame] = {},
    *,
    connection: str = "duckdb://warehouse.duckdb",
    results_schema: str | None = None,
    kpi_macros: bool = False,
) -> Path:
    """Write a project under ``root`` and load ``tables`` into its DuckDB file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "monitors").mkdir(exist_ok=True)
    schema = f"\nresults: {{schema: {results_schema}}}" if results_schema else ""
    (root / "driftline_project.yml").write_text(f"name: test\nconnection: {connection}{schema}\n")
    for i, text in enumerate([monitors] if isinstance(monitors, str) else monitors):
        (root / "monitors" / f"m{i}.yml").write_text(textwrap.dedent(text).lstrip("\n"))
    if kpi_macros:
        (root / "macros").mkdir(exist_ok=True)
        shutil.copy(REPO / "macros" / "kpi.yml", root / "macros" / "kpi.yml")
    write_tables(root, tables)
    return root


def write_tables(root: Path, tables: Mapping[str, pd.DataFrame]) -> None:
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        for name, frame in tables.items():
            con.register("frame", frame)
            con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM frame')
            con.unregister("frame")


def sql(root: Path, statement: str) -> None:
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute(statement)


def results(root: Path, **filters: Any) -> pd.DataFrame:
    """``driftline_results`` with ``details`` parsed, filtered by column values."""
    workspace = api.Workspace.open(root)
    frame = workspace.store.table(RESULTS).execute()
    for column, value in filters.items():
        frame = frame[frame[column] == value]
    frame = frame.copy()
    frame["details"] = [json.loads(d) if isinstance(d, str) else {} for d in frame.details]
    return frame.reset_index(drop=True)


def result(frame: pd.DataFrame, window_start: pd.Timestamp, segment: str | None = None, column: str | None = None) -> pd.Series:
    """The one result row of a window and segment (None: overall) and column."""
    rows = frame[frame.window_start == window_start]
    rows = rows[rows.segment_value.isna()] if segment is None else rows[rows.segment_value == segment]
    if column is not None:
        rows = rows[rows.column_name == column]
    assert len(rows) == 1, f"expected one row for {window_start} {segment} {column}, got {len(rows)}"
    return rows.iloc[0]


def value_of(row: pd.Series) -> float | None:
    value = row["value"]
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def assert_value(row: pd.Series, expected: float | None, tolerance: float = 1e-9) -> None:
    """The stored value equals ``expected``; None means null with status insufficient_data."""
    actual = value_of(row)
    where = f"{row.check_name} {row.window_start} {row.segment_value}"
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        assert actual is None, f"{where}: expected null, got {actual}"
        assert row.status == "insufficient_data", f"{where}: status {row.status}"
        return
    assert actual is not None, f"{where}: expected {expected}, got null ({row.details})"
    assert math.isclose(actual, expected, rel_tol=tolerance, abs_tol=tolerance), f"{where}: {actual} != {expected}"


def segment_of(row) -> str | None:
    """The segment value of a result row read back (None for the overall row)."""
    return None if pd.isna(row.segment_value) else row.segment_value


def rows_of(data: pd.DataFrame, window_start: pd.Timestamp, segment: str | None) -> pd.DataFrame:
    """The raw rows of one daily window and segment (``__null__``: rows whose region is null)."""
    rows = data[(data.ts >= window_start) & (data.ts < window_start + DAY)]
    if segment is None:
        return rows
    return rows[rows.region.isna()] if segment == "__null__" else rows[rows.region == segment]
