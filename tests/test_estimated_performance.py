"""Estimated performance (CBPE) computed in the warehouse, checked against an independent
implementation of the same algorithm: scikit-learn's ``IsotonicRegression`` fitted on the same
bin aggregates of the reference, numpy's expected confusion matrix over the window's rows, and
scikit-learn's weighted ``roc_auc_score`` (each row once as a positive of weight p, once as a
negative of weight 1 − p: the trapezoidal area under the expected ROC curve). Every stored value,
overall and per segment, must match to 1e-9, on DuckDB, PostgreSQL and Spark.
"""

from __future__ import annotations

import math
import os
import uuid

import ibis
import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from driftline import api, dialects
from driftline.plan.estimated import MAX_BINS, PROBABILITY, Calibration, pool_adjacent_violators, with_calibrated
from driftline.plan.frame import SCORE
from model_projects import DAY, START, assert_value, make_project, result, results, rows_of

METRICS = ["precision", "recall", "f1", "accuracy", "specificity", "roc_auc"]
THRESHOLD = 0.5

MONITOR = """
name: leads
source: {table: %s, timestamp: ts}
model: {task: binary_classification, score: score, label: converted, threshold: 0.5}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-03}
segments: [region]
min_rows: 1
checks:
%s
"""
CHECKS = "\n".join(f"  - estimated_performance: {{metric: {m}}}" for m in METRICS)


def day(rng, number: int, n: int, scores: np.ndarray, labeled: bool = True) -> pd.DataFrame:
    """One day of rows; a label drawn from a miscalibrated truth (the model is overconfident)."""
    truth = 1 / (1 + np.exp(-3 * (scores - 0.5)))
    labels = pd.array((rng.uniform(size=n) < truth).astype(int), dtype="Int64")
    labels[rng.uniform(size=n) < (0.1 if labeled else 2)] = pd.NA
    region = rng.choice(["north", "south"], n).astype(object)
    region[rng.choice(n, 3, replace=False)] = None
    ts = START + number * DAY + pd.to_timedelta(rng.uniform(0, 86399, n).round(), unit="s")
    return pd.DataFrame({"ts": ts, "region": region, "score": scores, "converted": labels})


def grid_data(rng) -> pd.DataFrame:
    """Reference scores on a grid of 41 values (one bin each); the windows' scores off the grid
    too (interpolated between the curve's points) and beyond its ends (clipped)."""
    grid = lambda n: rng.integers(2, 43, n) / 45  # noqa: E731
    return pd.concat([
        day(rng, 0, 700, grid(700)), day(rng, 1, 700, grid(700)),
        day(rng, 2, 500, rng.uniform(0, 1, 500), labeled=False),
        day(rng, 3, 400, np.concatenate([grid(300), rng.beta(5, 2, 100)]), labeled=False),
        day(rng, 4, 300, rng.uniform(0, 0.4, 300), labeled=False),  # few predicted positives
    ], ignore_index=True)


def continuous_data(rng) -> pd.DataFrame:
    """More than MAX_BINS distinct reference scores: binned by rank, with ties straddling no bin."""
    def scores(n):
        values = rng.beta(2, 2, n)
        values[: n // 10] = 0.25  # a large tie
        return values
    return pd.concat([
        day(rng, 0, 2000, scores(2000)), day(rng, 1, 2000, scores(2000)),
        day(rng, 2, 600, rng.beta(3, 2, 600), labeled=False),
    ], ignore_index=True)


# -- the independent implementation ---------------------------------------------------------------


def reference_bins(reference: pd.DataFrame) -> pd.DataFrame:
    """Score, rows and positives per bin of the labeled reference: its distinct scores, or bins
    of equal rank by percent_rank (rank of the first tie − 1) / (n − 1)."""
    labeled = reference[reference.converted.notna() & reference.score.notna()]
    frame = pd.DataFrame({"score": labeled.score.to_numpy(), "y": labeled.converted.astype(int).to_numpy()})
    if frame.score.nunique() <= MAX_BINS:
        key = frame.score.to_numpy()
    else:
        percent_rank = (rankdata(frame.score, method="min") - 1) / (len(frame) - 1)
        key = np.minimum(np.floor(percent_rank * MAX_BINS), MAX_BINS - 1)
    bins = frame.groupby(key).agg(score=("score", "mean"), rows=("y", "size"), positives=("y", "sum"))
    return bins.reset_index(drop=True).sort_values("score")


def calibrator(reference: pd.DataFrame) -> IsotonicRegression:
    bins = reference_bins(reference)
    model = IsotonicRegression(out_of_bounds="clip")
    return model.fit(bins.score, bins.positives / bins.rows, sample_weight=bins.rows)


def expected_metric(rows: pd.DataFrame, model: IsotonicRegression, metric: str) -> float | None:
    scores = rows.score.to_numpy(dtype=float)
    p = model.predict(scores)
    if metric == "roc_auc":
        if p.sum() == 0 or (1 - p).sum() == 0:
            return None
        doubled = np.concatenate([np.ones(len(p)), np.zeros(len(p))])
        return roc_auc_score(doubled, np.concatenate([scores, scores]), sample_weight=np.concatenate([p, 1 - p]))
    predicted = (scores >= THRESHOLD).astype(float)
    tp, fp = np.sum(p * predicted), np.sum((1 - p) * predicted)
    fn, tn = np.sum(p * (1 - predicted)), np.sum((1 - p) * (1 - predicted))
    numerator, denominator = {
        "precision": (tp, tp + fp), "recall": (tp, tp + fn), "specificity": (tn, tn + fp),
        "accuracy": (tp + tn, len(p)), "f1": (2 * tp, 2 * tp + fp + fn),
    }[metric]
    return None if denominator == 0 else numerator / denominator


def assert_matches(frame: pd.DataFrame, data: pd.DataFrame, windows: list[pd.Timestamp]) -> None:
    model = calibrator(data[data.ts < START + 2 * DAY])
    checked = 0
    for metric in METRICS:
        mine = frame[frame.check_name == f"estimated_performance_{metric}"]
        assert set(mine.check_type) == {"estimated_performance"}
        for window in windows:
            for segment in (None, "north", "south", "__null__"):
                assert_value(result(mine, window, segment), expected_metric(rows_of(data, window, segment), model, metric))
                checked += 1
    assert checked == len(METRICS) * len(windows) * 4


# -- DuckDB -----------------------------------------------------------------------------------------


def test_pool_adjacent_violators_equals_sklearn():
    rng = np.random.default_rng(3)
    rows = rng.integers(1, 30, 200)
    positives = rng.binomial(rows, np.clip(np.linspace(0.1, 0.9, 200) + rng.normal(0, 0.2, 200), 0, 1))
    fitted = IsotonicRegression().fit(np.arange(200), positives / rows, sample_weight=rows).predict(np.arange(200))
    np.testing.assert_allclose(pool_adjacent_violators(positives, rows), fitted, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scenario", ["grid", "continuous"])
def test_estimates_equal_an_independent_implementation(tmp_path, scenario):
    rng = np.random.default_rng(11)
    data = grid_data(rng) if scenario == "grid" else continuous_data(rng)
    windows = [START + d * DAY for d in ((2, 3, 4) if scenario == "grid" else (2,))]
    root = make_project(tmp_path, MONITOR % ("leads", CHECKS), {"leads": data})
    summary = api.backfill(windows[0], windows[-1] + DAY, project=root, at=windows[-1] + 2 * DAY)
    assert [o.status for o in summary.outcomes] == ["success"] * len(windows), [o.error for o in summary.outcomes]
    assert_matches(results(root), data, windows)


def test_the_estimate_joins_the_one_checks_query_and_reports_its_error(tmp_path):
    rng = np.random.default_rng(5)
    data = grid_data(rng)
    plain = (MONITOR % ("leads", "  - performance: {metric: accuracy}")).replace("name: leads", "name: plain")
    both = (MONITOR % ("leads", CHECKS + "\n  - performance: {metric: accuracy}")).replace("name: leads", "name: both")
    root = make_project(tmp_path, [plain, both], {"leads": data})
    api.run(root, at=START + 3 * DAY + pd.Timedelta(hours=1))  # learns the profiles (and calibration)
    summary = api.run(root, at=START + 4 * DAY + pd.Timedelta(hours=1))
    queries = {o.monitor: o.queries for o in summary.outcomes}
    assert queries["plain"] == queries["both"], queries  # no query of its own per window
    frame = results(root, check_name="estimated_performance_precision")
    row = result(frame, START + 3 * DAY)
    # binomial: sqrt(p(1 − p) / (TP + FP)), with the expected cells the details carry
    d = row.details
    assert math.isclose(row.std_error, math.sqrt(row.value * (1 - row.value) / (d["expected_tp"] + d["expected_fp"])), rel_tol=1e-12)


def test_without_labeled_reference_rows_the_estimate_says_why(tmp_path):
    rng = np.random.default_rng(5)
    data = grid_data(rng).assign(converted=pd.array([pd.NA] * 2600, dtype="Int64"))
    root = make_project(tmp_path, MONITOR % ("leads", CHECKS), {"leads": data})
    api.run(root, at=START + 3 * DAY + pd.Timedelta(hours=1))
    row = result(results(root, check_name="estimated_performance_f1"), START + 2 * DAY)
    assert (row.status, row.reason) == ("insufficient_data", "no_reference"), row.details


# -- PostgreSQL ---------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_estimates_equal_an_independent_implementation(tmp_path):
    url = os.environ.get("DRIFTLINE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set DRIFTLINE_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run on PostgreSQL")
    import ibis

    rng = np.random.default_rng(11)
    data = grid_data(rng)
    suffix = uuid.uuid4().hex[:8]
    table, schema = f"leads_{suffix}", f"driftline_{suffix}"
    con = ibis.connect(url)
    con.create_table(table, data.assign(ts=data.ts.astype("datetime64[us]")))
    root = make_project(tmp_path, MONITOR % (table, CHECKS), connection=url, results_schema=schema)
    try:
        summary = api.backfill(START + 2 * DAY, START + 5 * DAY, project=root, at=START + 6 * DAY)
        assert [o.status for o in summary.outcomes] == ["success"] * 3, [o.error for o in summary.outcomes]
        assert_matches(results(root), data, [START + d * DAY for d in (2, 3, 4)])
    finally:
        con.drop_table(table, force=True)
        con.raw_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model, words", [
    ("{task: binary_classification, prediction: score, label: converted}", "set model.score"),
    ("{task: regression, prediction: score, label: converted}", "binary_classification"),
    ("{task: binary_classification, score: score}", "set model.label"),
    ("{task: binary_classification, score: score, label: converted}", "metric"),
])
def test_a_check_that_cannot_be_estimated_is_a_located_error(tmp_path, model, words):
    from driftline.errors import ConfigError

    rng = np.random.default_rng(5)
    metric = "log_loss" if words == "metric" else "precision"
    monitor = (MONITOR % ("leads", f"  - estimated_performance: {{metric: {metric}}}")).replace(
        "{task: binary_classification, score: score, label: converted, threshold: 0.5}", model)
    root = make_project(tmp_path, monitor, {"leads": grid_data(rng)})
    with pytest.raises(ConfigError) as caught:
        api.validate(root)
    assert words in str(caught.value) and "m0.yml:" in str(caught.value), str(caught.value)


# -- the report ----------------------------------------------------------------------------------------


def test_the_report_shows_estimated_and_realized_side_by_side(tmp_path):
    from driftline.report_command import write_report
    from driftline.reporting.svg import format_number

    rng = np.random.default_rng(5)
    data = pd.concat([grid_data(rng), day(rng, 5, 400, rng.integers(2, 43, 400) / 45)], ignore_index=True)
    checks = "  - estimated_performance: {metric: precision}\n  - performance: {metric: precision}"
    root = make_project(tmp_path, MONITOR % ("leads", checks), {"leads": data})
    api.backfill(START + 2 * DAY, START + 6 * DAY, project=root, at=START + 7 * DAY)
    html = write_report(root, tmp_path / "report.html").read_text()
    table = html[html.index("<h4>Estimated and realized precision"):]
    table = table[: table.index("</table>")]
    frame = results(root)
    estimated = result(frame[frame.check_type == "estimated_performance"], START + 5 * DAY)
    realized = result(frame[frame.check_type == "performance"], START + 5 * DAY)
    row = table[table.index(f"<td>{format_number(estimated.value)}</td>"):]
    assert f"<td>{format_number(realized.value)}</td>" in row[: row.index("</tr>")]
    assert "realized (performance_precision)" in html


# -- labels that arrive late ----------------------------------------------------------------------------


LATE = """
name: late
source: {table: scored, timestamp: ts}
model:
  task: binary_classification
  score: score
  threshold: 0.5
  labels: {table: outcomes, key: lead_id, column: converted, delay: 3d}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-03}
min_rows: 1
checks:
  - estimated_performance: {metric: accuracy, warn: {drop: 0.05}}
"""


def test_the_calibration_and_the_reference_value_wait_for_the_reference_labels(tmp_path):
    rng = np.random.default_rng(9)
    data = grid_data(rng)
    data.insert(0, "lead_id", np.arange(len(data)))
    outcomes = data[["lead_id", "converted"]].dropna()
    root = make_project(tmp_path, LATE, {"scored": data.drop(columns="converted"), "outcomes": outcomes})

    api.run(root, at=START + 3 * DAY + pd.Timedelta(hours=1))  # the reference's labels: complete on day 5
    early = result(results(root, check_name="estimated_performance_accuracy"), START + 2 * DAY)
    assert (early.status, early.reason) == ("insufficient_data", "no_reference")

    api.run(root, at=START + 5 * DAY + pd.Timedelta(hours=1))
    later = results(root, check_name="estimated_performance_accuracy")
    model = calibrator(data[data.ts < START + 2 * DAY])
    row = result(later, START + 4 * DAY)
    assert_value(row, expected_metric(rows_of(data, START + 4 * DAY, None), model, "accuracy"))
    reference = expected_metric(data[data.ts < START + 2 * DAY], model, "accuracy")
    assert row.details["reference_value"] == pytest.approx(reference, abs=1e-9)


# -- Spark ---------------------------------------------------------------------------------------------


@pytest.mark.spark
def test_spark_estimates_equal_an_independent_implementation(tmp_path):
    import shutil

    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'driftline[spark]')")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java and no `java` is on the PATH")
    from pyspark.sql import SparkSession

    from driftline import connect

    rng = np.random.default_rng(11)
    data = grid_data(rng)
    table = f"leads_{uuid.uuid4().hex[:8]}"
    started_here = SparkSession.getActiveSession() is None
    # One Spark session per process, its warehouse fixed when it starts: attach to one that an
    # earlier test left running rather than ask for another warehouse.
    url = "pyspark://local" if started_here else "pyspark://"
    root = make_project(tmp_path, MONITOR % (table, CHECKS), connection=url, results_schema=f"driftline_{table}")
    connect.connect(url, root)
    spark = SparkSession.getActiveSession()
    import pyarrow as pa

    types = {"ts": pa.timestamp("us"), "region": pa.string(), "score": pa.float64(), "converted": pa.int64()}
    rows = pa.table({name: pa.array(data[name].astype(object).where(data[name].notna(), None).tolist(), type=t) for name, t in types.items()})
    spark.createDataFrame(rows).write.saveAsTable(table)
    try:
        summary = api.backfill(START + 2 * DAY, START + 4 * DAY, project=root, at=START + 6 * DAY)
        assert [o.status for o in summary.outcomes] == ["success"] * 2, [o.error for o in summary.outcomes]
        assert_matches(results(root), data, [START + d * DAY for d in (2, 3)])
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {table}")
        if started_here:
            spark.stop()


def test_thresholds_read_an_estimate_as_the_metric_it_estimates(tmp_path):
    """A plain number breaches below, as for the realized metric (lower is worse); the
    explicit forms and a relative drop judge it like any value."""
    rng = np.random.default_rng(5)
    checks = "\n".join([
        "  - estimated_performance: {name: plain, metric: precision, warn: 0.99}",
        "  - estimated_performance: {name: outside, metric: recall, fail: {outside: [0.0, 0.01]}}",
        "  - estimated_performance: {name: drop, metric: accuracy, warn: {drop: 0.5}}",
    ])
    root = make_project(tmp_path, MONITOR % ("leads", checks), {"leads": grid_data(rng)})
    api.run(root, at=START + 3 * DAY + pd.Timedelta(hours=1))
    frame = results(root)
    assert result(frame[frame.check_name == "plain"], START + 2 * DAY).status == "warn"
    assert result(frame[frame.check_name == "outside"], START + 2 * DAY).status == "fail"
    drop = result(frame[frame.check_name == "drop"], START + 2 * DAY)
    assert drop.status == "ok" and drop.reference_value is not None and not pd.isna(drop.reference_value)


def test_knots_a_hair_apart_keep_their_digits(tmp_path):
    """Two reference scores 1e-12 apart with different rates: the slope between them is 1e11,
    where intercept + slope · score would lose every digit; the estimate still equals sklearn's."""
    rng = np.random.default_rng(21)
    close = np.array([0.3, 0.5, 0.5 + 1e-12, 0.8])
    reference = day(rng, 0, 800, close[rng.integers(0, 4, 800)])
    reference["converted"] = pd.array(np.where(reference.score == 0.5, 0, np.where(reference.score > 0.5, 1, rng.integers(0, 2, 800))), dtype="Int64")
    current = day(rng, 2, 300, np.concatenate([np.full(100, 0.5 + 4e-13), rng.uniform(0.2, 0.9, 200)]), labeled=False)
    data = pd.concat([reference, current], ignore_index=True)
    root = make_project(tmp_path, MONITOR % ("leads", CHECKS), {"leads": data})
    api.run(root, at=START + 3 * DAY + pd.Timedelta(hours=1))
    frame, model = results(root), calibrator(reference)
    for metric in METRICS:
        row = result(frame[frame.check_name == f"estimated_performance_{metric}"], START + 2 * DAY)
        assert_value(row, expected_metric(rows_of(data, START + 2 * DAY, None), model, metric))


def _curve(knots: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A strictly increasing curve of ``knots`` points (every point a knot), and scores at them,
    one ulp either side of them, and at random, beyond the ends too."""
    rng = np.random.default_rng(knots)
    xs = np.sort(rng.choice(np.arange(1, 10_000), knots, replace=False)) / 10_000
    ys = np.sort(rng.uniform(0, 1, knots))
    scores = np.concatenate([xs, np.nextafter(xs, 0), np.nextafter(xs, 1), rng.uniform(-0.1, 1.1, 500)])
    return xs, ys, scores


@pytest.mark.parametrize("knots", [1, 2, 3, 7, 8, 9, 63, 64, 65, 214, 1000])
def test_the_calibrated_probability_is_numpys_interpolation(knots):
    """The calibrated probability in SQL against numpy's ``interp`` (which scikit-learn's
    isotonic predict with clip is), double for double: at the knots themselves, a hair either
    side of them, beyond the ends, and at random; the knot counts straddle the search tree's
    powers of two."""
    xs, ys, scores = _curve(knots)
    calibration = Calibration(tuple(xs), tuple(ys), (1,) * knots, (0,) * knots)
    con = dialects.use_driftline_compiler(ibis.duckdb.connect())
    rows = ibis.memtable(pd.DataFrame({SCORE: scores, "row": np.arange(len(scores))}))
    frame = con.execute(with_calibrated(rows, calibration).order_by("row"))
    np.testing.assert_array_equal(frame[PROBABILITY], np.interp(scores, xs, ys))


@pytest.mark.parametrize("dialect", dialects.DIALECTS)
def test_the_calibrated_probability_compiles_for_every_dialect(dialect):
    """The search and the line are written as text, each dialect's arrays in its own syntax;
    every dialect's parser reads the statement back."""
    import sqlglot

    xs, ys, _ = _curve(214)
    calibration = Calibration(tuple(xs), tuple(ys), (1,) * len(xs), (0,) * len(xs))
    rows = ibis.table({SCORE: "float64", "row": "int64"}, name="scored")
    sql = dialects.to_sql(with_calibrated(rows, calibration), dialect)
    read = {"pyspark": "spark"}.get(dialect, dialect)
    (statement,) = sqlglot.parse(sql, read=read)
    assert statement.find(sqlglot.exp.Case) is not None


def test_postgres_reads_the_calibrated_probability_as_numpy_does():
    """PostgreSQL reads the knots' ``0.1e0`` as exact NUMERICs, cast to an array of doubles:
    the probability is still numpy's, double for double."""
    url = os.environ.get("DRIFTLINE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set DRIFTLINE_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run on PostgreSQL")
    from driftline import connect

    xs, ys, scores = _curve(214)
    calibration = Calibration(tuple(xs), tuple(ys), (1,) * len(xs), (0,) * len(xs))
    con = connect.connect(url)
    table = f"scores_{uuid.uuid4().hex[:8]}"
    con.create_table(table, pd.DataFrame({SCORE: scores, "row": np.arange(len(scores))}), temp=True)
    try:
        frame = con.execute(with_calibrated(con.table(table), calibration).order_by("row"))
    finally:
        con.disconnect()
    np.testing.assert_array_equal(frame[PROBABILITY], np.interp(scores, xs, ys))
