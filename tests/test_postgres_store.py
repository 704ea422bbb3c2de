"""The result store on PostgreSQL: a results schema created on first use, additive migrations,
windows replaced in one transaction, and a whole run end to end with ``results.schema`` set.

Needs ``DRIFTLINE_TEST_POSTGRES_URL`` (e.g. ``postgres://postgres@127.0.0.1:5432/test``; skipped
when unset). Every test works in schemas of its own, with unique names, dropped afterwards.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import ibis
import pandas as pd
import pytest
import yaml
from drift_model import DAY, DRIFTED, MAIN, ONE_ROW, arrow_table, compare, generate_rows, model_results

from driftline import api, connect, writers
from driftline.result_schema import HISTOGRAMS, RESULTS, RUNS, TABLES
from driftline.store import ResultStore, WindowRecord
from driftline.views import VIEWS
from driftline.windows import Window

pytestmark = pytest.mark.postgres

WINDOW = Window(datetime(2026, 3, 1), datetime(2026, 3, 2))


@pytest.fixture
def con(postgres_url):
    connection = connect.connect(postgres_url)
    yield connection
    connection.disconnect()


@pytest.fixture
def fresh_schema(con):
    """A schema name that exists nowhere yet; whatever gets it is dropped afterwards."""
    name = f"driftline_test_{uuid.uuid4().hex[:10]}"
    yield name
    con.drop_database(name, force=True, cascade=True)


@pytest.fixture
def store(con, fresh_schema) -> ResultStore:
    store = ResultStore(con, fresh_schema)
    store.ensure_tables()
    return store


# -- creating and migrating ------------------------------------------------------------------------


def test_ensure_tables_creates_the_schema_the_tables_and_the_views(con, fresh_schema):
    assert fresh_schema not in con.list_databases()
    store = ResultStore(con, fresh_schema)
    store.ensure_tables()
    store.ensure_tables()  # a second time changes nothing

    assert fresh_schema in con.list_databases()
    assert set(TABLES) | set(VIEWS) <= set(con.list_tables(database=fresh_schema))
    for name, schema in TABLES.items():
        assert list(con.table(name, database=fresh_schema).columns) == list(schema.names), name


def test_ensure_tables_adds_a_missing_column_and_keeps_the_rows(con, fresh_schema):
    con.create_database(fresh_schema)
    runs = TABLES[RUNS]
    older = ibis.schema({name: dtype for name, dtype in runs.items() if name != "driftline_version"})
    con.create_table(RUNS, schema=older, database=fresh_schema)
    row = {name: value for name, value in _run_row("r0", "success").items() if name in older}
    con.insert(RUNS, ibis.memtable(pd.DataFrame([row]), schema=older), database=fresh_schema)

    ResultStore(con, fresh_schema).ensure_tables()

    table = con.table(RUNS, database=fresh_schema)
    assert list(table.columns) == list(runs.names)  # added at the end, as the contract says
    assert table.schema()["driftline_version"].is_string()
    rows = table.execute()
    assert list(rows.run_id) == ["r0"] and rows.driftline_version.isna().all()


# -- replacing a window ----------------------------------------------------------------------------


def test_replace_window_swaps_the_previous_rows_for_the_new_ones(store):
    first = _evaluate(store, "first")
    second = _evaluate(store, "second")

    runs = store.table(RUNS).execute()
    assert list(runs.run_id) == [second.run["run_id"]] and list(runs.status) == ["success"]
    assert set(store.table(RESULTS).execute().run_id) == {second.run["run_id"]}
    assert set(store.table(HISTOGRAMS).execute().run_id) == {second.run["run_id"]}
    assert first.run["run_id"] != second.run["run_id"]


def test_a_failure_inside_the_transaction_leaves_the_previous_rows_intact(store, monkeypatch):
    before = _evaluate(store, "before")
    after = _record(store, "after")  # marked running in a transaction of its own, as the runner does
    snapshot = {name: store.table(name).execute() for name in (RUNS, RESULTS, HISTOGRAMS)}

    # Fail on the last insert, after the deletes and the results insert have run.
    insert = writers.TransactionWriter.insert

    def failing_insert(writer, table, frame):
        if table == HISTOGRAMS:
            raise RuntimeError("connection lost")
        insert(writer, table, frame)

    monkeypatch.setattr(writers.TransactionWriter, "insert", failing_insert)
    with pytest.raises(RuntimeError, match="connection lost"):
        store.replace_window(after)
    monkeypatch.undo()

    for name, rows in snapshot.items():
        pd.testing.assert_frame_equal(store.table(name).execute(), rows, obj=name)
    assert set(store.table(RESULTS).execute().run_id) == {before.run["run_id"]}
    # the connection is usable again: the rolled-back run can be recorded as an error
    after.run.update(status="error", error="connection lost")
    store.record_error(after.run)
    assert sorted(store.table(RUNS).execute().status) == ["error", "success"]


# -- a whole run -----------------------------------------------------------------------------------


def test_a_run_on_postgres_writes_into_a_new_results_schema(con, postgres_url, fresh_schema, tmp_path):
    source_schema = f"{fresh_schema}_source"
    con.create_database(source_schema)
    try:
        data = generate_rows()
        con.create_table("events", arrow_table(data), database=source_schema)
        project = {"name": "pg", "connection": postgres_url, "results": {"schema": fresh_schema}}
        (tmp_path / "driftline_project.yml").write_text(yaml.safe_dump(project), encoding="utf-8")
        (tmp_path / "monitors").mkdir()
        monitor = MAIN.replace("table: events", f"table: {source_schema}.events")
        (tmp_path / "monitors" / "main.yml").write_text(monitor, encoding="utf-8")

        summary = api.backfill(DRIFTED, DRIFTED + DAY, tmp_path, at=ONE_ROW + 2 * DAY)
        summary_again = api.backfill(DRIFTED, DRIFTED + DAY, tmp_path, at=ONE_ROW + 2 * DAY)

        assert [o.status for o in summary.outcomes + summary_again.outcomes] == ["success", "success"]
        results = con.table(RESULTS, database=fresh_schema).execute()
        assert set(results.run_id) == {summary_again.outcomes[0].run_id}
        compare(results, model_results(data, DRIFTED))
        assert RESULTS not in con.list_tables(database=source_schema)
    finally:
        con.drop_database(source_schema, force=True, cascade=True)


# -- helpers ---------------------------------------------------------------------------------------


def _run_row(run_id: str, status: str) -> dict:
    return {
        "run_id": run_id, "monitor": "m", "window_start": WINDOW.start, "window_end": WINDOW.end,
        "started_at": datetime(2026, 3, 2, 1), "finished_at": datetime(2026, 3, 2, 1, 5), "status": status,
        "error": None, "rows_current": 10, "rows_reference": 20, "driftline_version": "0.1.0",
    }


def _record(store: ResultStore, label: str) -> WindowRecord:
    """A window's rows as the runner makes them, its run already marked running."""
    run = _run_row(f"run_{label}_{uuid.uuid4().hex[:6]}", "running")
    store.mark_running(dict(run))
    run["status"] = "success"
    result = {
        "run_id": run["run_id"], "monitor": "m", "check_name": "drift_psi", "check_type": "drift", "metric": "psi",
        "column_name": "x", "segment_key": None, "segment_value": None, "window_start": WINDOW.start,
        "window_end": WINDOW.end, "value": 0.2, "p_value": None, "status": "warn", "warn_threshold": "0.1",
        "fail_threshold": "0.25", "n_current": 10, "n_reference": 20, "details": None,
        "created_at": WINDOW.end + timedelta(hours=1),
    }
    histogram = {
        "run_id": run["run_id"], "monitor": "m", "column_name": "x", "segment_key": None, "segment_value": None,
        "bin_index": 0, "bin_label": "[-inf, +inf)", "lower": None, "upper": None,
        "reference_count": 20, "current_count": 10,
    }
    return WindowRecord(run, [result], [histogram])


def _evaluate(store: ResultStore, label: str) -> WindowRecord:
    record = _record(store, label)
    store.replace_window(record)
    return record
