"""The same monitor on local Spark and on DuckDB, end to end through ``driftline.api.backfill``.

One local Spark session (``pyspark://local``) serves the whole file: starting one takes seconds.
The source rows are those of ``drift_model.py`` (nulls, NaN, ±infinity, ties, unseen categories,
a segment column with a tiny segment and null values), written to a Spark table through arrow so
that NaN and null stay apart. A psi + chi2 + ks monitor with segments runs over a drifted day and
an empty day, once on Spark, with its results in their own database, and once on DuckDB. The
Spark results must equal the numpy/scipy model and the DuckDB results to 1e-9. A rerun that
fails between two tables must be recorded as an error and leave none of its rows; the next rerun
must replace the window's rows without leaving duplicates or staging tables behind.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import ibis
import pandas as pd
import pytest
import yaml
from edge_ranks import COLUMNS as EDGE_COLUMNS, TOLERANCE, edge_frame, quantile_values, rank_errors
from drift_model import DAY, DRIFTED, EMPTY, MAIN, ONE_ROW, arrow_table, compare, generate_rows, model_results

from driftline import api, connect, writers
from driftline.errors import WarehouseError
from driftline.result_schema import HISTOGRAMS

SPARK_URL = "pyspark://local"
DUCKDB_URL = "duckdb://warehouse.duckdb"
RESULTS_SCHEMA = "monitoring"
CHECKS = ("drift_psi", "drift_chi2", "drift_ks")
WINDOWS = (DRIFTED, EMPTY)
NOW = ONE_ROW + 2 * DAY
RESULT_KEY = ["window_start", "check_name", "column_name", "segment_key", "segment_value"]


def monitor_yaml() -> str:
    """``drift_model.MAIN`` with only its psi, chi2 and ks checks, so the model's values apply,
    and exact edges: each backend's approximate quantiles differ, numpy's exact ones do not."""
    wanted = ("method: psi, max_categories", "method: chi2", "method: ks")
    lines = [line for line in MAIN.splitlines() if not line.startswith("  - drift:") or any(w in line for w in wanted)]
    assert sum(line.startswith("  - drift:") for line in lines) == len(CHECKS), "drift_model.MAIN changed"
    return "\n".join(lines).replace("{method: psi,", "{edges: exact, method: psi,").replace("{method: chi2,", "{edges: exact, method: chi2,")


def expected_results(data: dict, window_start) -> dict:
    return {key: value for key, value in model_results(data, window_start).items() if key[0] in CHECKS}


# -- one Spark session and one backfill per engine for the whole file ----------------------------


@dataclass
class Engines:
    """The project (Spark by default, DuckDB through ``connection=``) and both backfills."""

    root: Path
    spark: ibis.BaseBackend
    data: dict[str, list]
    spark_run: api.RunSummary
    duckdb_run: api.RunSummary

    def spark_table(self, name: str) -> pd.DataFrame:
        return self.spark.table(name, database=RESULTS_SCHEMA).execute()

    def duckdb_table(self, name: str) -> pd.DataFrame:
        con = ibis.duckdb.connect(str(self.root / "warehouse.duckdb"))
        try:
            return con.table(name, database=RESULTS_SCHEMA).execute()
        finally:
            con.disconnect()


def _skip_without_spark() -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'driftline[spark]')")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java and no `java` is on the PATH")


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Engines:
    _skip_without_spark()
    from pyspark.sql import SparkSession

    root = tmp_path_factory.mktemp("spark_project")
    project = {"name": "spark_parity", "connection": SPARK_URL, "results": {"schema": RESULTS_SCHEMA}}
    (root / "driftline_project.yml").write_text(yaml.safe_dump(project), encoding="utf-8")
    (root / "monitors").mkdir()
    (root / "monitors" / "main.yml").write_text(monitor_yaml(), encoding="utf-8")

    started_here = SparkSession.getActiveSession() is None
    spark = connect.connect(SPARK_URL, root)
    data = generate_rows()
    SparkSession.getActiveSession().createDataFrame(arrow_table(data)).write.saveAsTable("events")
    duckdb = ibis.duckdb.connect(str(root / "warehouse.duckdb"))
    duckdb.create_table("events", arrow_table(data))
    duckdb.disconnect()

    spark_run = api.backfill(WINDOWS[0], WINDOWS[-1] + DAY, root, at=NOW)
    duckdb_run = api.backfill(WINDOWS[0], WINDOWS[-1] + DAY, root, at=NOW, connection=DUCKDB_URL)
    yield Engines(root, spark, data, spark_run, duckdb_run)
    if started_here:
        SparkSession.getActiveSession().stop()


# -- the tests -------------------------------------------------------------------------------------


@pytest.mark.spark
def test_every_window_runs_on_spark(engines):
    assert [(o.window.start, o.status, o.error) for o in engines.spark_run.outcomes] == [
        (start, "success", None) for start in WINDOWS
    ]
    assert engines.spark_run.exit_code == engines.duckdb_run.exit_code


@pytest.mark.spark
def test_spark_results_match_numpy_and_scipy(engines):
    results = engines.spark_table("driftline_results")
    for start in WINDOWS:
        compare(results[results.window_start == start], expected_results(engines.data, start))


@pytest.mark.spark
def test_spark_approximate_quantiles_are_within_one_point_of_rank(engines):
    """SPEC §6's guarantee for Spark's percentile_approx, on 120,000 rows (see edge_ranks)."""
    frame = edge_frame()
    quantiles = quantile_values(engines.spark.create_table("edge_rows", frame, overwrite=True), "pyspark")
    for column in EDGE_COLUMNS:
        assert max(rank_errors(frame[column].to_numpy(), quantiles[column])) <= TOLERANCE, column


@pytest.mark.spark
def test_spark_results_match_duckdb(engines):
    spark = _keyed(engines.spark_table("driftline_results"))
    duckdb = _keyed(engines.duckdb_table("driftline_results"))
    assert list(spark.index) == list(duckdb.index)
    for column in ("value", "p_value"):
        gap = (spark[column] - duckdb[column]).abs()
        assert ((gap <= 1e-9) | (spark[column].isna() & duckdb[column].isna())).all(), column
    for column in ("status", "n_current", "n_reference", "warn_threshold", "fail_threshold"):
        assert _cells(spark[column]) == _cells(duckdb[column]), column


@pytest.mark.spark
def test_spark_histograms_match_duckdb(engines):
    key = ["monitor", "column_name", "segment_key", "segment_value", "bin_index"]
    columns = ["bin_label", "lower", "upper", "reference_count", "current_count"]

    def bins(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns="run_id").fillna({"segment_key": "", "segment_value": ""}).sort_values(key)

    spark = bins(engines.spark_table("driftline_histograms"))
    duckdb = bins(engines.duckdb_table("driftline_histograms"))
    assert len(spark) == len(duckdb) > 0
    pd.testing.assert_frame_equal(
        spark[key + columns].reset_index(drop=True), duckdb[key + columns].reset_index(drop=True), check_dtype=False
    )


@pytest.mark.spark
def test_results_live_in_their_own_spark_database(engines):
    tables = _tables(engines.spark, RESULTS_SCHEMA)
    assert {"driftline_runs", "driftline_results", "driftline_histograms", "driftline_alerts", "driftline_profiles"} <= tables
    assert {"driftline_latest", "driftline_open_alerts", "driftline_check_history"} <= tables  # stored views
    assert not [t for t in tables if "__driftline_" in t]
    history = engines.spark.table("driftline_check_history", database=RESULTS_SCHEMA).execute()
    assert len(history) == len(engines.spark_table("driftline_results"))


@pytest.mark.spark
def test_a_rerun_failing_between_two_tables_is_recorded_and_leaves_none_of_its_rows(engines, monkeypatch):
    """Spark swaps one table at a time: make the second one fail, once."""
    apply = writers.SparkWriter._apply
    failures = []

    def fail_once_on_histograms(writer, table, change):
        if table == HISTOGRAMS and not failures:
            failures.append(table)
            raise RuntimeError("executor lost")
        apply(writer, table, change)

    monkeypatch.setattr(writers.SparkWriter, "_apply", fail_once_on_histograms)
    (outcome,) = api.backfill(DRIFTED, DRIFTED + DAY, engines.root, at=NOW).outcomes

    assert outcome.status == "error" and "executor lost" in outcome.error
    runs = engines.spark_table("driftline_runs")
    assert sorted(runs[runs.window_start == DRIFTED].status) == ["error", "success"]
    assert outcome.run_id not in set(engines.spark_table("driftline_results").run_id)
    assert outcome.run_id not in set(engines.spark_table("driftline_histograms").run_id)


@pytest.mark.spark
def test_rerunning_a_window_replaces_its_rows(engines):
    """After the failed rerun above: the next run of the window sweeps every earlier run away."""
    before = engines.spark_table("driftline_results")
    (outcome,) = api.backfill(DRIFTED, DRIFTED + DAY, engines.root, at=NOW).outcomes
    assert outcome.status == "success"

    results = engines.spark_table("driftline_results")
    assert not results.duplicated(RESULT_KEY).any()
    rerun = results.window_start == DRIFTED
    assert set(results[rerun].run_id) == {outcome.run_id}
    compare(results[rerun], expected_results(engines.data, DRIFTED))
    untouched = before[before.window_start != DRIFTED]
    assert sorted(results[~rerun].run_id) == sorted(untouched.run_id)

    runs = engines.spark_table("driftline_runs")
    assert sorted(runs.window_start) == list(WINDOWS)
    assert set(runs.status) == {"success"}
    histograms = engines.spark_table("driftline_histograms")
    assert set(histograms.run_id) == set(runs.run_id)
    assert not [t for t in _tables(engines.spark, RESULTS_SCHEMA) if "__driftline_" in t]


@pytest.mark.spark
@pytest.mark.parametrize("left_behind", ["staging and old table", "old table only"])
def test_a_swap_cut_short_is_finished_by_the_next_run(engines, left_behind):
    """A crash between the two renames of a swap leaves the table missing; the next
    ``ensure_tables`` rolls forward to a complete staging table, or back to the old one."""
    con, schema = engines.spark, "swap_recovery"
    con.create_database(schema, force=True)
    con.create_table("t", pd.DataFrame({"v": [1, 2]}), database=schema, overwrite=True)
    con.create_table("t__driftline_new", pd.DataFrame({"v": [1, 2, 3]}), database=schema, overwrite=True)
    con.raw_sql(f"ALTER TABLE {schema}.t RENAME TO {schema}.t__driftline_old")
    if left_behind == "old table only":
        con.drop_table("t__driftline_new", database=schema)

    writers.finish_interrupted_writes(con, schema, ["t"])

    expected = [1, 2, 3] if left_behind == "staging and old table" else [1, 2]
    assert sorted(con.table("t", database=schema).execute().v) == expected
    assert _tables(con, schema) == {"t"}


def _cells(column: pd.Series) -> list:
    return [None if pd.isna(value) else value for value in column]


def _tables(con: ibis.BaseBackend, schema: str) -> set[str]:
    """The tables and views of ``schema``, without the session's temporary views of ibis frames."""
    return {name for name in con.list_tables(database=schema) if not name.startswith("ibis_")}


def _keyed(results: pd.DataFrame) -> pd.DataFrame:
    keyed = results.fillna({"segment_key": "", "segment_value": ""}).set_index(RESULT_KEY)
    return keyed.sort_index()


# -- the URL -------------------------------------------------------------------------------------


@pytest.mark.spark
def test_connections_share_the_running_session(engines):
    again = connect.connect(SPARK_URL, engines.root)
    attached = connect.connect("pyspark://")
    assert again._session is engines.spark._session is attached._session
    assert again._session.conf.get("spark.sql.session.timeZone") == "UTC"


@pytest.mark.spark
def test_another_warehouse_in_the_same_process_is_one_clear_error(engines, tmp_path):
    with pytest.raises(WarehouseError, match="already running in this process"):
        connect.connect(f"{SPARK_URL}?warehouse=elsewhere", tmp_path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("pyspark://local?threads=4", "unknown option 'threads'"),
        ("pyspark://cluster", "expected pyspark://local"),
        ("spark://127.0.0.1:7077?threads=4", "unknown option 'threads'"),
        ("spark://127.0.0.1", "expected spark://HOST:PORT"),
        ("sc://127.0.0.1:15002?warehouse=elsewhere", "unknown option 'warehouse'.*the server owns its warehouse"),
        ("pyspark://?conf.spark.executor.memory=1g", "pyspark:// takes no options"),
    ],
)
def test_a_wrong_spark_url_is_one_clear_error(url, message):
    with pytest.raises(WarehouseError, match=message):
        connect.connect(url, Path("."))


@pytest.mark.parametrize(
    ("url", "master", "warehouse", "conf"),
    [
        # the project's spark: block alone
        ("spark://127.0.0.1:7077", "spark://127.0.0.1:7077", "shared/wh", {"spark.executor.memory": "2g", "spark.sql.shuffle.partitions": "8"}),
        # a URL option wins over the same key of the block; the block's other keys stay
        ("pyspark://local?warehouse=/mnt/wh&conf.spark.executor.memory=4g", "local[2]", "/mnt/wh", {"spark.executor.memory": "4g", "spark.sql.shuffle.partitions": "8"}),
        # a Connect server owns its warehouse: only the settings apply
        ("sc://127.0.0.1:15002/;user_id=ci?conf.spark.sql.ansi.enabled=true", "sc://127.0.0.1:15002/;user_id=ci", None,
         {"spark.executor.memory": "2g", "spark.sql.shuffle.partitions": "8", "spark.sql.ansi.enabled": "true"}),
    ],
)
def test_the_project_spark_block_under_the_url_options(make_project, url, master, warehouse, conf):
    from driftline.project import load_project

    block = {"warehouse": "shared/wh", "conf": {"spark.executor.memory": "2g", "spark.sql.shuffle.partitions": 8}}
    project = make_project(settings={"spark": block})
    loaded = load_project(project.root)
    target = connect.spark_target(url, loaded.root, loaded.settings.spark.settings(loaded.root))
    assert target.address == master
    assert target.warehouse == (None if warehouse is None else (loaded.root / warehouse).resolve())
    assert target.conf == conf


def test_spark_sql_writes_every_decimal_literal_as_a_double(tmp_path):
    """Spark reads ``1.0`` as a DECIMAL, and the average of the demo's conversion_rate macro
    (``avg(case when converted then 1.0 else 0.0 end)``) as a DECIMAL rounded to 5 places;
    ``1.0e0`` is a double. The values themselves are compared with pandas' on a cluster in
    test_spark_cluster."""
    import re

    from driftline import demo
    from driftline.demo_data import MIN_ROWS, build_demo_warehouse

    demo.prepare_project(tmp_path)
    build_demo_warehouse(tmp_path / "warehouse.duckdb", rows=MIN_ROWS)  # compiling reads the tables' columns
    sql = api.compile(tmp_path, "lead_conversion", "pyspark", None, "2026-10-09")
    assert "AVG(CASE WHEN `converted` THEN 1.0e0 ELSE 0.0e0 END)" in re.sub(r"`t\d+`\.", "", sql)
    assert not re.findall(r"(?<![\w.])\d+\.\d+(?![\d.e])", re.sub(r"'[^']*'", "''", sql)), "a decimal literal without an exponent"
