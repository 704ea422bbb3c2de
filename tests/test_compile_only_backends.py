"""A backend driftline only compiles for refuses ``run`` and ``backfill`` before it creates
anything there (SPEC §4).

SQLite stands for every compile-only backend: ibis opens it without a server, from a file the
test reads back with Python's own ``sqlite3``. The command line must exit 3 with one line that
says what works instead, and the database must hold exactly the table it had before.

ClickHouse fails a statement longer than its ``max_query_size`` (262,144 bytes by default): the
demo monitors' ClickHouse SQL must fit within it, so that it runs on a default server.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from drift_model import small_monitor

DIALECTS = "duckdb|postgres|snowflake|bigquery|trino|databricks|clickhouse|pyspark"  # SQLite is none of them
REFUSAL = "`{command}` on sqlite is not supported yet; `compile --dialect <" + DIALECTS + ">` prints its SQL"


@pytest.fixture()
def sqlite_project(tmp_path: Path) -> tuple[Path, Path]:
    database = tmp_path / "warehouse.sqlite"
    with sqlite3.connect(database) as con:
        con.execute("CREATE TABLE events (ts TIMESTAMP, x DOUBLE, cat TEXT)")
        con.executemany("INSERT INTO events VALUES (?, ?, ?)", [(f"2026-01-0{d} 12:00:00", float(d), "a") for d in range(1, 10)])
    project = {"name": "compile_only", "connection": f"sqlite:///{database}"}
    (tmp_path / "driftline_project.yml").write_text(yaml.safe_dump(project), encoding="utf-8")
    (tmp_path / "monitors").mkdir()
    (tmp_path / "monitors" / "calm.yml").write_text(small_monitor("calm", "{method: psi}"), encoding="utf-8")
    return tmp_path, database


def _tables(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as con:
        return sorted(con.execute("SELECT type, name FROM sqlite_master").fetchall())


@pytest.mark.parametrize(
    "command",
    [["run", "--at", "2026-01-10T03:00"], ["backfill", "--start", "2026-01-08", "--end", "2026-01-10", "--at", "2026-01-12"]],
    ids=["run", "backfill"],
)
def test_run_on_a_compile_only_backend_is_refused_before_anything_is_created(sqlite_project, command):
    root, database = sqlite_project
    before = _tables(database)
    assert before == [("table", "events")]

    ran = subprocess.run([sys.executable, "-m", "driftline.cli", *command, "--project", str(root)],
                         capture_output=True, text=True, timeout=120)

    assert ran.returncode == 3, ran.stderr
    assert ran.stderr.strip().splitlines() == [REFUSAL.format(command=command[0])]
    assert _tables(database) == before


def test_validate_still_works_on_a_compile_only_backend(sqlite_project):
    root, _ = sqlite_project
    ran = subprocess.run([sys.executable, "-m", "driftline.cli", "validate", "--project", str(root)],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr


# -- ClickHouse: every statement within the server's default max_query_size -----------------------

CLICKHOUSE_MAX_QUERY_SIZE = 262_144  # bytes; ClickHouse's default, which a longer statement fails


def test_the_demo_monitors_compile_for_clickhouse_within_its_default_max_query_size(tmp_path):
    """A first run's statements (the reference's edges among them) and, once the profile is
    stored, a later run's (the counts on those edges), in the bytes ClickHouse counts."""
    from driftline import api
    from driftline.compilation import compiled_monitors
    from driftline.demo import prepare_project
    from driftline.demo_data import DEMO_END, build_demo_warehouse
    from driftline.workspace import Workspace

    prepare_project(tmp_path)
    build_demo_warehouse(tmp_path / "warehouse.duckdb", rows=20_000)

    def statement_sizes() -> dict[tuple[str, str], int]:
        workspace = Workspace.open(tmp_path)
        try:
            monitors = compiled_monitors(workspace, None, "clickhouse", DEMO_END)
        finally:
            workspace.con.disconnect()
        return {(m.monitor, q.title): len(q.sql.encode()) for m in monitors for q in m.queries}

    first_run = statement_sizes()
    api.run(tmp_path, at=DEMO_END, notify=False)
    later_run = statement_sizes()
    assert any("edges" in title for _, title in first_run) and any("histogram" in title for _, title in later_run)
    for sizes in (first_run, later_run):
        assert max(sizes.values()) < CLICKHOUSE_MAX_QUERY_SIZE, sizes
