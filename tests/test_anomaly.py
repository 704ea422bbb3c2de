"""Anomaly bands: computed in the warehouse from stored history, checked against numpy.

The histories are synthetic (a weekly rhythm, noise, injected spikes) and are judged window by
window exactly as a run does: judge the window against the stored history, then store it. A plain
numpy re-implementation of the baseline rules replays the same sequence and must agree on every
band and every status.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import ibis
import numpy as np
import pandas as pd
import pytest

from driftline import api
from driftline.anomaly import apply_anomaly_bands, baseline_query, combined_status
from driftline.dialects import to_sql
from driftline.result_schema import RESULTS
from driftline.spec.models import Anomaly, Monitor
from driftline.store import ResultStore, WindowRecord
from driftline.windows import Window

DAY = timedelta(days=1)
START = datetime(2026, 1, 5)  # a Monday


# -- building blocks ----------------------------------------------------------------------------


def a_monitor(checks: dict[str, dict]) -> Monitor:
    """A monitor whose metric checks have the given ``anomaly:`` settings (and thresholds)."""
    return Monitor.model_validate({
        "name": "m",
        "source": {"table": "t", "timestamp": "ts"},
        "schedule": {"every": "1d"},
        "reference": {"trailing": "7d"},
        "checks": [{"metric": {"name": name, "sql": "avg(x)", **options}} for name, options in checks.items()],
    })


def a_result(window: Window, check: str, value: float | None, segment=(None, None), status="ok", fail=None) -> dict:
    return {
        "run_id": None, "monitor": "m", "check_name": check, "check_type": "metric", "metric": check,
        "column_name": None, "segment_key": segment[0], "segment_value": segment[1],
        "window_start": window.start, "window_end": window.end, "value": value, "p_value": None,
        "status": status, "warn_threshold": None, "fail_threshold": fail, "n_current": 100,
        "n_reference": None, "details": json.dumps({"reference_value": 1.0}), "created_at": window.end,
    }


def store_window(store: ResultStore, window: Window, rows: list[dict]) -> None:
    run_id = uuid.uuid4().hex
    for row in rows:
        row["run_id"] = run_id
    run = {
        "run_id": run_id, "monitor": "m", "window_start": window.start, "window_end": window.end,
        "started_at": window.end, "finished_at": window.end, "status": "success", "error": None,
        "rows_current": 100, "rows_reference": 100, "driftline_version": "test",
    }
    store.replace_window(WindowRecord(run, rows, []))


@pytest.fixture
def store():
    con = ibis.duckdb.connect()
    result_store = ResultStore(con)
    result_store.ensure_tables()
    yield result_store
    con.disconnect()


def band(row: dict) -> dict:
    return json.loads(row["details"])["band"]


# -- the numpy reference ------------------------------------------------------------------------


def season(moment: datetime, seasonality: str):
    return {"day_of_week": moment.weekday(), "hour_of_day": moment.hour}.get(seasonality)


def numpy_band(history: list[tuple[Window, float, bool]], window: Window, a: Anomaly) -> dict | None:
    """The band over ``history`` (window, value, anomalous), or None with too few points."""
    earlier = [
        value for w, value, anomalous in sorted(history, key=lambda h: h[0].end)
        if w.end <= window.start and not anomalous and season(w.start, a.seasonality) == season(window.start, a.seasonality)
    ]
    points = np.asarray(earlier[-a.history:], dtype="float64")
    if len(points) < a.min_history:
        return None
    if a.method == "zscore":
        center, scale = points.mean(), points.std(ddof=1)
    else:
        center = np.median(points)
        deviations = np.abs(points - center)
        scale = 1.4826 * np.median(deviations) or 1.2533 * deviations.mean()
    return {"center": center, "lower": center - a.sensitivity * scale, "upper": center + a.sensitivity * scale, "points": len(points)}


def numpy_status(value: float, expected: dict | None, a: Anomaly) -> str:
    if expected is None:
        return "insufficient_data"
    above, below = value > expected["upper"], value < expected["lower"]
    outside = {"up": above, "down": below}.get(a.direction, above or below)
    return "fail" if outside else "ok"


def replay(store: ResultStore, monitor: Monitor, series: dict[tuple, list[float]], windows: list[Window]):
    """Judge and store every window in order; compare each row with numpy as it goes."""
    anomalies = {check.name: check.anomaly for check in monitor.checks}
    history: dict[tuple, list] = {key: [] for key in series}
    statuses: dict[tuple, list[str]] = {key: [] for key in series}
    for i, window in enumerate(windows):
        rows = [a_result(window, check, values[i], segment) for (check, segment), values in series.items()]
        apply_anomaly_bands(store, monitor, window, rows)
        for row, ((check, segment), values) in zip(rows, series.items()):
            a = anomalies[check]
            expected = numpy_band(history[(check, segment)], window, a)
            status = numpy_status(values[i], expected, a)
            assert row["status"] == status, (check, segment, window)
            if expected is None:
                assert band(row)["points"] < a.min_history
            else:
                got = band(row)
                assert got["points"] == expected["points"]
                for key in ("center", "lower", "upper"):
                    assert got[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), (key, check, window)
            history[(check, segment)].append((window, values[i], status == "fail"))
            statuses[(check, segment)].append(status)
        store_window(store, window, rows)
    return statuses


def weekly_series(rng: np.random.Generator, days: int, spikes: dict[int, float]) -> list[float]:
    """About 100 on working days, 40 at weekends, noise of 3 %, and the given spikes (day: factor)."""
    values = []
    for day in range(days):
        level = 40.0 if (START + day * DAY).weekday() >= 5 else 100.0
        value = level * (1 + 0.03 * rng.standard_normal())
        values.append(value * spikes.get(day, 1.0))
    return values


# -- bands against numpy ------------------------------------------------------------------------


def test_bands_match_numpy_with_weekly_seasonality_and_spikes(store):
    monitor = a_monitor({
        "weekly_mad": {"anomaly": {"method": "mad", "sensitivity": 5, "history": 4, "min_history": 3, "seasonality": "day_of_week"}},
        "flat_zscore": {"anomaly": {"method": "zscore", "sensitivity": 3, "history": 14, "min_history": 7}},
        "drops_only": {"anomaly": {"method": "zscore", "sensitivity": 3, "history": 10, "min_history": 3, "seasonality": "day_of_week", "direction": "down"}},
    })
    rng = np.random.default_rng(42)
    days = 35
    spikes = {23: 3.0, 30: 2.5, 32: 0.3}  # two Wednesdays up, a Friday down
    series = {
        ("weekly_mad", (None, None)): weekly_series(rng, days, spikes),
        ("weekly_mad", ("region", "eu")): weekly_series(rng, days, {}),
        ("flat_zscore", (None, None)): weekly_series(rng, days, spikes),
        # Rises are no anomaly here, so they stay in the baseline: this series only drops.
        ("drops_only", (None, None)): weekly_series(rng, days, {32: 0.3}),
        ("drops_only", ("region", "eu")): weekly_series(rng, days, {}),
    }
    windows = [Window(START + d * DAY, START + (d + 1) * DAY) for d in range(days)]

    statuses = replay(store, monitor, series, windows)

    weekly = statuses[("weekly_mad", (None, None))]
    assert weekly[:21] == ["insufficient_data"] * 21  # three of each weekday first
    assert weekly[23] == weekly[30] == weekly[32] == "fail"
    assert statuses[("flat_zscore", (None, None))][23] == "fail"
    assert statuses[("drops_only", (None, None))][32] == "fail"


def test_anomalous_windows_stay_out_of_later_baselines(store):
    monitor = a_monitor({"c": {"anomaly": {"method": "mad", "history": 10, "min_history": 5}}})
    values = [10.0, 11.0, 9.0, 10.5, 9.5, 50.0, 10.2, 9.8]
    windows = [Window(START + d * DAY, START + (d + 1) * DAY) for d in range(len(values))]

    statuses = replay(store, monitor, {("c", (None, None)): values}, windows)

    assert statuses[("c", (None, None))][5] == "fail"
    stored = store.table(RESULTS).execute().sort_values("window_start")
    assert '"anomalous": true' in stored.details.iloc[5]
    last = json.loads(stored.details.iloc[-1])["band"]
    assert last["points"] == 6  # eight windows, minus the current one and the spike


def test_hourly_windows_compare_the_same_hour_of_day(store):
    """Five days of hourly history stored at once; three hours of the sixth day judged."""
    anomaly = {"method": "zscore", "history": 5, "min_history": 3, "seasonality": "hour_of_day"}
    monitor = a_monitor({"c": {"anomaly": anomaly}})
    hour = timedelta(hours=1)
    level = lambda h: 100.0 + 50.0 * (h % 24 >= 12) + (h * 7) % 5  # noqa: E731 - busy afternoons
    history = [(Window(START + h * hour, START + (h + 1) * hour), level(h), False) for h in range(24 * 5)]
    store_window(store, history[0][0], [a_result(w, "c", v) for w, v, _ in history])

    for h, value in ((24 * 5 + 13, 400.0), (24 * 5 + 13, level(24 * 5 + 13)), (24 * 5 + 1, 160.0), (24 * 5 + 1, level(1))):
        window = Window(START + h * hour, START + (h + 1) * hour)
        [row] = apply_anomaly_bands(store, monitor, window, [a_result(window, "c", value)])
        expected = numpy_band(history, window, Anomaly(**anomaly))
        assert band(row)["center"] == pytest.approx(expected["center"], rel=1e-9)
        assert band(row)["upper"] == pytest.approx(expected["upper"], rel=1e-9)
        assert row["status"] == numpy_status(value, expected, Anomaly(**anomaly))
        # 160 is an ordinary afternoon but not an ordinary 1 a.m.
        assert row["status"] == ("fail" if value in (400.0, 160.0) else "ok")


def test_a_mostly_constant_history_falls_back_to_the_mean_deviation(store):
    """Over half the baseline equal: the MAD is 0, so the band's width comes from the mean
    absolute deviation; a truly constant baseline keeps a zero-wide band its value fits in."""
    monitor = a_monitor({"c": {"anomaly": {"method": "mad", "history": 10, "min_history": 5}}})
    series = {
        ("c", (None, None)): [0.0, 0.0, 0.0, 1.0, 0.0, 0.5, 1.0, 0.0],
        ("c", ("region", "eu")): [0.1] * 7 + [0.2],
    }
    windows = [Window(START + d * DAY, START + (d + 1) * DAY) for d in range(8)]

    statuses = replay(store, monitor, series, windows)

    assert statuses[("c", (None, None))][5:] == ["ok", "fail", "ok"]
    assert statuses[("c", ("region", "eu"))][5:] == ["ok", "ok", "fail"]


# -- combining with static thresholds -----------------------------------------------------------


@pytest.mark.parametrize(
    ("static", "anomaly", "combined"),
    [
        ("ok", "ok", "ok"),
        ("ok", "fail", "fail"),
        ("warn", "fail", "fail"),
        ("warn", "ok", "warn"),
        ("ok", "insufficient_data", "insufficient_data"),
        ("warn", "insufficient_data", "warn"),
        ("fail", "insufficient_data", "fail"),
        ("insufficient_data", "ok", "insufficient_data"),
    ],
)
def test_the_worst_verdict_wins(static, anomaly, combined):
    assert combined_status(static, anomaly) == combined


def test_direction_up_ignores_drops(store):
    monitor = a_monitor({"c": {"anomaly": {"method": "zscore", "history": 5, "min_history": 3, "direction": "up"}}})
    history = [(Window(START + d * DAY, START + (d + 1) * DAY), v, False) for d, v in enumerate([10.0, 11.0, 9.0, 10.0])]
    store_window(store, history[0][0], [a_result(w, "c", v) for w, v, _ in history])
    window = Window(START + 4 * DAY, START + 5 * DAY)

    rows = apply_anomaly_bands(store, monitor, window, [a_result(window, "c", 0.0), a_result(window, "c", 20.0, ("region", "eu"))])

    assert rows[0]["status"] == "ok"  # far below, but only rises count
    assert rows[1]["status"] == "insufficient_data"  # the segment has no history of its own


def test_a_static_breach_is_kept_without_history(store):
    monitor = a_monitor({"c": {"fail": {"above": 5}, "anomaly": {"min_history": 3}}})
    window = Window(START, START + DAY)
    rows = [a_result(window, "c", 9.0, status="fail", fail="{above: 5}"), a_result(window, "c", 1.0, ("region", "eu"))]

    apply_anomaly_bands(store, monitor, window, rows)

    assert [r["status"] for r in rows] == ["fail", "insufficient_data"]
    assert band(rows[0]) == {"points": 0, "min_history": 3}
    assert json.loads(rows[0]["details"])["reference_value"] == 1.0  # other details are kept


def test_checks_without_anomaly_run_no_query(store):
    monitor = a_monitor({"c": {"fail": 5}})
    window = Window(START, START + DAY)
    rows = [a_result(window, "c", 9.0, status="fail")]
    store.table = None  # any read of the history would fail

    assert apply_anomaly_bands(store, monitor, window, rows)[0]["status"] == "fail"


# -- the query ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "snowflake", "databricks", "clickhouse", "pyspark"])
def test_one_baseline_query_compiles_for(dialect):
    from driftline.result_schema import TABLES

    results = ibis.table(TABLES[RESULTS], name=RESULTS)
    checks = {
        "a": Anomaly(method="mad", seasonality="day_of_week"),
        "b": Anomaly(method="zscore", seasonality="hour_of_day", history=5),
    }
    sql = to_sql(baseline_query(results, "m", checks, Window(START, START + DAY), dialect), dialect)
    assert sql.upper().count("SELECT") >= 3  # one statement: ranking, medians, deviations


def test_bands_on_postgres_match_duckdb(postgres_url):
    con = ibis.connect(postgres_url)
    schema = f"driftline_anomaly_{uuid.uuid4().hex[:8]}"
    try:
        store = ResultStore(con, schema)
        store.ensure_tables()
        monitor = a_monitor({"c": {"anomaly": {"method": "mad", "history": 8, "min_history": 2, "seasonality": "day_of_week"}}})
        rng = np.random.default_rng(7)
        values = weekly_series(rng, 28, {23: 2.0})
        windows = [Window(START + d * DAY, START + (d + 1) * DAY) for d in range(len(values))]
        statuses = replay(store, monitor, {("c", ("region", "eu")): values}, windows)
        assert statuses[("c", ("region", "eu"))][23] == "fail"
    finally:
        con.raw_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        con.disconnect()


# -- through a run ------------------------------------------------------------------------------


def test_a_backfill_judges_drift_values_against_their_history(make_project):
    """The runner calls the bands after the static thresholds; the stored band is numpy's."""
    rng = np.random.default_rng(3)
    frames = []
    for day in range(22):
        shift = 2.0 if day == 18 else 0.0
        start = pd.Timestamp(START + day * DAY)
        seconds = rng.integers(0, 86400, 400)
        frames.append(pd.DataFrame({
            "ts": start + pd.to_timedelta(seconds, unit="s"),
            "x": rng.normal(shift, 1, 400),
        }))
    project = make_project(
        monitors={"m": """
            name: m
            source: {table: events, timestamp: ts}
            schedule: {every: 1d}
            reference: {start: 2026-01-05, end: 2026-01-12}
            features: {numeric: [x]}
            min_rows: 50
            checks:
              - drift: {columns: [x], method: psi, anomaly: {method: mad, history: 10, min_history: 5}}
        """},
        tables={"events": pd.concat(frames)},
    )

    api.backfill("2026-01-12", "2026-01-27", project=project.root, at="2026-03-01")

    rows = project.query("select window_start, value, status, details from driftline_results order by window_start")
    anomaly = Anomaly(method="mad", history=10, min_history=5)
    history = []
    for row in rows.itertuples():
        window = Window(row.window_start.to_pydatetime(), row.window_start.to_pydatetime() + DAY)
        expected = numpy_band(history, window, anomaly)
        assert row.status == numpy_status(row.value, expected, anomaly)
        if expected is not None:
            assert json.loads(row.details)["band"]["upper"] == pytest.approx(expected["upper"], rel=1e-9)
        history.append((window, row.value, row.status == "fail"))
    assert rows.status.iloc[11] == "fail"  # the shifted day, 2026-01-23
    assert (rows.status.iloc[:5] == "insufficient_data").all()

