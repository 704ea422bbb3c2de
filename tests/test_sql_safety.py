"""User SQL reads tables only, and every query of a window is bounded by ``query_timeout``.

Through the CLI as a user runs it, on DuckDB and PostgreSQL: a monitor whose ``source.sql``,
``where``, macro or metric ``sql:`` calls a function that reads files (``read_text``,
``read_csv``, ``glob``, ``pg_read_file``), sleeps (``pg_sleep``), changes settings
(``set_config``) or reads anything but a table in FROM is refused at ``validate`` and ``run``
with one located line and exit 3, and nothing is written. The shipped monitors still validate.
A query that runs past ``query_timeout`` ends its window as an error, and the run finishes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import ibis
import pandas as pd
import pytest

from driftline.demo import prepare_project
from driftline.demo_data import build_demo_warehouse

MONITOR = """
name: leads
source:
  table: leads
  timestamp: scored_at
schedule: {every: 1d}
reference: {start: 2026-01-01, end: 2026-01-02}
features:
  numeric: [score]
checks:
  - quality: {metric: null_rate, columns: [score]}
"""

DRIFTLINE = str(Path(sys.executable).with_name("driftline"))


@pytest.fixture
def leads() -> pd.DataFrame:
    start = datetime(2026, 1, 1)
    return pd.DataFrame({"scored_at": [start + timedelta(hours=i) for i in range(48)], "score": [i / 48 for i in range(48)]})


def driftline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DRIFTLINE, *args], capture_output=True, text=True, timeout=300)


def located_line(result: subprocess.CompletedProcess, path: Path, key: str) -> str:
    """The one error line, which must point at the line of ``path`` holding ``key``."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3 and len(lines) == 1, result.stderr
    number = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if key in text)
    assert re.match(rf"{re.escape(str(path))}:{number}:\d+: ", lines[0]), lines[0]
    return lines[0]


def assert_refused_everywhere(root: Path, path: Path, key: str, words: str) -> None:
    for command in (["validate"], ["run", "--at", "2026-01-03", "--no-notify"]):
        line = located_line(driftline(*command, "--project", str(root)), path, key)
        assert words in line, line


# -- DuckDB ---------------------------------------------------------------------------------------

DUCKDB_SOURCES = [
    ("select read_text('/etc/passwd') as content, * from leads", "function read_text() is not allowed"),
    ("select * from read_csv('/etc/passwd')", "table function read_csv() in FROM is not allowed"),
    ("select l.* from leads l, glob('/etc/*') g", "table function glob() in FROM is not allowed"),
    ("select * from '/etc/passwd.csv'", "looks like a file or URL"),
    ("select * from 'https://example.com/leads.csv'", "looks like a file or URL"),
    ("select * from query_table('leads')", "table function query_table() in FROM is not allowed"),
]


@pytest.mark.parametrize(("sql", "words"), DUCKDB_SOURCES)
def test_a_duckdb_source_query_reading_files_is_refused(make_project, leads, sql, words):
    project = make_project(monitors={"leads": MONITOR.replace("  table: leads", f'  sql: "{sql}"')}, tables={"leads": leads})
    assert_refused_everywhere(project.root, project.root / "monitors" / "leads.yml", "sql:", words)
    assert "allowed: aggregates" in driftline("validate", "--project", str(project.root)).stderr
    assert project.query("select table_name from information_schema.tables").table_name.tolist() == ["leads"]


def test_a_where_calling_read_text_is_refused(make_project, leads):
    monitor = MONITOR.replace("  timestamp: scored_at", "  timestamp: scored_at\n  where: \"read_text('/etc/passwd') <> ''\"")
    project = make_project(monitors={"leads": monitor}, tables={"leads": leads})
    assert_refused_everywhere(project.root, project.root / "monitors" / "leads.yml", "where:", "read_text")
    assert project.query("select table_name from information_schema.tables").table_name.tolist() == ["leads"]


def test_a_macro_calling_read_text_is_refused(make_project, leads):
    macros = {"files": "macros:\n  passwd:\n    args: [x]\n    sql: length(read_text({x}))\n"}
    monitor = MONITOR + "  - metric: {name: leak, sql: \"max(passwd('/etc/passwd'))\"}\n"
    project = make_project(monitors={"leads": monitor}, tables={"leads": leads}, macros=macros)
    assert_refused_everywhere(project.root, project.root / "macros" / "files.yml", "passwd:", "read_text")


def test_a_metric_calling_read_csv_is_refused(make_project, leads):
    monitor = MONITOR + "  - metric: {name: leak, sql: \"count(read_csv('/etc/passwd'))\"}\n"
    project = make_project(monitors={"leads": monitor}, tables={"leads": leads})
    assert_refused_everywhere(project.root, project.root / "monitors" / "leads.yml", "leak", "read_csv")


def test_duckdb_itself_refuses_files_on_driftlines_connection(make_project, leads):
    """Beyond the allowlist: driftline's DuckDB connection has external access off."""
    from driftline.connect import connect

    project = make_project(tables={"leads": leads})
    con = connect(project.url)
    try:
        with pytest.raises(Exception, match="disabled by configuration"):
            con.raw_sql("select * from read_text('/etc/passwd')").fetchall()
    finally:
        con.disconnect()


def test_legitimate_source_queries_still_validate(make_project, leads):
    sql = (
        "with ranked as (select *, row_number() over (partition by date_trunc('day', scored_at) order by score desc) as rn "
        "from leads) select scored_at, coalesce(round(score, 2), 0.0) as score, extract(hour from scored_at) as hour, "
        "case when score > 0.5 then 'high' else 'low' end as band from ranked where rn <= 40"
    )
    monitor = MONITOR.replace("  table: leads", f'  sql: "{sql}"').replace("features:", "segments: [band]\nfeatures:")
    project = make_project(monitors={"leads": monitor}, tables={"leads": leads})
    result = driftline("validate", "--project", str(project.root))
    assert result.returncode == 0, result.stderr


def test_the_shipped_monitors_still_validate(tmp_path):
    prepare_project(tmp_path)
    build_demo_warehouse(tmp_path / "warehouse.duckdb", rows=3_000)
    result = driftline("validate", "--project", str(tmp_path))
    assert result.returncode == 0, result.stderr


def test_a_slow_duckdb_query_is_interrupted_at_query_timeout(make_project):
    """A cross join of 3,000 rows three times over (minutes of work): stopped after 2s."""
    start = datetime(2026, 1, 1)
    rows = pd.DataFrame({"ts": [start + timedelta(minutes=i) for i in range(3000)], "x": [float(i) for i in range(3000)]})
    sql = "select a.ts, a.x + b.x + c.x as score from t a cross join t b cross join t c"
    monitor = MONITOR.replace("  table: leads", f'  sql: "{sql}"').replace("scored_at", "ts")
    project = make_project(monitors={"leads": monitor}, tables={"t": rows}, settings={"query_timeout": "2s"})
    result = driftline("run", "--project", str(project.root), "--at", "2026-01-03", "--no-notify")
    assert result.returncode == 3, result.stderr
    assert "query exceeded query_timeout 2s" in result.stdout + result.stderr
    runs = project.query("select status, error from driftline_runs")
    assert runs.status.tolist() == ["error"] and "query exceeded query_timeout 2s" in runs.error[0]


# -- PostgreSQL -----------------------------------------------------------------------------------


@pytest.fixture
def postgres_schema(postgres_url, leads):
    schema = f"driftline_safety_{uuid.uuid4().hex[:10]}"
    con = ibis.connect(postgres_url)
    con.create_database(schema)
    try:
        con.create_table("leads", leads, database=schema)
        yield con, schema
    finally:
        con.drop_database(schema, force=True, cascade=True)
        con.disconnect()


def postgres_project(make_project, postgres_url, schema: str, monitor: str, **settings):
    monitor = monitor.replace("FROM_LEADS", f"{schema}.leads").replace("  table: leads", f"  table: {schema}.leads")
    return make_project(monitors={"leads": monitor}, settings={"connection": postgres_url, "results": {"schema": schema}, **settings})


def tables_in(con, schema: str) -> list[str]:
    return sorted(con.list_tables(database=schema))


POSTGRES_SOURCES = [
    ("select pg_read_file('/etc/passwd') as content, * from FROM_LEADS", "function pg_read_file() is not allowed"),
    ("select set_config('statement_timeout', '0', false) as s, * from FROM_LEADS", "function set_config() is not allowed"),
    ("select pg_sleep(30) as s, * from FROM_LEADS", "function pg_sleep() is not allowed"),
    ("select l.* from FROM_LEADS l, pg_ls_dir('/') d", "table function pg_ls_dir() in FROM is not allowed"),
    ("select l.* from FROM_LEADS l, dblink('dbname=test', 'select 1') as d(x int)", "table function dblink() in FROM is not allowed"),
    ("select lo_import('/etc/passwd') as o, * from FROM_LEADS", "function lo_import() is not allowed"),
]


@pytest.mark.postgres
@pytest.mark.parametrize(("sql", "words"), POSTGRES_SOURCES)
def test_a_postgres_source_query_reading_files_or_settings_is_refused(make_project, postgres_url, postgres_schema, sql, words):
    con, schema = postgres_schema
    project = postgres_project(make_project, postgres_url, schema, MONITOR.replace("  table: leads", f'  sql: "{sql}"'))
    assert_refused_everywhere(project.root, project.root / "monitors" / "leads.yml", "sql:", words)
    assert tables_in(con, schema) == ["leads"]


@pytest.mark.postgres
def test_a_postgres_metric_calling_pg_sleep_is_refused(make_project, postgres_url, postgres_schema):
    con, schema = postgres_schema
    monitor = MONITOR + "  - metric: {name: slow, sql: \"max(pg_sleep(30))\"}\n"
    project = postgres_project(make_project, postgres_url, schema, monitor)
    assert_refused_everywhere(project.root, project.root / "monitors" / "leads.yml", "slow", "pg_sleep")
    assert tables_in(con, schema) == ["leads"]


@pytest.mark.postgres
def test_a_slow_postgres_query_is_cancelled_at_query_timeout(make_project, postgres_url, postgres_schema):
    """statement_timeout cancels the query; the window is an error and the run goes on."""
    con, schema = postgres_schema
    start = datetime(2026, 1, 1)
    rows = pd.DataFrame({"scored_at": [start + timedelta(minutes=i) for i in range(3000)], "score": [float(i) for i in range(3000)]})
    con.create_table("big", rows, database=schema)
    sql = f"select a.scored_at, a.score + b.score + c.score as score from {schema}.big a cross join {schema}.big b cross join {schema}.big c"
    project = postgres_project(make_project, postgres_url, schema, MONITOR.replace("  table: leads", f'  sql: "{sql}"'), query_timeout="2s")
    result = driftline("run", "--project", str(project.root), "--at", "2026-01-03", "--no-notify")
    assert result.returncode == 3, result.stderr
    assert "query exceeded query_timeout 2s" in result.stdout + result.stderr
    runs = con.table("driftline_runs", database=schema).execute()
    assert runs.status.tolist() == ["error"] and "statement timeout" in runs.error[0]


@pytest.mark.postgres
def test_postgres_measuring_queries_run_read_only(postgres_url, postgres_schema):
    """A write reaching the measuring transaction would fail: it is READ ONLY."""
    from driftline.connect import bounded_query, connect

    _, schema = postgres_schema
    con = connect(postgres_url)
    try:
        with pytest.raises(Exception, match="read-only transaction"):
            with bounded_query(con, timedelta(seconds=5)):
                con.con.execute(f"create table {schema}.written (x int)")
        assert "written" not in con.list_tables(database=schema)
        assert con.con.execute("show transaction_read_only").fetchone()[0] == "off"  # the session itself still writes
    finally:
        con.disconnect()
