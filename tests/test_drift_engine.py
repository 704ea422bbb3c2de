"""The drift engine end to end on DuckDB: ``driftline.api.backfill``/``run`` over generated data,
with every value read back from the result tables and compared with the numpy/scipy model of
SPEC §6 in ``drift_model.py``, computed from the raw rows.

The data has nulls, NaN and ±infinity, values rounded so that many fall exactly on bin edges, an
integer column with ties, a constant column, more categories than ``max_categories`` with tied
counts, unseen categories, and a segment column with a tiny segment and null values. Three
windows follow the fixed reference week: a drifted day, an empty day and a day with one row.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from drift_model import (
    small_monitor,
    DAY, DRIFTED, EMPTY, EPS, MAIN, NULL_SEGMENT, ONE_ROW, REFERENCE, SINGLE, CheckSpec, arrow_table,
    compare, compare_histograms, generate_rows, model_results, numeric_counts, numeric_edges, stored_edges,
)

from driftline import api
from driftline.reporting import data as report_data
from driftline.plan.monitor import MonitorPlan

# -- the DuckDB run, shared by the tests below --------------------------------------------------


@dataclass
class Backfilled:
    project: object
    data: dict[str, list]
    summary: api.RunSummary
    counted_windows: list[list[str]]  # per counting query: the windows it read

    def outcome(self, start: datetime, monitor: str = "main"):
        (found,) = [o for o in self.summary.outcomes if o.window.start == start and o.monitor == monitor]
        return found

    def results(self, start: datetime, monitor: str = "main"):
        run_id = self.outcome(start, monitor).run_id
        return self.project.query(f"select * from driftline_results where run_id = '{run_id}'")

    def edges(self, monitor: str = "main"):
        """The quantile edges DuckDB chose (approximate), read back from the stored profile."""
        return stored_edges(self.project.query(f"select profile from driftline_profiles where monitor = '{monitor}'"))


@pytest.fixture(scope="module")
def backfilled(make_module_project) -> Backfilled:
    data = generate_rows()
    project = make_module_project(monitors={"main": MAIN, "single": SINGLE}, tables={"events": arrow_table(data)})
    counted: list[list[str]] = []
    counts_query = MonitorPlan.counts_query

    def spy(plan, windows, bins):
        counted.append(sorted(windows))
        return counts_query(plan, windows, bins)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MonitorPlan, "counts_query", spy)
        summary = api.backfill(DRIFTED, ONE_ROW + DAY, project.root, at=ONE_ROW + 2 * DAY)
    assert [o.error for o in summary.outcomes if o.status != "success"] == []
    return Backfilled(project, data, summary, counted)


def test_drift_values_match_numpy_and_scipy(backfilled):
    expected = model_results(backfilled.data, DRIFTED, edges=backfilled.edges())
    compare(backfilled.results(DRIFTED), expected)
    # the scenario covers what it claims to
    statuses = Counter(e.status for e in expected.values())
    assert {"ok", "warn", "fail", "insufficient_data"} <= set(statuses)
    assert expected[("drift_psi", "x", "region", "tiny")].status == "insufficient_data"
    assert expected[("drift_psi", "x", "region", NULL_SEGMENT)].value is not None


def test_every_result_row_is_described(backfilled):
    frame = backfilled.results(DRIFTED)
    assert set(frame.check_type) == {"drift"}
    assert set(frame.monitor) == {"main"}
    assert (frame.window_start == DRIFTED).all() and (frame.window_end == DRIFTED + DAY).all()
    assert set(frame.metric) == {"psi", "kl", "js", "hellinger", "tvd", "linf", "chi2", "ks", "wasserstein"}
    psi = frame[frame.check_name == "drift_psi"]
    assert set(psi.warn_threshold) == {"0.1"} and set(psi.fail_threshold) == {"0.25"}  # SPEC §6 defaults
    js = frame[frame.check_name == "drift_js"]
    assert set(js.warn_threshold) == {"{outside: [0, 0.05]}"} and js.fail_threshold.isna().all()
    overall = frame[frame.segment_key.isna()]
    assert overall.segment_value.isna().all()
    tiny = frame[frame.segment_value == "tiny"]
    assert tiny.value.isna().all() and (tiny.status == "insufficient_data").all()


def test_histogram_rows_are_numpys_counts(backfilled):
    run_id = backfilled.outcome(DRIFTED).run_id
    stored = backfilled.project.query(f"select * from driftline_histograms where run_id = '{run_id}'")
    compare_histograms(stored, backfilled.data, DRIFTED, edges=backfilled.edges())


def test_categorical_bins_keep_the_top_categories_ties_by_value(backfilled):
    run_id = backfilled.outcome(DRIFTED).run_id
    labels = backfilled.project.query(
        f"select bin_label from driftline_histograms where run_id = '{run_id}' and column_name = 'cat' "
        "and segment_key is null order by bin_index"
    ).bin_label.tolist()
    assert labels == ["zulu", "mike", "alpha", "echo", "kilo", "__other__"]  # tango ties with them and loses


def test_constant_column_has_no_drift(backfilled):
    frame = backfilled.results(DRIFTED)
    const = frame[(frame.column_name == "const") & frame.value.notna()]
    chi2 = const.metric == "chi2"
    assert len(const[~chi2]) > 0 and np.allclose(const[~chi2].value, 0.0, atol=1e-12)
    # the empty bin below the constant still expects N·eps rows: X² = N·eps, so w = sqrt(eps)
    assert np.allclose(const[chi2].value, math.sqrt(EPS), rtol=1e-9)


def test_empty_window_is_insufficient_data(backfilled):
    outcome = backfilled.outcome(EMPTY)
    assert outcome.status == "success"
    assert {r["status"] for r in outcome.results} == {"insufficient_data"}
    assert all(r["value"] is None for r in outcome.results)
    runs = backfilled.project.query(f"select * from driftline_runs where run_id = '{outcome.run_id}'")
    assert runs.rows_current.tolist() == [0] and runs.status.tolist() == ["success"]


def test_one_row_window(backfilled):
    outcome = backfilled.outcome(ONE_ROW, monitor="single")
    checks = {"drift_psi": CheckSpec("psi", ("x", "cat"), warn=0.1, fail=0.25),
              "drift_chi2": CheckSpec("chi2", ("x", "cat")),
              "drift_ks": CheckSpec("ks", ("x",))}
    expected = model_results(backfilled.data, ONE_ROW, checks=checks, min_rows=1, edges=backfilled.edges("single"))
    compare(backfilled.results(ONE_ROW, monitor="single"), expected)
    assert outcome.worst == "fail"  # one row is far from any reference distribution
    # the main monitor needs MIN_ROWS rows
    assert {r["status"] for r in backfilled.outcome(ONE_ROW).results} == {"insufficient_data"}


def test_reference_profile_is_computed_once_and_reused(backfilled):
    profiles = backfilled.project.query("select monitor, count(*) as n from driftline_profiles group by monitor order by monitor")
    assert profiles.to_dict("records") == [{"monitor": "main", "n": 1}, {"monitor": "single", "n": 1}]
    main = [o for o in backfilled.summary.outcomes if o.monitor == "main"]
    exact_queries = 5  # ks on x and visits, wasserstein on x and const, raw wasserstein on x
    # first window: the reference's size (it sets the edges' sample rate) + edges + categories +
    # one counting query for both windows; then one query
    assert [o.queries for o in main] == [4 + exact_queries, 1 + exact_queries, 1 + exact_queries]
    assert backfilled.counted_windows[:3] == [["current", "reference"], ["current"], ["current"]]


EXACT = MAIN.replace("name: main", "name: exact").replace("{method: ", "{edges: exact, method: ")


def test_exact_edges_are_numpys_quantiles(make_project):
    """``edges: exact``: the stored edges are numpy's default quantiles, and every value is the
    model's computed with numpy's own edges."""
    data = generate_rows()
    project = make_project(monitors={"exact": EXACT}, tables={"events": arrow_table(data)})
    (outcome,) = api.backfill(DRIFTED, DRIFTED + DAY, project.root, at=ONE_ROW + 2 * DAY).outcomes
    assert outcome.status == "success", outcome.error
    stored = stored_edges(project.query("select profile from driftline_profiles"))
    reference = [i for i, ts in enumerate(data["ts"]) if REFERENCE[0] <= ts < REFERENCE[1]]
    for column in ("x", "visits", "const"):
        values = np.array([math.nan if data[column][i] is None else float(data[column][i]) for i in reference])
        numpy_edges = numeric_edges(values, "quantile", 10)
        assert stored[(column, "quantile:10:exact")] == numpy_edges, column  # to the bit
    frame = project.query(f"select * from driftline_results where run_id = '{outcome.run_id}'")
    compare(frame, model_results(data, DRIFTED))


def test_run_after_backfill_reads_only_the_current_window(backfilled):
    summary = api.run(backfilled.project.root, at=ONE_ROW + 2 * DAY, monitors=["main"], notify=False)
    assert [(o.window.start, o.status, o.queries) for o in summary.outcomes] == [(ONE_ROW + DAY, "success", 6)]
    assert backfilled.project.query("select count(*) as n from driftline_profiles").n.tolist() == [2]


def test_rerunning_a_window_replaces_its_rows(backfilled):
    def counts():
        return backfilled.project.query(
            "select (select count(*) from driftline_runs where monitor = 'main' and window_start = '2026-01-08') as runs, "
            "(select count(*) from driftline_results where monitor = 'main' and window_start = '2026-01-08') as results, "
            "(select count(*) from driftline_histograms h join driftline_runs r using (run_id) "
            " where r.monitor = 'main' and r.window_start = '2026-01-08') as histograms"
        ).iloc[0].tolist()

    before = counts()
    again = api.backfill(DRIFTED, DRIFTED + DAY, backfilled.project.root, monitors=["main"])
    assert [o.status for o in again.outcomes] == ["success"]
    assert again.outcomes[0].queries == 6  # the stored profile is reused
    assert counts() == before
    assert before[0] == 1
    compare(backfilled.project.query(f"select * from driftline_results where run_id = '{again.outcomes[0].run_id}'"),
            model_results(backfilled.data, DRIFTED, edges=backfilled.edges()))


# -- statuses and exit codes ----------------------------------------------------------------------




@pytest.fixture(scope="module")
def statuses_project(make_module_project):
    rng = np.random.default_rng(5)
    ts = [datetime(2026, 1, 1) + timedelta(minutes=10 * i) for i in range(8 * 144)]
    current = [t >= DRIFTED for t in ts]
    x = [float(rng.normal(0.8 if c else 0.0)) for c in current]
    cat = [str(rng.choice(["a", "b", "c"])) for _ in ts]
    monitors = {
        "calm": small_monitor("calm", "{method: tvd, warn: 0.9, fail: 0.95}"),
        "warned": small_monitor("warned", "{method: tvd, warn: {above: 0.0}, fail: 0.95}"),
        "failed": small_monitor("failed", "{method: psi}"),
        "gated": small_monitor("gated", "{method: ks, columns: [x], p_value: 0.000001, fail: 0.0}"),
        "broken": small_monitor("broken", "{method: psi}", where="cast(cat as integer) > 0"),
    }
    table = pa.table({"ts": pa.array(ts, pa.timestamp("us")), "x": x, "cat": cat})
    return make_module_project(monitors=monitors, tables={"events": table})


@pytest.mark.parametrize(("monitor", "code"), [("calm", 0), ("warned", 1), ("failed", 2), ("gated", 2), ("broken", 3)])
def test_exit_codes(statuses_project, monitor, code):
    summary = api.run(statuses_project.root, at="2026-01-09T06:00", monitors=[monitor], notify=False)
    assert summary.exit_code == code
    assert len(summary.outcomes) == 1


def test_worst_status_decides_the_exit_code(statuses_project):
    summary = api.backfill("2026-01-08", "2026-01-09", statuses_project.root, monitors=["calm", "warned", "failed"])
    assert summary.exit_code == 2
    summary = api.backfill("2026-01-08", "2026-01-09", statuses_project.root, monitors=["calm", "warned"])
    assert summary.exit_code == 1


def test_p_value_gating_needs_a_significant_test(statuses_project):
    """A fail threshold of 0 breaches on value alone; it only counts when the p-value is small."""
    summary = api.backfill("2026-01-07", "2026-01-09", statuses_project.root, monitors=["gated"], at="2026-01-10")
    by_day = {o.window.start: o.results[0] for o in summary.outcomes}
    for day, row in by_day.items():
        assert row["value"] > 0
        expected = "fail" if row["p_value"] <= 1e-6 else "ok"
        assert row["status"] == expected
    assert by_day[datetime(2026, 1, 8)]["status"] == "fail"  # shifted by 0.8σ: significant
    assert by_day[datetime(2026, 1, 7)]["status"] == "ok"  # a day of the reference itself


def test_a_query_error_at_run_time_marks_the_run_failed(statuses_project):
    summary = api.run(statuses_project.root, at="2026-01-10T06:00", monitors=["broken"], notify=False)
    outcome = summary.outcomes[-1]  # the window of 2026-01-09 (an earlier failed window is tried again)
    assert [o.status for o in summary.outcomes] == ["error"] * len(summary.outcomes)
    assert outcome.window.start == datetime(2026, 1, 9) and "\n" not in outcome.error
    runs = statuses_project.query(
        "select run_id, status, error from driftline_runs where monitor = 'broken'")
    assert set(runs.status) == {"error"}
    assert runs.error.str.contains("broken").all()
    results = statuses_project.query("select count(*) as n from driftline_results where monitor = 'broken'")
    assert results.n.tolist() == [0]


def test_a_source_dropped_mid_run_leaves_an_error_and_no_partial_rows(make_project, monkeypatch):
    """The table disappears after the counts were read, before the exact query: the window's run
    row says error and nothing of the binned results already measured is written."""
    from driftline.measure import WindowMeasurer

    rng = np.random.default_rng(9)
    ts = [datetime(2026, 1, 1) + timedelta(minutes=30 * i) for i in range(9 * 48)]
    table = pa.table({"ts": pa.array(ts, pa.timestamp("us")), "x": rng.normal(size=len(ts)), "cat": ["a"] * len(ts)})
    project = make_project(
        monitors={"m": small_monitor("m", "{method: psi}").replace("  - drift: {method: psi}", "  - drift: {method: psi}\n  - drift: {method: ks, columns: [x]}")},
        tables={"events": table},
    )
    first = api.run(project.root, at="2026-01-09T01:00", notify=False)
    assert [o.status for o in first.outcomes] == ["success"]
    exact = WindowMeasurer._exact

    def drop_then_measure(self, *args):
        self.store.con.raw_sql("drop table events")
        return exact(self, *args)

    monkeypatch.setattr(WindowMeasurer, "_exact", drop_then_measure)
    second = api.run(project.root, at="2026-01-10T01:00", notify=False)
    (outcome,) = second.outcomes
    assert outcome.status == "error" and second.exit_code == 3
    runs = project.query("select run_id, window_start, status from driftline_runs order by window_start")
    assert runs.status.tolist() == ["success", "error"]
    for table_name in ("driftline_results", "driftline_histograms"):
        rows = project.query(f"select count(*) as n from {table_name} where run_id = '{outcome.run_id}'")
        assert rows.n.tolist() == [0]
        kept = project.query(f"select count(*) as n from {table_name} where run_id = '{first.outcomes[0].run_id}'")
        assert kept.n.tolist()[0] > 0  # the earlier window's rows are untouched


def test_a_failed_window_is_evaluated_again_by_the_next_run(make_project, monkeypatch):
    """A window whose run failed is not completed: the next run tries it again, although a later
    window has succeeded in the meantime; once it succeeds nothing is due any more."""
    from driftline.runner import WindowEvaluator

    rng = np.random.default_rng(3)
    ts = [datetime(2026, 1, 1) + timedelta(minutes=30 * i) for i in range(11 * 48)]
    table = pa.table({"ts": pa.array(ts, pa.timestamp("us")), "x": rng.normal(size=len(ts)), "cat": ["a"] * len(ts)})
    project = make_project(monitors={"m": small_monitor("m", "{method: psi}")}, tables={"events": table})
    measure = WindowEvaluator._measure_and_judge

    def warehouse_gone(self, window, run, now):
        raise RuntimeError("connection to the warehouse lost")

    monkeypatch.setattr(WindowEvaluator, "_measure_and_judge", warehouse_gone)
    first = api.run(project.root, at="2026-01-10T01:00", notify=False)
    assert [(o.window.start, o.status) for o in first.outcomes] == [(datetime(2026, 1, 9), "error")]
    monkeypatch.setattr(WindowEvaluator, "_measure_and_judge", measure)
    second = api.run(project.root, at="2026-01-11T01:00", notify=False)
    assert [(o.window.start, o.status) for o in second.outcomes] == [(datetime(2026, 1, 9), "success"), (datetime(2026, 1, 10), "success")]
    assert api.run(project.root, at="2026-01-11T01:00", notify=False).outcomes == []
    runs = project.query("select window_start, status from driftline_runs order by window_start")
    assert runs.status.tolist() == ["success", "success"]  # the failed run's row replaced


def test_nan_is_not_a_category(make_project):
    """A float column declared categorical: NaN, like null, is left out of the distribution."""
    n = 9 * 24
    ts = [datetime(2026, 1, 1) + timedelta(hours=i) for i in range(n)]
    rating = [[1.0, 2.0, math.nan, None][i % 4] for i in range(n)]
    monitor = small_monitor("ratings", "{method: tvd, columns: [rating]}").replace("categorical: [cat]", "categorical: [rating]")
    project = make_project(monitors={"ratings": monitor},
                           tables={"events": pa.table({"ts": pa.array(ts, pa.timestamp("us")), "x": [0.0] * n, "rating": rating})})
    summary = api.run(project.root, at="2026-01-09T01:00", notify=False)
    assert summary.exit_code == 0, [o.error for o in summary.outcomes]
    bins = project.query("select bin_label, reference_count, current_count from driftline_histograms order by bin_index")
    assert bins.bin_label.tolist() == ["1.0", "2.0", "__other__"]
    assert bins.reference_count.tolist() == [42, 42, 0] and bins.current_count.tolist() == [6, 6, 0]


def test_an_empty_reference_is_not_cached(make_project):
    """Reference data loaded after a first run is used by the next one: a profile of an empty
    reference is not kept."""
    rng = np.random.default_rng(4)
    ts = [datetime(2026, 1, 1) + timedelta(hours=i) for i in range(9 * 24)]
    frame = pa.table({"ts": pa.array(ts, pa.timestamp("us")), "x": rng.normal(size=len(ts)), "cat": ["a", "b"] * (len(ts) // 2)})
    project = make_project(monitors={"m": small_monitor("m", "{method: tvd}")}, tables={"events": frame})
    project.execute("create table reference_rows as select * from events where ts < '2026-01-08'",
                    "delete from events where ts < '2026-01-08'")
    first = api.run(project.root, at="2026-01-09T01:00", notify=False)
    assert {r["status"] for r in first.outcomes[0].results} == {"insufficient_data"}
    project.execute("insert into events select * from reference_rows")
    again = api.backfill("2026-01-08", "2026-01-09", project.root, at="2026-01-09T01:00")
    assert all(r["value"] is not None for r in again.outcomes[0].results)
    assert project.query("select count(*) as n from driftline_profiles").n.tolist() == [1]


TWO_BINNINGS = """
name: twice
source: {table: events, timestamp: ts}
schedule: {every: 1d}
reference: {start: 2026-01-01, end: 2026-01-08}
min_rows: 5
features: {numeric: [x]}
checks:
  - drift: {method: psi}
  - drift: {method: js, binning: uniform, bins: 7}
"""


def test_two_binnings_of_one_column_are_told_apart_in_the_histograms(make_project):
    """driftline_histograms.binning separates a column's quantile bins from its uniform ones; each
    set's counts are numpy's."""
    rng = np.random.default_rng(4)
    n = 9 * 24
    x = rng.lognormal(0, 1, n)
    x[::17] = np.nan
    ts = [datetime(2026, 1, 1) + timedelta(hours=i) for i in range(n)]
    project = make_project(monitors={"twice": TWO_BINNINGS}, tables={"events": pa.table({"ts": pa.array(ts, pa.timestamp("us")), "x": x})})
    api.run(project.root, at="2026-01-10", notify=False)
    stored = project.query("select * from driftline_histograms")
    hours = np.array(ts, dtype="datetime64[us]")
    reference = x[hours < np.datetime64("2026-01-08")]
    current = x[(hours >= np.datetime64("2026-01-09")) & (hours < np.datetime64("2026-01-10"))]
    assert sorted(stored.binning.unique()) == ["quantile:10", "uniform:7"]
    profile_edges = stored_edges(project.query("select profile from driftline_profiles"))
    for binning, bins in (("quantile", 10), ("uniform", 7)):
        # quantile edges are the warehouse's approximate ones, read back; uniform ones numpy's
        edges = profile_edges[("x", "quantile:10")] if binning == "quantile" else numeric_edges(reference, binning, bins)
        rows = stored[stored.binning == f"{binning}:{bins}"].sort_values("bin_index")
        assert list(rows.bin_index) == list(range(len(edges) + 1))
        assert list(rows.reference_count) == numeric_counts(reference, edges).tolist()
        assert list(rows.current_count) == numeric_counts(current, edges).tolist()
    # The report draws one set of bins per column and window: the quantile ones, first by name.
    with project.connect() as con:
        drawn = report_data.load(con).histograms
    assert len(drawn) == 10 and list(drawn.reference_count) == stored[stored.binning == "quantile:10"].sort_values("bin_index").reference_count.tolist()
