"""The result columns SPEC §5 added: the resolved bounds (``warn_lower`` ... ``fail_upper``),
``reference_value`` and ``reason``, written by real runs on DuckDB and PostgreSQL, and the
additive migration of a results table written before them.

Expected values come from scikit-learn, numpy and pandas on the same rows; expected reasons
from how each window was built.

PostgreSQL runs when DRIFTLINE_TEST_POSTGRES_URL is set (e.g.
postgres://postgres@127.0.0.1:5432/test); every test there works in schemas of its own.
"""

from __future__ import annotations

import json
import math
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as sk
import yaml

from driftline import api, connect, writers
from driftline.reasons import REASONS
from driftline.result_schema import ALERTS, RESULTS, TABLES
from driftline.store import ResultStore
from driftline.views import CHECK_HISTORY, LATEST, OPEN_ALERTS

DAY = pd.Timedelta(days=1)
START = pd.Timestamp("2024-03-01")  # day 0: the reference window
BACKENDS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass
class Warehouse:
    """A project on one backend: its tables, monitors and results."""

    root: Path
    con: ibis.BaseBackend
    source: str | None  # the schema of the source tables (None: the default one)

    def table(self, name: str) -> str:
        """How a monitor names a source table."""
        return name if self.source is None else f"{self.source}.{name}"

    def load(self, name: str, frame: pd.DataFrame) -> None:
        self.con.create_table(name, frame, database=self.source, overwrite=True)

    def monitors(self, *texts: str) -> None:
        for i, text in enumerate(texts):
            body = textwrap.dedent(text).lstrip("\n").replace("{source}", self.table(""))
            (self.root / "monitors" / f"m{i}.yml").write_text(body, encoding="utf-8")

    def results(self) -> pd.DataFrame:
        frame = api.Workspace.open(self.root).store.table(RESULTS).execute()
        frame["details"] = [json.loads(d) if isinstance(d, str) else {} for d in frame.details]
        return frame


@pytest.fixture(params=BACKENDS)
def warehouse(request, tmp_path):
    (tmp_path / "monitors").mkdir()
    if request.param == "duckdb":
        path = tmp_path / "warehouse.duckdb"
        con = ibis.duckdb.connect(str(path))
        project = {"name": "columns", "connection": f"duckdb://{path}"}
        source = None
    else:  # the conftest fixture skips, saying why, when no PostgreSQL URL is configured
        url = request.getfixturevalue("postgres_url")
        con = connect.connect(url)
        source = f"driftline_test_{uuid.uuid4().hex[:10]}"
        con.create_database(source)
        project = {"name": "columns", "connection": url, "results": {"schema": f"{source}_results"}}
    (tmp_path / "driftline_project.yml").write_text(yaml.safe_dump(project), encoding="utf-8")
    try:
        yield Warehouse(tmp_path, con, source)
    finally:
        if source is not None:
            for schema in (source, f"{source}_results"):
                con.drop_database(schema, force=True, cascade=True)
        con.disconnect()


def leads_day(rng: np.random.Generator, day: int, n: int, *, shift: float = 0.0) -> pd.DataFrame:
    """``n`` scored leads of one day: a score, the label it predicts fairly well, a feature with
    some nulls, a region."""
    converted = rng.integers(0, 2, n)
    score = np.clip(0.3 + 0.4 * converted + rng.normal(shift, 0.2, n), 0.001, 0.999)
    x = rng.normal(0, 1, n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "ts": START + day * DAY + pd.to_timedelta(np.sort(rng.integers(0, 86_400, n)), unit="s"),
        "score": score,
        "converted": converted,
        "x": x,
        "region": rng.choice(["north", "south"], n),
    })  # fmt: skip


def on(data: pd.DataFrame, day: int) -> pd.DataFrame:
    return data[(data.ts >= START + day * DAY) & (data.ts < START + (day + 1) * DAY)]


def overall(frame: pd.DataFrame, check: str) -> pd.DataFrame:
    """The overall rows of one check, one per window, oldest first."""
    rows = frame[(frame.check_name == check) & frame.segment_key.isna()]
    return rows.sort_values("window_start").reset_index(drop=True)


def number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


# -- the bounds of every threshold form ------------------------------------------------------------

BOUNDS_MONITOR = """
name: bounds
source: {table: {source}leads, timestamp: ts}
model: {task: binary_classification, score: score, label: converted}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-02}
min_rows: 10
checks:
  - quality: {metric: null_rate, columns: [x], warn: 0.2, fail: {above: 0.5}}
  - performance: {metric: accuracy, fail: 0.6, warn: {drop: 0.05}}
  - performance: {metric: precision, warn: {outside: [0.2, 0.9]}, fail: {below: 0.1}}
  - performance: {metric: log_loss, warn: {rise: 0.1}}
  - metric:
      name: avg_score
      sql: avg(score)
      fail: {above: 0.99}
      anomaly: {method: zscore, sensitivity: 2, history: 5, min_history: 3}
"""
WINDOWS = range(1, 8)


def test_bounds_of_each_threshold_form(warehouse):
    rng = np.random.default_rng(11)
    shifts = {5: 0.15}  # day 5's scores jump: the anomaly band should catch it
    data = pd.concat([leads_day(rng, d, 300, shift=shifts.get(d, 0.0)) for d in (0, *WINDOWS)], ignore_index=True)
    warehouse.load("leads", data)
    warehouse.monitors(BOUNDS_MONITOR)
    api.backfill(START + DAY, START + 8 * DAY, warehouse.root, at=START + 9 * DAY)
    results = warehouse.results()
    reference = on(data, 0)

    null_rate = overall(results, "quality_null_rate")
    for row, day in zip(null_rate.itertuples(), WINDOWS):
        value = on(data, day).x.isna().mean()
        assert number(row.value) == pytest.approx(value, abs=1e-12)
        _assert_bounds(row, warn=(None, 0.2), fail=(None, 0.5))
        assert row.status == _status(value, (None, 0.2), (None, 0.5))

    accuracy = overall(results, "performance_accuracy")
    ref_accuracy = sk.accuracy_score(reference.converted, reference.score >= 0.5)
    for row, day in zip(accuracy.itertuples(), WINDOWS):
        rows = on(data, day)
        value = sk.accuracy_score(rows.converted, rows.score >= 0.5)
        assert number(row.value) == pytest.approx(value, abs=1e-12)
        assert number(row.reference_value) == pytest.approx(ref_accuracy, abs=1e-12)
        _assert_bounds(row, warn=(ref_accuracy - 0.05, None), fail=(0.6, None))  # lower is worse
        assert row.status == _status(value, (ref_accuracy - 0.05, None), (0.6, None))

    precision = overall(results, "performance_precision")
    for row, day in zip(precision.itertuples(), WINDOWS):
        rows = on(data, day)
        value = sk.precision_score(rows.converted, rows.score >= 0.5)
        _assert_bounds(row, warn=(0.2, 0.9), fail=(0.1, None))
        assert row.status == _status(value, (0.2, 0.9), (0.1, None))
        assert number(row.reference_value) is None  # no relative threshold: nothing to compare with

    log_loss = overall(results, "performance_log_loss")
    ref_log_loss = sk.log_loss(reference.converted, reference.score)
    for row, day in zip(log_loss.itertuples(), WINDOWS):
        rows = on(data, day)
        value = sk.log_loss(rows.converted, rows.score)
        assert number(row.reference_value) == pytest.approx(ref_log_loss, rel=1e-9)
        _assert_bounds(row, warn=(None, ref_log_loss + 0.1), fail=(None, None))
        assert row.status == _status(value, (None, ref_log_loss + 0.1), (None, None))

    _assert_anomaly_bounds(overall(results, "avg_score"), data)


def _assert_anomaly_bounds(rows: pd.DataFrame, data: pd.DataFrame) -> None:
    """The band (zscore: mean ± 2 sample standard deviations of the last five earlier values,
    anomalous ones left out) narrows the fail bounds; before three earlier values there is none."""
    history: list[float] = []
    caught = 0
    for row, day in zip(rows.itertuples(), WINDOWS):
        value = on(data, day).score.mean()
        assert number(row.value) == pytest.approx(value, abs=1e-12)
        if len(history) < 3:
            _assert_bounds(row, warn=(None, None), fail=(None, 0.99))
            assert (row.status, row.reason) == ("insufficient_data", "no_history")
            history.append(value)
            continue
        baseline = np.array(history[-5:])
        lower = baseline.mean() - 2 * baseline.std(ddof=1)
        upper = baseline.mean() + 2 * baseline.std(ddof=1)
        _assert_bounds(row, warn=(None, None), fail=(lower, min(upper, 0.99)))
        anomalous = not lower <= value <= upper
        assert row.status == ("fail" if anomalous else "ok") and pd.isna(row.reason)
        caught += anomalous
        if not anomalous:
            history.append(value)
    assert caught >= 1  # day 5's jump


def _assert_bounds(row, warn: tuple, fail: tuple) -> None:
    stored = [number(getattr(row, f"{level}_{side}")) for level in ("warn", "fail") for side in ("lower", "upper")]
    for got, expected, name in zip(stored, [*warn, *fail], ["warn_lower", "warn_upper", "fail_lower", "fail_upper"]):
        if expected is None:
            assert got is None, f"{row.check_name} {row.window_start} {name}: {got}"
        else:
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), f"{row.check_name} {row.window_start} {name}"


def _status(value: float, warn: tuple, fail: tuple) -> str:
    """ok / warn / fail of a value against (lower, upper) bounds, None: unbounded."""
    def outside(bounds):
        lower, upper = bounds
        return (lower is not None and value < lower) or (upper is not None and value > upper)

    return "fail" if outside(fail) else "warn" if outside(warn) else "ok"


# -- reason codes ----------------------------------------------------------------------------------

REASONS_MONITOR = """
name: reasons
source: {table: {source}leads, timestamp: ts}
model: {task: binary_classification, score: score, label: converted}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-02}
segments: [region]
min_rows: 20
checks:
  - drift: {columns: [x], method: psi}
  - performance: {metric: accuracy}
  - performance: {metric: precision}
  - performance: {metric: roc_auc, warn: {drop: 0.1}}
  - quality: {metric: mean, columns: [empty]}
  - quality: {metric: schema_change}
  - fairness: {metric: demographic_parity_difference, group: region}
  - metric: {name: avg_score, sql: avg(score), anomaly: {min_history: 5}}
"""
LATE_MONITOR = """
name: late
source: {table: {source}scored, timestamp: ts}
model:
  task: binary_classification
  score: score
  labels: {table: {source}outcomes, key: lead_id, column: converted, delay: 2d}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-02}
min_rows: 20
checks:
  - performance: {metric: accuracy}
"""


def reasons_data(rng: np.random.Generator) -> pd.DataFrame:
    """Day 0 (reference): one class only, so roc_auc is undefined there. Day 1: every score
    below the 0.5 threshold, and a region with three rows. Day 2: no rows. Day 3: no labels.
    Day 4: a label of 2."""
    reference = leads_day(rng, 0, 200).assign(converted=1)
    no_positives = leads_day(rng, 1, 200).assign(score=lambda d: d.score * 0.4)
    no_positives.loc[no_positives.index[:3], ["region", "x"]] = ["tiny", 0.5]
    no_positives.loc[no_positives.index[3:], "region"] = "north"
    unlabeled = leads_day(rng, 3, 200).assign(converted=pd.NA)
    bad_label = leads_day(rng, 4, 200)
    bad_label.loc[bad_label.index[0], "converted"] = 2
    data = pd.concat([reference, no_positives, unlabeled, bad_label], ignore_index=True)
    return data.assign(converted=data.converted.astype("Int64"), empty=pd.Series(np.nan, index=data.index))


def test_reason_codes(warehouse):
    data = reasons_data(np.random.default_rng(5))
    warehouse.load("leads", data)
    warehouse.monitors(REASONS_MONITOR)
    api.backfill(START + DAY, START + 5 * DAY, warehouse.root, at=START + 6 * DAY)
    results = warehouse.results()

    def reason(check: str, day: int, segment: str | None = None) -> str | None:
        rows = results[(results.check_name == check) & (results.window_start == START + day * DAY)]
        rows = rows[rows.segment_value.isna()] if segment is None else rows[rows.segment_value == segment]
        assert len(rows) == 1, (check, day, segment)
        return rows.reason.iloc[0] if rows.status.iloc[0] == "insufficient_data" else "judged"

    assert reason("drift_psi", 1, "tiny") == "min_rows"  # 3 rows < min_rows 20
    assert reason("drift_psi", 1, "south") == "empty_window"  # the region has no rows that day
    assert reason("drift_psi", 2) == "empty_window"  # no rows at all
    assert reason("performance_precision", 1) == "zero_denominator"  # no predicted positives
    assert reason("performance_roc_auc", 1) == "no_reference"  # one class on the reference
    assert reason("performance_accuracy", 2) == "empty_window"
    assert reason("performance_accuracy", 3) == "no_labels"
    assert reason("performance_accuracy", 4) == "bad_labels"
    assert reason("quality_mean", 1) == "no_values"  # the column is all null
    assert reason("quality_schema_change", 1) == "no_previous_run"
    assert reason("quality_schema_change", 2) == "judged"
    assert reason("fairness_demographic_parity_difference", 1) == "too_few_groups"  # tiny < 20 rows
    assert reason("avg_score", 1) == "no_history"
    assert reason("performance_accuracy", 1) == "judged"

    insufficient = results.status == "insufficient_data"
    assert results.reason[insufficient].isin(list(REASONS)).all()
    assert results.reason[~insufficient].isna().all()
    # the sentence for people stays in details, the code is not repeated there
    assert all("explanation" in d and "reason" not in d for d in results.details[insufficient])


def test_a_window_waiting_for_labels_is_found_by_its_reason_and_evaluated_again(warehouse):
    rng = np.random.default_rng(8)
    scored = pd.concat([leads_day(rng, d, 150) for d in range(3)], ignore_index=True)
    scored.insert(0, "lead_id", np.arange(len(scored)))
    window = START + 2 * DAY
    warehouse.load("scored", scored.drop(columns="converted"))
    warehouse.load("outcomes", scored.loc[scored.ts < window, ["lead_id", "converted"]])
    warehouse.monitors(LATE_MONITOR)

    api.run(warehouse.root, at=window + DAY + pd.Timedelta(hours=1))  # labels are 2d away
    waiting = overall(warehouse.results(), "performance_accuracy")
    assert list(waiting.window_start) == [window]
    assert (waiting.status.iloc[0], waiting.reason.iloc[0]) == ("insufficient_data", "labels_not_mature")
    store = api.Workspace.open(warehouse.root).store
    assert [w.start for w in store.windows_with_reason("late", "labels_not_mature")] == [window]

    warehouse.load("outcomes", scored[["lead_id", "converted"]])  # the labels arrive
    api.run(warehouse.root, at=window + 3 * DAY + pd.Timedelta(hours=1))
    judged = overall(warehouse.results(), "performance_accuracy")
    day = on(scored, 2)
    first = judged[judged.window_start == window].iloc[0]
    assert number(first.value) == pytest.approx(sk.accuracy_score(day.converted, day.score >= 0.5), abs=1e-12)
    assert pd.isna(first.reason) and first.status == "ok"


# -- the migration of a results table written before these columns ---------------------------------

OLD_RESULT_COLUMNS = [name for name in TABLES[RESULTS].names if name not in (
    "warn_lower", "warn_upper", "fail_lower", "fail_upper", "reference_value", "reason", "std_error")]  # fmt: skip
OLD_HISTORY_NUMBERS = ["warn_threshold_value", "fail_threshold_value", "band_lower", "band_upper", "reference_value"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrating_a_results_table_written_before_the_new_columns(backend, request):
    con, schema = _empty_schema(backend, request)
    try:
        _old_tables_and_views(con, schema)
        store = ResultStore(con, schema)
        store.ensure_tables()

        table = con.table(RESULTS, database=schema)
        assert list(table.columns) == list(TABLES[RESULTS].names)  # added at the end
        rows = table.order_by("check_name").execute()
        assert list(rows.check_name) == ["accuracy", "drift"]
        waiting, drifted = rows.iloc[0], rows.iloc[1]
        # a window waiting for its labels keeps being found, so it is evaluated again
        assert waiting.reason == "labels_not_mature" and pd.isna(drifted.reason)
        assert [w.start for w in store.windows_with_reason("m", "labels_not_mature")] == [START.to_pydatetime()]
        assert rows[["warn_lower", "warn_upper", "fail_lower", "fail_upper", "reference_value", "std_error"]].isna().all().all()

        history = con.table(CHECK_HISTORY, database=schema).order_by("check_name").execute()
        assert list(history.check_name) == ["accuracy", "drift"]
        assert history[["warn_threshold_value", "fail_threshold_value", "reference_value"]].isna().all().all()
        assert number(history.band_lower.iloc[1]) == 0.1  # still read from details
        assert list(history.severity_rank) == [1, 2]
        latest = con.table(LATEST, database=schema).execute()
        assert sorted(latest.status) == ["insufficient_data", "warn"]
    finally:
        if schema is not None:
            con.drop_database(schema, force=True, cascade=True)
        con.disconnect()


def _empty_schema(backend: str, request) -> tuple[ibis.BaseBackend, str | None]:
    if backend == "duckdb":
        return ibis.duckdb.connect(), None
    con = connect.connect(request.getfixturevalue("postgres_url"))
    schema = f"driftline_test_{uuid.uuid4().hex[:10]}"
    con.create_database(schema)
    return con, schema


def _old_tables_and_views(con: ibis.BaseBackend, schema: str | None) -> None:
    """The results table, its rows and the views as an earlier driftline left them: the views
    stand in for the old ones with the same columns in the same order, which is what
    PostgreSQL's CREATE OR REPLACE VIEW holds a new definition to."""
    old = ibis.schema({name: TABLES[RESULTS][name] for name in OLD_RESULT_COLUMNS})
    con.create_table(RESULTS, schema=old, database=schema)
    con.create_table(ALERTS, schema=TABLES[ALERTS], database=schema)
    base = {
        "run_id": "r1", "monitor": "m", "column_name": None, "segment_key": None, "segment_value": None,
        "window_start": START, "window_end": START + DAY, "p_value": None, "n_current": 100,
        "n_reference": None, "created_at": START + DAY,
    }
    rows = pd.DataFrame([
        {**base, "check_name": "accuracy", "check_type": "performance", "metric": "accuracy", "value": None,
         "status": "insufficient_data", "warn_threshold": "{drop: 0.05}", "fail_threshold": None,
         "details": json.dumps({"reason": "labels not mature", "mature_at": "2024-03-04T00:00:00"})},
        {**base, "check_name": "drift", "check_type": "drift", "metric": "psi", "value": 0.2,
         "status": "warn", "warn_threshold": "0.1", "fail_threshold": "0.25",
         "details": json.dumps({"band": {"lower": 0.1, "upper": 0.3}})},
    ])[OLD_RESULT_COLUMNS]  # fmt: skip
    con.insert(RESULTS, ibis.memtable(rows, schema=old), database=schema)
    results = con.table(RESULTS, database=schema)
    numbers = {name: ibis.null("float64") for name in OLD_HISTORY_NUMBERS}
    history = results.select(*OLD_RESULT_COLUMNS[:15], **numbers, n_current=results.n_current,
                             n_reference=results.n_reference, created_at=results.created_at)  # fmt: skip
    alerts = con.table(ALERTS, database=schema)
    for name, view in ((LATEST, results), (CHECK_HISTORY, history), (OPEN_ALERTS, alerts.filter(alerts.state == "open"))):
        writers.create_view(con, name, view, schema)
