"""The ``std_error`` column: each performance, fairness and custom-mean result's standard error,
checked against the closed forms computed here independently with numpy, scipy and scikit-learn
on the same rows (SPEC §6, "Standard errors")."""

from __future__ import annotations

import math
import uuid

import ibis
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as sk

from driftline import api, connect, views, writers
from driftline.result_schema import RESULTS, TABLES
from driftline.store import ResultStore
from driftline.views import CHECK_HISTORY, LATEST
from model_projects import DAY, START, make_project, result, results, rows_of

MONITOR = """
name: leads
source: {table: leads, timestamp: ts}
model: {task: binary_classification, score: score, prediction: predicted, label: converted}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-03}
segments: [region]
min_rows: 1
checks:
  - performance: {metric: accuracy}
  - performance: {metric: precision}
  - performance: {metric: recall}
  - performance: {metric: specificity}
  - performance: {metric: f1}
  - performance: {metric: roc_auc}
  - performance: {metric: log_loss}
  - performance: {metric: brier}
  - performance: {metric: positive_rate}
  - fairness: {metric: demographic_parity_difference, group: channel}
  - fairness: {metric: equal_opportunity_difference, group: channel}
  - fairness: {metric: disparate_impact, group: channel}
  - metric: {name: mean_amount, sql: avg(amount)}
  - metric: {name: total_amount, sql: sum(amount)}
  - drift: {columns: [amount]}
"""


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(16)
    n = 1500
    score = rng.uniform(size=n)
    return pd.DataFrame({
        "ts": START + pd.to_timedelta(rng.integers(0, 4 * 86400, n), unit="s"),
        "region": rng.choice(["north", "south", "east"], n),
        "channel": rng.choice(["web", "app", "store"], n, p=[0.5, 0.3, 0.2]),
        "score": score,
        "predicted": (score > 0.45).astype(int),
        "converted": (rng.uniform(size=n) < score).astype(int),
        "amount": rng.gamma(2.0, 30.0, n),
    })  # fmt: skip


@pytest.fixture(scope="module")
def stored(tmp_path_factory, data) -> pd.DataFrame:
    root = make_project(tmp_path_factory.mktemp("std_error"), MONITOR, {"leads": data})
    summary = api.backfill(START + 3 * DAY, START + 4 * DAY, project=root, at=START + 9 * DAY)
    assert [o.status for o in summary.outcomes] == ["success"], [o.error for o in summary.outcomes]
    return results(root)


def binomial(k: float, n: float) -> float:
    p = k / n
    return math.sqrt(p * (1 - p) / n)


def hanley_mcneil(y: np.ndarray, s: np.ndarray) -> float:
    auc = sk.roc_auc_score(y, s)
    n1, n2 = y.sum(), (1 - y).sum()
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    return math.sqrt((auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n2 - 1) * (q2 - auc**2)) / (n1 * n2))


def f1_delta(y: np.ndarray, p: np.ndarray) -> float:
    """F1 as a function of the threat score J = TP/(TP+FP+FN): its derivative 2/(1+J)² times
    J's binomial error over those rows."""
    tn, fp, fn, tp = sk.confusion_matrix(y, p, labels=[0, 1]).ravel()
    m = tp + fp + fn
    j = tp / m
    return 2 / (1 + j) ** 2 * math.sqrt(j * (1 - j) / m)


def expected(rows: pd.DataFrame, metric: str) -> float:
    y, p, s = rows.converted.to_numpy(), rows.predicted.to_numpy(), rows.score.to_numpy()
    tn, fp, fn, tp = sk.confusion_matrix(y, p, labels=[0, 1]).ravel()
    clipped = np.clip(s, 1e-15, 1 - 1e-15)
    losses = {
        "log_loss": -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)),
        "brier": (s - y) ** 2,
    }
    if metric in losses:
        return float(stats.sem(losses[metric]))
    return {
        "accuracy": lambda: binomial(tp + tn, len(y)),
        "precision": lambda: binomial(tp, tp + fp),
        "recall": lambda: binomial(tp, tp + fn),
        "specificity": lambda: binomial(tn, tn + fp),
        "f1": lambda: f1_delta(y, p),
        "roc_auc": lambda: hanley_mcneil(y, s),
        "positive_rate": lambda: binomial(p.sum(), len(p)),
    }[metric]()


def group_rates(rows: pd.DataFrame, rate: str) -> dict[str, tuple[float, float]]:
    """Each channel's rate and its binomial error."""
    found = {}
    for channel, part in rows.groupby("channel"):
        if rate == "selection_rate":
            k, n = part.predicted.sum(), len(part)
        else:  # tpr
            positives = part[part.converted == 1]
            k, n = positives.predicted.sum(), len(positives)
        found[channel] = (k / n, binomial(k, n))
    return found


def expected_fairness(rows: pd.DataFrame, metric: str) -> float:
    rate = "tpr" if metric == "equal_opportunity_difference" else "selection_rate"
    groups = group_rates(rows, rate)
    low = min(groups, key=lambda g: groups[g][0])
    high = max(groups, key=lambda g: groups[g][0])
    if metric != "disparate_impact":
        return math.hypot(groups[low][1], groups[high][1])
    reference = max(groups, key=lambda g: (rows.channel == g).sum())  # the largest group
    lowest = min((g for g in groups if g != reference), key=lambda g: groups[g][0] / groups[reference][0])
    (a, se_a), (b, se_b) = groups[lowest], groups[reference]
    return a / b * math.sqrt((se_a / a) ** 2 + (se_b / b) ** 2)


SEGMENTS = [None, "north", "south", "east"]
WINDOW = START + 3 * DAY


@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "specificity", "f1", "roc_auc", "log_loss", "brier", "positive_rate"])
def test_performance_std_error(stored, data, metric):
    for segment in SEGMENTS:
        row = result(stored[stored.check_name == f"performance_{metric}"], WINDOW, segment)
        assert row.std_error == pytest.approx(expected(rows_of(data, WINDOW, segment), metric), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("metric", ["demographic_parity_difference", "equal_opportunity_difference", "disparate_impact"])
def test_fairness_std_error(stored, data, metric):
    for segment in SEGMENTS:
        row = result(stored[stored.check_name == f"fairness_{metric}"], WINDOW, segment, column="channel")
        assert row.std_error == pytest.approx(expected_fairness(rows_of(data, WINDOW, segment), metric), rel=1e-9)


def test_mean_metric_std_error_is_s_over_root_n(stored, data):
    for segment in SEGMENTS:
        row = result(stored[stored.check_name == "mean_amount"], WINDOW, segment)
        assert row.std_error == pytest.approx(stats.sem(rows_of(data, WINDOW, segment).amount), rel=1e-9)


def test_no_std_error_where_no_closed_form_applies(stored):
    """A sum and a drift distance carry none: null, not a made-up number."""
    for name in ("total_amount", "drift_psi"):
        assert stored[stored.check_name == name].std_error.isna().all(), name


# -- results written before the column ---------------------------------------------------------


@pytest.mark.parametrize("backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_results_table_and_views_of_the_previous_version_gain_std_error(backend, request, monkeypatch):
    """The table gains the column at its end and the views keep their earlier columns in place
    (PostgreSQL replaces a view only when its old columns stay a prefix of the new ones)."""
    if backend == "duckdb":
        con, schema = ibis.duckdb.connect(), None
    else:
        con, schema = connect.connect(request.getfixturevalue("postgres_url")), f"driftline_test_{uuid.uuid4().hex[:10]}"
        con.create_database(schema)
    try:
        store = ResultStore(con, schema)
        store.ensure_tables()
        for name in (LATEST, CHECK_HISTORY):
            con.raw_sql(f"DROP VIEW {writers.qualified_name(con, name, schema)}")
        con.raw_sql(f'ALTER TABLE {writers.qualified_name(con, RESULTS, schema)} DROP COLUMN "std_error"')
        # the views as the previous version made them: today's, without std_error
        read_table = con.table
        with_null_error = lambda name, **kw: read_table(name, **kw).mutate(std_error=ibis.null("float64")) if name == RESULTS else read_table(name, **kw)
        monkeypatch.setattr(con, "table", with_null_error)
        earlier = {name: build(con, schema).drop("std_error") for name, build in [(LATEST, views.latest_results), (CHECK_HISTORY, views.check_history)]}
        monkeypatch.undo()
        for name, expr in earlier.items():
            con.raw_sql(f"CREATE VIEW {writers.qualified_name(con, name, schema)} AS {con.compile(expr)}")
        earlier_columns = {name: list(con.table(name, database=schema).columns) for name in earlier}

        store.ensure_tables()
        assert list(con.table(RESULTS, database=schema).columns) == list(TABLES[RESULTS].names)
        for name, columns in earlier_columns.items():
            assert list(con.table(name, database=schema).columns) == [*columns, "std_error"], name
    finally:
        if schema is not None:
            con.drop_database(schema, force=True, cascade=True)
        con.disconnect()


# -- Spark ---------------------------------------------------------------------------------------------


@pytest.mark.spark
def test_spark_writes_the_same_std_error(tmp_path, data):
    """Spark's result table and views carry std_error, equal to the closed forms on its rows."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'driftline[spark]')")
    import shutil

    import yaml

    if shutil.which("java") is None:
        pytest.skip("Spark needs Java and no `java` is on the PATH")
    from pyspark.sql import SparkSession

    started_here = SparkSession.getActiveSession() is None
    # One Spark session per process, its warehouse fixed when it starts: attach to one that an
    # earlier test left running rather than ask for another warehouse.
    url = "pyspark://local" if started_here else "pyspark://"
    project = {"name": "spark_std_error", "connection": url, "results": {"schema": "std_error_results"}}
    (tmp_path / "driftline_project.yml").write_text(yaml.safe_dump(project), encoding="utf-8")
    (tmp_path / "monitors").mkdir()
    checks = "\n".join(line for line in MONITOR.splitlines() if "drift:" not in line).replace("table: leads", "table: leads_std_error")
    (tmp_path / "monitors" / "leads.yml").write_text(checks, encoding="utf-8")
    spark = connect.connect(url, tmp_path)
    try:
        SparkSession.getActiveSession().createDataFrame(data).write.mode("overwrite").saveAsTable("leads_std_error")
        summary = api.backfill(START + 3 * DAY, START + 4 * DAY, project=tmp_path, at=START + 9 * DAY, notify=False)
        assert [o.status for o in summary.outcomes] == ["success"], [o.error for o in summary.outcomes]
        stored = spark.table(RESULTS, database="std_error_results").execute()
        for metric in ("precision", "recall", "roc_auc", "log_loss"):
            row = result(stored[stored.check_name == f"performance_{metric}"], WINDOW)
            assert row.std_error == pytest.approx(expected(rows_of(data, WINDOW, None), metric), rel=1e-9)
        assert "std_error" in spark.table(LATEST, database="std_error_results").columns
    finally:
        if started_here:
            SparkSession.getActiveSession().stop()
