"""The driftline views, on DuckDB and PostgreSQL, checked against pandas on the same rows.

PostgreSQL runs when DRIFTLINE_TEST_POSTGRES_URL is set (e.g.
postgres://postgres@127.0.0.1:5432/test); the tables go into a fresh schema dropped afterwards.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import ibis
import numpy as np
import pandas as pd
import pytest
import yaml
from report_fixture import fill_result_tables

from driftline.result_schema import RESULTS, TABLES
from driftline.views import CHECK_HISTORY, LATEST, OPEN_ALERTS, VIEWS, create_views

SERIES = ["monitor", "check_name", "column_name", "segment_key", "segment_value"]
DAYS = 40  # enough for open and resolved alerts, anomaly bands and pending labels


@pytest.fixture(
    scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def warehouse(request):
    """(connection, database, frames written) with the views created next to the tables."""
    if request.param == "duckdb":
        con, database = ibis.duckdb.connect(), None
    else:  # the conftest fixture skips, saying why, when no PostgreSQL URL is configured
        con = ibis.connect(request.getfixturevalue("postgres_url"))
        database = f"driftline_test_{uuid.uuid4().hex[:10]}"
        con.create_database(database)
    try:
        frames = fill_result_tables(con, database, days=DAYS)
        frames[RESULTS] = _with_rerun_rows(con, database, frames[RESULTS])
        create_views(con, database)
        create_views(con, database)  # replacing existing views works too
        yield con, database, frames
    finally:
        if database is not None:
            con.drop_database(database, force=True, cascade=True)
        con.disconnect()


def _with_rerun_rows(con, database, results: pd.DataFrame) -> pd.DataFrame:
    """Add later copies of a few latest rows (same window, newer created_at, other value), so
    the latest view has to break ties on created_at."""
    last = results[results.window_end == results.window_end.max()].head(5).copy()
    last["created_at"] = last.created_at + timedelta(hours=1)
    last["value"] = -1.0
    con.insert(RESULTS, ibis.memtable(last, schema=TABLES[RESULTS]), database=database)
    return pd.concat([results, last], ignore_index=True)


def _view(con, database, name: str) -> pd.DataFrame:
    return con.table(name, database=database).to_pandas()


def _keys(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    """Rows as sortable tuples, nulls as None."""
    values = frame[columns].astype(object).where(frame[columns].notna(), None)
    return sorted(map(tuple, values.itertuples(index=False)), key=repr)


def test_views_are_created_next_to_the_tables(warehouse):
    con, database, _ = warehouse
    assert set(VIEWS) <= set(con.list_tables(database=database))


def test_latest_is_the_newest_row_per_series_that_is_not_waiting_for_labels(warehouse):
    con, database, frames = warehouse
    results = frames[RESULTS]
    waiting = results.details.fillna("").str.contains("labels not mature")
    assert waiting.any()  # the fixture's newest windows wait for their labels
    expected = (
        results.assign(ready=~waiting)
        .sort_values(["ready", "window_end", "created_at"])
        .groupby(SERIES, dropna=False, sort=False)
        .tail(1)
    )
    latest = _view(con, database, LATEST)

    assert list(latest.columns) == list(TABLES[RESULTS].names)
    assert _keys(latest, [*SERIES, "run_id", "created_at"]) == _keys(
        expected, [*SERIES, "run_id", "created_at"]
    )
    # The re-run rows (value -1) won their ties, and overall rows (null segment) are there.
    assert (latest.value == -1.0).sum() == 5
    assert latest.segment_key.isna().sum() == expected.segment_key.isna().sum() > 0


def test_open_alerts_are_the_open_episodes(warehouse):
    con, database, frames = warehouse
    alerts = frames["driftline_alerts"]
    view = _view(con, database, OPEN_ALERTS)

    assert sorted(view.alert_id) == sorted(alerts.alert_id[alerts.state == "open"])
    assert len(view) > 0 and (view.state == "open").all()


def test_check_history_parses_thresholds_bands_and_reference(warehouse):
    con, database, frames = warehouse
    results = frames[RESULTS]
    view = _view(con, database, CHECK_HISTORY)
    order = [*SERIES, "window_start", "created_at"]
    view = _sorted(view, order)
    expected = _sorted(_expected_history(results), order)

    assert len(view) == len(expected)
    assert _keys(view, order) == _keys(expected, order)
    for column in ("value", "warn_threshold_value", "fail_threshold_value", "band_lower",
                   "band_upper", "reference_value"):  # fmt: skip
        np.testing.assert_allclose(
            view[column].to_numpy(float), expected[column].to_numpy(float), rtol=1e-9,
            err_msg=column,
        )  # fmt: skip
    # The fixture covers every threshold form: plain, above/below, drop/rise and outside.
    assert view.warn_threshold_value.notna().any() and view.band_lower.notna().any()
    assert view.fail_threshold.str.contains("outside").any()


def _sorted(frame: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    keys = frame[order].astype(str)
    return frame.loc[keys.sort_values(order).index].reset_index(drop=True)


def _expected_history(results: pd.DataFrame) -> pd.DataFrame:
    """The numeric columns, parsed in Python: JSON with json, thresholds as the YAML they are."""
    details = [json.loads(d) if isinstance(d, str) else {} for d in results.details]
    reference = pd.Series([d.get("reference_value") for d in details], dtype=float)
    band = [d.get("band") or {} for d in details]
    return results.reset_index(drop=True).assign(
        reference_value=reference,
        band_lower=pd.Series([b.get("lower") for b in band], dtype=float),
        band_upper=pd.Series([b.get("upper") for b in band], dtype=float),
        warn_threshold_value=[
            _threshold_line(t, r) for t, r in zip(results.warn_threshold, reference)
        ],
        fail_threshold_value=[
            _threshold_line(t, r) for t, r in zip(results.fail_threshold, reference)
        ],
    )


def _threshold_line(text, reference: float) -> float:
    if not isinstance(text, str):
        return np.nan
    rule = yaml.safe_load(text)
    if isinstance(rule, (int, float)):
        return float(rule)
    (kind, amount), *_ = rule.items()
    return {
        "above": lambda: amount,
        "below": lambda: amount,
        "drop": lambda: reference - amount,
        "rise": lambda: reference + amount,
    }.get(kind, lambda: np.nan)()
