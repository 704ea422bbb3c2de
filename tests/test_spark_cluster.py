"""The demo monitors on a standalone Spark cluster and on a Spark Connect server, through the
command line, against DuckDB on the same windows.

``.ci/services/spark.sh`` starts the servers and exports their URLs
(``DRIFTLINE_TEST_SPARK_MASTER=spark://127.0.0.1:7077``,
``DRIFTLINE_TEST_SPARK_CONNECT=sc://127.0.0.1:15002``); each test skips, saying so, when its
variable is unset. The demo warehouse (``driftline demo``'s data, 100,000 leads) is built once
in DuckDB and copied into each Spark catalog by a process of its own; the psi checks use exact
edges, as each engine's approximate quantiles differ by design. Every command runs as its own
``driftline`` process, as a user would run it, and the first run's ``--json`` results must equal
DuckDB's: values to 1e-9 relative, statuses and row counts. The conversion rate, whose macro
averages ``1.0``/``0.0`` literals, must also equal the rate pandas counts from the rows. A second
process on the same warehouse must find the result tables the first one created: each monitor
runs in a process of its own.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from driftline import demo
from driftline.demo_data import build_demo_warehouse

pytestmark = pytest.mark.spark

ROWS = 100_000
# A daily lead_scoring window and a weekly lead_conversion window, after the campaign change.
WINDOWS = {"lead_scoring": ("2026-10-01", "2026-10-02"), "lead_conversion": ("2026-10-01", "2026-10-08")}
AT = "2026-11-01"  # the labels of those windows have arrived
RELATIVE = 1e-9
RESULT_KEY = ("monitor", "window_start", "check_name", "column_name", "segment_key", "segment_value")
SAME = ("status", "n_current", "n_reference")


def _url(variable: str) -> str:
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"set {variable} (.ci/services/spark.sh starts the server and sets it)")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java and no `java` is on the PATH")
    return url


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's DuckDB warehouse, built once for every engine."""
    path = tmp_path_factory.mktemp("demo_data") / "warehouse.duckdb"
    build_demo_warehouse(path, rows=ROWS)
    return path


def make_project(root: Path, warehouse: Path, results_schema: str) -> Path:
    """The demo project with exact psi edges, its results in ``results_schema``."""
    demo.prepare_project(root)
    monitor = root / "monitors" / "lead_scoring.yml"
    text = monitor.read_text(encoding="utf-8")
    assert text.count("method: psi\n") == 2, "the demo's psi checks changed"
    monitor.write_text(text.replace("method: psi\n", "method: psi\n      edges: exact\n"), encoding="utf-8")
    project = yaml.safe_load((root / "driftline_project.yml").read_text(encoding="utf-8"))
    project["results"] = {"schema": results_schema}
    (root / "driftline_project.yml").write_text(yaml.safe_dump(project), encoding="utf-8")
    shutil.copy(warehouse, root / "warehouse.duckdb")
    return root


def driftline(root: Path, *args: str, connection: str | None = None) -> dict:
    """One ``driftline`` command in a process of its own; its ``--json`` document."""
    command = [str(Path(sys.executable).with_name("driftline")), *args, "--project", str(root), "--json"]
    if connection:
        command += ["--connection", connection]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=root)
    assert done.stdout.strip(), f"driftline {' '.join(args)} wrote no JSON:\n{done.stderr[-3000:]}"
    document = json.loads(done.stdout.strip().splitlines()[-1])
    errors = [w["error"] for w in document.get("windows", []) if w["error"]] + document.get("errors", [])
    assert not errors, errors
    return document


def backfill(root: Path, connection: str | None = None) -> dict:
    """Each monitor's windows, one process per monitor: the first creates the result tables and
    the second must find them (a catalog that forgot them fails to create them again over their
    files)."""
    windows = []
    for monitor, (start, end) in WINDOWS.items():
        command = ("backfill", "--monitor", monitor, "--start", start, "--end", end, "--at", AT)
        windows += driftline(root, *command, connection=connection)["windows"]
    return {"windows": windows}


LOAD_TABLES = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import duckdb
    from driftline import connect

    url, root = sys.argv[1], Path(sys.argv[2])
    session = connect.connect(url, root)._session
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as source:
        for table in ("lead_predictions", "lead_outcomes"):
            rows = source.table(table).arrow()
            rows = rows.read_all() if hasattr(rows, "read_all") else rows
            session.createDataFrame(rows).write.mode("overwrite").saveAsTable(table)
    """
)


def load_into_spark(root: Path, url: str) -> None:
    """The demo's source tables copied into the Spark catalog of ``url``, by a process of its own
    (a process holds one Spark context, and the local metastore admits one process at a time)."""
    done = subprocess.run([sys.executable, "-c", LOAD_TABLES, url, str(root)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def duckdb_results(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = make_project(tmp_path_factory.mktemp("duckdb_project"), demo_warehouse, "monitoring")
    return {"root": root, "run": backfill(root)}


# -- comparing -------------------------------------------------------------------------------------


def keyed(document: dict) -> dict[tuple, dict]:
    results = {}
    for window in document["windows"]:
        for result in window["results"]:
            key = tuple(result[name] for name in RESULT_KEY)
            assert key not in results, key
            results[key] = result
    return results


def assert_same_results(spark: dict, duckdb_run: dict) -> None:
    assert [(w["monitor"], w["window_start"], w["status"]) for w in spark["windows"]] == [
        (w["monitor"], w["window_start"], w["status"]) for w in duckdb_run["windows"]
    ]
    spark_results, duckdb_results = keyed(spark), keyed(duckdb_run)
    assert sorted(spark_results, key=str) == sorted(duckdb_results, key=str)
    assert len(duckdb_results) > 200
    for key, expected in duckdb_results.items():
        got = spark_results[key]
        for column in ("value", "p_value", "reference_value"):
            assert _close(got[column], expected[column]), (key, column, got[column], expected[column])
        assert {c: got[c] for c in SAME} == {c: expected[c] for c in SAME}, key


def _close(got, expected) -> bool:
    if got is None or expected is None:
        return got is None and expected is None
    return math.isclose(got, expected, rel_tol=RELATIVE, abs_tol=1e-12)


def assert_conversion_rate_is_the_share_of_converted_leads(document: dict, warehouse: Path) -> None:
    """The macro's ``avg(case when converted then 1.0 else 0.0 end)``, counted by pandas."""
    (window,) = [w for w in document["windows"] if w["monitor"] == "lead_conversion"]
    (result,) = [r for r in window["results"] if r["check_name"] == "conversion_rate" and r["segment_key"] is None]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        leads = con.execute(
            "select p.scored_at, o.converted from lead_predictions p left join lead_outcomes o using (lead_id) "
            "where p.model_version = 'v3'"
        ).df()
    start, end = (pd.Timestamp(window[k].rstrip("Z")) for k in ("window_start", "window_end"))
    converted = leads[(leads.scored_at >= start) & (leads.scored_at < end)].converted
    expected = converted.fillna(False).astype(bool).to_numpy().mean()
    assert result["n_current"] == len(converted)
    assert math.isclose(result["value"], float(expected), rel_tol=RELATIVE), (result["value"], expected)


# -- the tests -------------------------------------------------------------------------------------


def test_duckdb_conversion_rate_is_the_share_of_converted_leads(duckdb_results, demo_warehouse):
    assert_conversion_rate_is_the_share_of_converted_leads(duckdb_results["run"], demo_warehouse)


def test_standalone_cluster_matches_duckdb_and_keeps_its_tables(duckdb_results, demo_warehouse, tmp_path):
    url = _url("DRIFTLINE_TEST_SPARK_MASTER")
    root = make_project(tmp_path / "project", demo_warehouse, "monitoring")
    load_into_spark(root, url)

    first = backfill(root, url)
    assert_same_results(first, duckdb_results["run"])
    assert_conversion_rate_is_the_share_of_converted_leads(first, demo_warehouse)
    assert (root / "spark-warehouse" / "metastore_db").is_dir()  # the catalog lives in the project


def test_spark_connect_matches_duckdb_and_keeps_its_tables(duckdb_results, demo_warehouse, tmp_path):
    url = _url("DRIFTLINE_TEST_SPARK_CONNECT")
    schema = f"driftline_test_{uuid.uuid4().hex[:12]}"  # the server outlives this test: results of its own
    root = make_project(tmp_path / "project", demo_warehouse, schema)
    load_into_spark(root, url)
    try:
        first = backfill(root, url)
        assert_same_results(first, duckdb_results["run"])
        assert_conversion_rate_is_the_share_of_converted_leads(first, demo_warehouse)
    finally:
        subprocess.run(
            [sys.executable, "-c", "import sys; from driftline import connect; "
             "connect.connect(sys.argv[1]).raw_sql(f'DROP DATABASE IF EXISTS {sys.argv[2]} CASCADE')", url, schema],
            capture_output=True, timeout=300,
        )


def test_pyspark_without_a_session_tells_the_command_line_what_to_use(tmp_path):
    """``pyspark://`` is the session of the calling Python process; the command line has none."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'driftline[spark]')")
    demo.prepare_project(tmp_path)
    command = [str(Path(sys.executable).with_name("driftline")), "run", "--project", str(tmp_path), "--connection", "pyspark://"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "pyspark://" in line]
    assert "spark://HOST:PORT" in line and "sc://HOST:PORT" in line and "pyspark://local" in line
