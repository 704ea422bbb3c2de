"""The drift engine end to end on PostgreSQL: the DuckDB scenario of ``test_drift_engine`` (same
data, same monitors), with the values read back from PostgreSQL compared with the same numpy/scipy
model, so a PostgreSQL run equals a DuckDB run.

The source table and the result tables live in a schema made for the test and dropped after it.
Needs DRIFTLINE_TEST_POSTGRES_URL (see conftest.py).
"""

from __future__ import annotations

import uuid

import ibis
import pytest
from drift_model import (
    DAY, DRIFTED, EMPTY, MAIN, ONE_ROW, SINGLE, arrow_table, compare, compare_histograms, generate_rows, model_results,
)

from driftline import api

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def postgres_project(postgres_url, make_module_project):
    schema = f"driftline_test_{uuid.uuid4().hex[:10]}"
    con = ibis.connect(postgres_url)
    con.create_database(schema)
    try:
        data = generate_rows()
        con.create_table("events", arrow_table(data), database=schema)
        monitors = {name: text.replace("table: events", f"table: {schema}.events") for name, text in (("main", MAIN), ("single", SINGLE))}
        project = make_module_project(monitors=monitors, settings={"connection": postgres_url, "results": {"schema": schema}})
        summary = api.backfill(DRIFTED, ONE_ROW + DAY, project.root, at=ONE_ROW + 2 * DAY)
        yield con, schema, data, summary
    finally:
        con.drop_database(schema, force=True, cascade=True)
        con.disconnect()


def read(con, sql: str):
    return con.sql(sql).execute()


def run_of(summary, start, monitor="main"):
    (outcome,) = [o for o in summary.outcomes if o.window.start == start and o.monitor == monitor]
    assert outcome.status == "success", outcome.error
    return outcome.run_id


def test_drift_values_equal_the_model(postgres_project):
    con, schema, data, summary = postgres_project
    frame = read(con, f"select * from {schema}.driftline_results where run_id = '{run_of(summary, DRIFTED)}'")
    compare(frame, model_results(data, DRIFTED))


def test_histograms_equal_the_model(postgres_project):
    con, schema, data, summary = postgres_project
    stored = read(con, f"select * from {schema}.driftline_histograms where run_id = '{run_of(summary, DRIFTED)}'")
    compare_histograms(stored, data, DRIFTED)


def test_empty_and_one_row_windows(postgres_project):
    con, schema, data, summary = postgres_project
    empty = read(con, f"select status from {schema}.driftline_results where run_id = '{run_of(summary, EMPTY)}'")
    assert set(empty.status) == {"insufficient_data"}
    from drift_model import CheckSpec

    checks = {"drift_psi": CheckSpec("psi", ("x", "cat"), warn=0.1, fail=0.25), "drift_chi2": CheckSpec("chi2", ("x", "cat")),
              "drift_ks": CheckSpec("ks", ("x",))}
    frame = read(con, f"select * from {schema}.driftline_results where run_id = '{run_of(summary, ONE_ROW, 'single')}'")
    compare(frame, model_results(data, ONE_ROW, checks=checks, min_rows=1))


def test_results_stay_in_their_schema_and_the_profile_is_cached(postgres_project):
    con, schema, data, summary = postgres_project
    tables = set(con.list_tables(database=schema))
    assert {"driftline_runs", "driftline_results", "driftline_histograms", "driftline_alerts", "driftline_profiles", "events"} <= tables
    assert read(con, f"select count(*) as n from {schema}.driftline_profiles").n.tolist() == [2]
    runs = read(con, f"select monitor, status, count(*) as n from {schema}.driftline_runs group by 1, 2 order by 1")
    assert runs.to_dict("records") == [{"monitor": "main", "status": "success", "n": 3}, {"monitor": "single", "status": "success", "n": 3}]
    main = [o.queries for o in summary.outcomes if o.monitor == "main"]
    assert main[1:] == [main[1]] * 2 and main[0] - main[1] == 2  # edges and categories, once
