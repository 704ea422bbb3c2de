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
RANKS = {"fail": 4, "error": 3, "warn": 2, "insufficient_data": 1, "ok": 0}  # SPEC §5
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
    waiting = results.reason == "labels_not_mature"
    assert waiting.any()  # the fixture's newest windows wait for their labels
    expected = (
        results.assign(ready=~waiting)
        .sort_values(["ready", "window_end", "created_at"])
        .groupby(SERIES, dropna=False, sort=False)
        .tail(1)
    )
    latest = _view(con, database, LATEST)

    earlier = [c for c in TABLES[RESULTS].names if c != "std_error"]  # added after severity_rank
    assert list(latest.columns) == [*earlier, "severity_rank", "std_error"]
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
                   "band_upper", "reference_value", "warn_lower", "warn_upper", "fail_lower",
                   "fail_upper"):  # fmt: skip
        np.testing.assert_allclose(
            view[column].to_numpy(float), expected[column].to_numpy(float), rtol=1e-9,
            err_msg=column,
        )  # fmt: skip
    # The fixture covers every threshold form: plain, above/below, drop/rise and outside.
    assert view.warn_threshold_value.notna().any() and view.band_lower.notna().any()
    assert view.fail_threshold.str.contains("outside").any()
    assert _keys(view, [*order, "reason"]) == _keys(expected, [*order, "reason"])
    assert list(view.severity_rank) == [RANKS[s] for s in view.status]


def test_check_history_columns_only_grew_at_the_end(warehouse):
    """PostgreSQL replaces a view only when its existing columns keep their place."""
    con, database, _ = warehouse
    first = [
        "run_id", "monitor", "check_name", "check_type", "metric", "column_name", "segment_key",
        "segment_value", "window_start", "window_end", "value", "p_value", "status",
        "warn_threshold", "fail_threshold", "warn_threshold_value", "fail_threshold_value",
        "band_lower", "band_upper", "reference_value", "n_current", "n_reference", "created_at",
    ]  # fmt: skip
    columns = list(con.table(CHECK_HISTORY, database=database).columns)
    assert columns[: len(first)] == first
    assert columns[len(first):] == ["warn_lower", "warn_upper", "fail_lower", "fail_upper", "reason", "severity_rank", "std_error"]


@pytest.mark.parametrize("view", [LATEST, CHECK_HISTORY, OPEN_ALERTS])
def test_ordering_by_severity_rank_lists_fails_first(warehouse, view):
    con, database, frames = warehouse
    table = con.table(view, database=database)
    status = "severity" if view == OPEN_ALERTS else "status"
    ranked = table.order_by([ibis.desc("severity_rank"), "monitor"]).select(status, "severity_rank").to_pandas()
    order = ["fail", "error", "warn", "insufficient_data", "ok"]
    present = [s for s in order if s in set(ranked[status])]
    assert present[0] == "fail" and (view == OPEN_ALERTS or "ok" in present)
    # statuses come in order, each in one block
    assert list(dict.fromkeys(ranked[status])) == present
    assert ranked.severity_rank.tolist() == [RANKS[s] for s in ranked[status]]


def test_views_and_their_columns_carry_comments(warehouse):
    con, database, _ = warehouse
    for view in VIEWS:
        about_view, about_columns = _comments(con, database, view)
        assert about_view, view
        assert about_columns["severity_rank"].startswith("fail 4"), view
    _, history = _comments(con, database, CHECK_HISTORY)
    assert "anomaly band" in history["fail_upper"] and "labels_not_mature" in history["reason"]


def _comments(con, database, view: str) -> tuple[str | None, dict[str, str]]:
    """The comment of ``view`` and of its columns, as the backend's catalog keeps them."""
    if con.name == "duckdb":
        about_view = con.raw_sql(
            f"select comment from duckdb_views() where view_name = '{view}'"
        ).fetchone()[0]
        rows = con.raw_sql(
            f"select column_name, comment from duckdb_columns() where table_name = '{view}'"
        ).fetchall()
    else:
        name = f'"{database}"."{view}"'
        about_view = con.raw_sql(f"select obj_description('{name}'::regclass)").fetchone()[0]
        rows = con.raw_sql(
            f"select attname, col_description('{name}'::regclass, attnum) from pg_attribute "
            f"where attrelid = '{name}'::regclass and attnum > 0"
        ).fetchall()
    return about_view, {column: comment for column, comment in rows if comment}


def _sorted(frame: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    keys = frame[order].astype(str)
    return frame.loc[keys.sort_values(order).index].reset_index(drop=True)


def _expected_history(results: pd.DataFrame) -> pd.DataFrame:
    """The numeric columns, parsed in Python: JSON with json, thresholds as the YAML they are."""
    details = [json.loads(d) if isinstance(d, str) else {} for d in results.details]
    reference = pd.Series([d.get("reference_value") for d in details], dtype=float)
    band = [d.get("band") or {} for d in details]
    band_lower = pd.Series([b.get("lower") for b in band], dtype=float)
    band_upper = pd.Series([b.get("upper") for b in band], dtype=float)
    warn = [_bounds(t, r) for t, r in zip(results.warn_threshold, reference)]
    fail = [_bounds(t, r) for t, r in zip(results.fail_threshold, reference)]
    return results.reset_index(drop=True).assign(
        reference_value=reference,
        band_lower=band_lower,
        band_upper=band_upper,
        warn_threshold_value=[
            _threshold_line(t, r) for t, r in zip(results.warn_threshold, reference)
        ],
        fail_threshold_value=[
            np.nan if np.isfinite(b) else _threshold_line(t, r)  # a band makes it two-sided
            for t, r, b in zip(results.fail_threshold, reference, band_lower)
        ],
        warn_lower=[lower for lower, _ in warn],
        warn_upper=[upper for _, upper in warn],
        # a value outside the band fails: the fail bounds are the narrower of the two
        fail_lower=np.fmax([lower for lower, _ in fail], band_lower),
        fail_upper=np.fmin([upper for _, upper in fail], band_upper),
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


def _bounds(text, reference: float) -> tuple[float, float]:
    """(lower, upper) of a threshold; the fixture's plain numbers are all on metrics where
    higher is worse (drift distances, equal opportunity difference)."""
    if not isinstance(text, str):
        return np.nan, np.nan
    rule = yaml.safe_load(text)
    if isinstance(rule, (int, float)):
        rule = {"above": rule}
    (kind, amount), *_ = rule.items()
    return {
        "above": lambda: (np.nan, amount),
        "below": lambda: (amount, np.nan),
        "outside": lambda: (amount[0], amount[1]),
        "drop": lambda: (reference - amount, np.nan),
        "rise": lambda: (np.nan, reference + amount),
    }[kind]()
