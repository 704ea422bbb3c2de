"""Model performance computed in the warehouse, checked against scikit-learn on generated data.

Every scenario runs a real project through ``driftline.api`` on DuckDB and reads
``driftline_results`` back; each stored value (overall and per segment) must equal
scikit-learn's on the same rows to 1e-9, and an undefined metric (a zero denominator, one class
only, an empty window) must be null with status insufficient_data — never 0.
"""

from __future__ import annotations

import math
import os
import uuid
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as sk

from driftline import api
from model_projects import DAY, START, assert_value, make_project, result, results, rows_of, segment_of, sql, value_of, write_tables

BINARY_METRICS = [
    "accuracy", "precision", "recall", "f1", "fpr", "specificity", "roc_auc",
    "log_loss", "brier", "positive_rate", "label_rate",
]
REGRESSION_METRICS = ["mae", "rmse", "mape", "r2", "mean_error"]
MULTICLASS_METRICS = ["accuracy", "macro_precision", "macro_recall", "macro_f1"]


# -- data --------------------------------------------------------------------------------------------


def timestamps(rng, day: int, n: int) -> pd.Series:
    return START + day * DAY + pd.to_timedelta(rng.uniform(0, 86399, n).round(), unit="s")


def regions(rng, n: int) -> list:
    values = list(rng.choice(["north", "south"], n))
    for i in rng.choice(n, size=min(n, 4), replace=False):
        values[i] = None  # a null segment value is its own segment, "__null__"
    return values


def binary_day(rng, day: int, n: int, *, scores=None, labels=None, region=None) -> pd.DataFrame:
    """Scores on a 1/20 grid (many ties), labels drawn from them, ~10% of labels missing."""
    score = rng.integers(1, 20, n) / 20 if scores is None else np.asarray(scores, dtype=float)
    label = (rng.uniform(size=n) < score).astype(int) if labels is None else np.asarray(labels)
    converted = pd.array(label, dtype="Int64")
    converted[rng.uniform(size=n) < 0.1] = pd.NA
    return pd.DataFrame({
        "ts": timestamps(rng, day, n),
        "region": regions(rng, n) if region is None else [region] * n,
        "score": score,
        "converted": converted,
    })


@pytest.fixture(scope="module")
def binary_data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    days = [
        binary_day(rng, 0, 300), binary_day(rng, 1, 300),  # the reference
        binary_day(rng, 2, 400), binary_day(rng, 2, 3, region="tiny"),  # normal, and a tiny segment
        binary_day(rng, 3, 200, labels=np.ones(200, dtype=int)),  # one class only
        binary_day(rng, 4, 200, scores=rng.integers(1, 10, 200) / 20),  # nothing predicted positive
        binary_day(rng, 5, 200, scores=rng.choice([0.0, 1.0, 0.3, 0.7], 200)),  # log-loss clipping
        # day 6: no rows at all
    ]
    return pd.concat(days, ignore_index=True)


BINARY_MONITOR = """
name: leads
source: {table: leads, timestamp: ts}
model: {task: binary_classification, score: score, label: converted, threshold: 0.5}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-03}
segments: [region]
min_rows: 1
checks:
%s
  - performance: {name: auc_vs_reference, metric: roc_auc, warn: {drop: 0.02}}
"""


@pytest.fixture(scope="module")
def binary_results(tmp_path_factory, binary_data) -> pd.DataFrame:
    checks = "\n".join(f"  - performance: {{metric: {m}}}" for m in BINARY_METRICS)
    root = make_project(tmp_path_factory.mktemp("binary"), BINARY_MONITOR % checks, {"leads": binary_data})
    summary = api.backfill(START + 2 * DAY, START + 7 * DAY, project=root, at=START + 8 * DAY)
    assert [o.status for o in summary.outcomes] == ["success"] * 5, [o.error for o in summary.outcomes]
    return results(root)


# -- expected values ---------------------------------------------------------------------------------


def sklearn_or_none(function, *args, **kwargs) -> float | None:
    """scikit-learn's value; None where it is undefined (an error or NaN)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(function(*args, **kwargs))
    except ValueError:
        return None
    return None if math.isnan(value) else value


def numpy_log_loss(y: np.ndarray, s: np.ndarray) -> float | None:
    """Log loss with scores clipped to [1e-15, 1 - 1e-15], as SPEC §6 defines it."""
    if len(y) == 0:
        return None
    p = np.clip(s, 1e-15, 1 - 1e-15)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def ratio(a: float, b: float) -> float | None:
    return None if b == 0 else a / b


def expected_binary(rows: pd.DataFrame, metric: str) -> float | None:
    predicted_all = (rows.score >= 0.5).astype(int).to_numpy()
    labeled = rows[rows.converted.notna()]
    y = labeled.converted.astype(int).to_numpy()
    s = labeled.score.to_numpy()
    p = (s >= 0.5).astype(int)
    cm = sk.confusion_matrix(y, p, labels=[0, 1]) if len(y) else np.zeros((2, 2), dtype=int)
    (tn, fp), (fn, tp) = cm
    if metric == "positive_rate":
        return float(predicted_all.mean()) if len(rows) else None
    if len(y) == 0:
        return None
    extreme = bool(np.any((s < 1e-15) | (s > 1 - 1e-15)))
    return {
        "accuracy": lambda: sklearn_or_none(sk.accuracy_score, y, p),
        "precision": lambda: sklearn_or_none(sk.precision_score, y, p, zero_division=np.nan),
        "recall": lambda: sklearn_or_none(sk.recall_score, y, p, zero_division=np.nan),
        "f1": lambda: sklearn_or_none(sk.f1_score, y, p, zero_division=np.nan),
        "fpr": lambda: ratio(fp, fp + tn),
        "specificity": lambda: ratio(tn, fp + tn),
        "roc_auc": lambda: sklearn_or_none(sk.roc_auc_score, y, s),
        # sklearn clips at the float64 epsilon, SPEC §6 at 1e-15: they differ only on 0 and 1 scores
        "log_loss": lambda: numpy_log_loss(y, s) if extreme else sklearn_or_none(sk.log_loss, y, s, labels=[0, 1]),
        "brier": lambda: sklearn_or_none(sk.brier_score_loss, y, s, pos_label=1),
        "label_rate": lambda: float(y.mean()),
    }[metric]()


# -- binary classification -------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", BINARY_METRICS)
def test_binary_metric_equals_sklearn_overall_and_per_segment(binary_results, binary_data, metric):
    rows = binary_results[binary_results.check_name == f"performance_{metric}"]
    assert len(rows) >= 5 * 3  # five windows, overall + at least two segments each
    for row in rows.itertuples():
        expected = expected_binary(rows_of(binary_data, row.window_start, segment_of(row)), metric)
        assert_value(pd.Series(row._asdict()), expected)


def test_undefined_metrics_are_null_not_zero(binary_results):
    one_class, no_positive_predictions, empty = START + 3 * DAY, START + 4 * DAY, START + 6 * DAY
    by_metric = lambda m: binary_results[binary_results.check_name == f"performance_{m}"]  # noqa: E731
    for metric in ("roc_auc", "fpr", "specificity"):
        row = result(by_metric(metric), one_class)
        assert row.status == "insufficient_data" and value_of(row) is None
        assert row.reason == "zero_denominator" and "undefined" in row.details["explanation"]
    assert value_of(result(by_metric("precision"), no_positive_predictions)) is None
    assert value_of(result(by_metric("f1"), no_positive_predictions)) == 0.0  # 2·0 / (0 + 0 + fn) is defined
    assert result(by_metric("accuracy"), empty).reason == "empty_window"


def test_unlabeled_rows_are_counted(binary_results, binary_data):
    window = START + 2 * DAY
    row = result(binary_results[binary_results.check_name == "performance_accuracy"], window)
    rows = rows_of(binary_data, window, None)
    assert row.details["unlabeled_rows"] == int(rows.converted.isna().sum()) > 0
    assert row.n_current == int(rows.converted.notna().sum())


def test_tiny_segment_below_min_rows_is_insufficient(tmp_path, binary_data):
    monitor = BINARY_MONITOR.replace("min_rows: 1", "min_rows: 50") % "  - performance: {metric: accuracy}"
    root = make_project(tmp_path, monitor, {"leads": binary_data})
    api.run(root, at=START + 3 * DAY + pd.Timedelta(hours=1))
    tiny = result(results(root, check_name="performance_accuracy"), START + 2 * DAY, "tiny")
    assert tiny.status == "insufficient_data" and value_of(tiny) is None
    assert tiny.reason == "min_rows" and tiny.details["explanation"].startswith("not enough rows")


def test_labels_other_than_0_1_and_scores_outside_0_1_are_not_measured(tmp_path):
    """A label 2 or -1 is no binary label and a score of 1.4 no probability: the metrics they
    would distort say so instead of giving a number (scikit-learn raises on both); the others
    are measured as usual."""
    rng = np.random.default_rng(12)
    day = binary_day(rng, 2, 300)
    bad_labels, bad_scores = day.copy(), day.copy()
    bad_labels.loc[:4, "converted"] = [2, -1, 2, 3, 2]
    bad_scores.loc[:2, "score"] = [1.4, -0.2, 1.0001]
    checks = "\n".join(f"  - performance: {{metric: {m}}}" for m in ("accuracy", "roc_auc", "brier", "log_loss", "positive_rate"))
    for name, data, unusable in (
        ("labels", bad_labels, {"accuracy": "5 labels are neither 0 nor 1", "roc_auc": "5 labels are neither 0 nor 1",
                                "brier": "5 labels are neither 0 nor 1", "log_loss": "5 labels are neither 0 nor 1"}),
        ("scores", bad_scores, {"brier": "3 scores lie outside [0, 1]", "log_loss": "3 scores lie outside [0, 1]"}),
    ):
        root = make_project(tmp_path / name, BINARY_MONITOR % checks, {"leads": pd.concat([binary_day(rng, 0, 300), data])})
        api.run(root, at=START + 3 * DAY + pd.Timedelta(hours=1), notify=False)
        frame = results(root)
        for metric in ("accuracy", "roc_auc", "brier", "log_loss", "positive_rate"):
            row = result(frame[frame.check_name == f"performance_{metric}"], START + 2 * DAY)
            if metric in unusable:
                assert row.status == "insufficient_data" and value_of(row) is None
                assert row.reason == ("bad_labels" if name == "labels" else "bad_scores")
                assert row.details["explanation"].startswith(unusable[metric])
            else:
                assert value_of(row) is not None, (name, metric)
        positive_rate = result(frame[frame.check_name == "performance_positive_rate"], START + 2 * DAY)
        assert value_of(positive_rate) == pytest.approx(float((data.score >= 0.5).mean()), abs=1e-12)


def test_drop_threshold_compares_with_the_reference_value(binary_results, binary_data):
    reference = binary_data[(binary_data.ts < START + 2 * DAY) & binary_data.converted.notna()]
    checked = binary_results[binary_results.check_name == "auc_vs_reference"]
    for segment in (None, "north", "south"):
        ref_rows = reference if segment is None else reference[reference.region == segment]
        expected_reference = sk.roc_auc_score(ref_rows.converted.astype(int), ref_rows.score)
        row = result(checked, START + 2 * DAY, segment)
        assert row.details["reference_value"] == pytest.approx(expected_reference, abs=1e-9)
        assert row.n_reference == len(ref_rows)  # the labeled, scored rows it was measured on
        dropped = expected_reference - value_of(row) > 0.02
        assert row.status == ("warn" if dropped else "ok")
        assert row.warn_threshold == "{drop: 0.02}"


def test_a_relative_threshold_without_a_reference_value_says_why(tmp_path):
    """One class only in the reference: its roc_auc is undefined, so a {drop: x} threshold has
    nothing to compare with; the window's value is kept, its status is insufficient_data and
    details.reason says why."""
    rng = np.random.default_rng(15)
    one_class = [binary_day(rng, d, 200, labels=np.ones(200, dtype=int)) for d in (0, 1)]
    data = pd.concat([*one_class, binary_day(rng, 2, 300)], ignore_index=True)
    root = make_project(tmp_path, BINARY_MONITOR % "  - performance: {metric: accuracy}", {"leads": data})
    api.run(root, at=START + 3 * DAY + pd.Timedelta(hours=1), notify=False)
    row = result(results(root, check_name="auc_vs_reference"), START + 2 * DAY)
    day = data[(data.ts >= START + 2 * DAY) & data.converted.notna()]
    assert_value(row, sk.roc_auc_score(day.converted.astype(int), day.score))
    assert row.status == "insufficient_data" and row.details.get("reference_value") is None
    assert row.reason == "no_reference" and row.details["explanation"].startswith("no reference value to compare with")


# -- regression and multiclass --------------------------------------------------------------------------


NAN_MARKER = -12345.0
REGRESSION_MONITOR = """
name: prices
source: {table: prices, timestamp: ts}
model: {task: regression, prediction: predicted, label: actual}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-02}
segments: [region]
min_rows: 1
checks:
%s
"""


def regression_day(rng, day: int, n: int, *, constant=None, zeros=0) -> pd.DataFrame:
    actual = rng.normal(100, 15, n) if constant is None else np.full(n, float(constant))
    actual[:zeros] = 0.0
    predicted = actual + rng.normal(2, 10, n)
    frame = pd.DataFrame({"ts": timestamps(rng, day, n), "region": regions(rng, n), "actual": actual, "predicted": predicted})
    frame.loc[frame.sample(frac=0.1, random_state=day).index, "actual"] = np.nan  # a missing label
    frame.loc[frame.sample(n=3, random_state=day + 1).index, "actual"] = NAN_MARKER  # NaN in the table
    return frame


@pytest.fixture(scope="module")
def regression_case(tmp_path_factory):
    rng = np.random.default_rng(11)
    data = pd.concat(
        [regression_day(rng, 0, 200), regression_day(rng, 1, 300, zeros=5), regression_day(rng, 2, 50, constant=42.0)],
        ignore_index=True,
    )
    checks = "\n".join(f"  - performance: {{metric: {m}}}" for m in REGRESSION_METRICS)
    root = make_project(tmp_path_factory.mktemp("regression"), REGRESSION_MONITOR % checks, {"prices": data})
    sql(root, f"UPDATE prices SET actual = 'NaN'::DOUBLE WHERE actual = {NAN_MARKER}")
    data.loc[data.actual == NAN_MARKER, "actual"] = np.nan  # NaN reads as null: not a label
    api.backfill(START + DAY, START + 3 * DAY, project=root, at=START + 4 * DAY)
    return results(root), data


def expected_regression(rows: pd.DataFrame, metric: str) -> float | None:
    rows = rows[rows.actual.notna()]
    y, yhat = rows.actual.to_numpy(), rows.predicted.to_numpy()
    if len(y) == 0:
        return None
    if metric == "r2":
        return None if np.all(y == y[0]) else sk.r2_score(y, yhat)  # constant labels: 0/0, null
    return {
        "mae": lambda: sk.mean_absolute_error(y, yhat),
        "rmse": lambda: sk.root_mean_squared_error(y, yhat),
        "mape": lambda: sk.mean_absolute_percentage_error(y, yhat),
        "mean_error": lambda: float(np.mean(yhat - y)),
    }[metric]()


@pytest.mark.parametrize("metric", REGRESSION_METRICS)
def test_regression_metric_equals_sklearn(regression_case, metric):
    frame, data = regression_case
    rows = frame[frame.check_name == f"performance_{metric}"]
    assert len(rows) >= 2 * 3
    for row in rows.itertuples():
        window = rows_of(data, row.window_start, segment_of(row))
        assert_value(pd.Series(row._asdict()), expected_regression(window, metric))


def expected_regression_error(rows: pd.DataFrame, metric: str) -> float:
    """Each regression metric's standard error from the rows themselves: scipy's standard error
    of the mean of the per-row values; rmse = sqrt(mean e²) by the delta method."""
    rows = rows[rows.actual.notna()]
    y, yhat = rows.actual.to_numpy(), rows.predicted.to_numpy()
    e = yhat - y
    if metric == "rmse":
        return float(stats.sem(e**2)) / (2 * sk.root_mean_squared_error(y, yhat))
    per_row = {"mae": np.abs(e), "mean_error": e, "mape": np.abs(e) / np.maximum(np.abs(y), np.finfo(float).eps)}
    return float(stats.sem(per_row[metric]))


@pytest.mark.parametrize("metric", ["mae", "mean_error", "rmse", "mape"])
def test_regression_std_error_equals_scipy(regression_case, metric):
    frame, data = regression_case
    rows = frame[frame.check_name == f"performance_{metric}"]
    assert len(rows) >= 2 * 3
    for row in rows.itertuples():
        window = rows_of(data, row.window_start, segment_of(row))
        assert row.std_error == pytest.approx(expected_regression_error(window, metric), rel=1e-9), (row.window_start, segment_of(row))


def test_r2_has_no_std_error(regression_case):
    frame, _ = regression_case
    assert frame[frame.check_name == "performance_r2"].std_error.isna().all()


MULTICLASS_MONITOR = """
name: intents
source: {table: intents, timestamp: ts}
model: {task: multiclass_classification, prediction: predicted, label: actual}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-02}
segments: [region]
min_rows: 1
checks:
%s
"""


def multiclass_day(rng, day: int, n: int, *, never_predict=None) -> pd.DataFrame:
    actual = rng.choice(["billing", "cancel", "upgrade"], n, p=[0.5, 0.3, 0.2])
    wrong = rng.choice(["billing", "cancel", "upgrade"], n)
    predicted = np.where(rng.uniform(size=n) < 0.7, actual, wrong)
    if never_predict:
        predicted = np.where(predicted == never_predict, "billing", predicted)
    frame = pd.DataFrame({"ts": timestamps(rng, day, n), "region": regions(rng, n), "actual": actual, "predicted": predicted})
    frame.loc[frame.sample(frac=0.05, random_state=day).index, "actual"] = None
    return frame


@pytest.fixture(scope="module")
def multiclass_case(tmp_path_factory):
    rng = np.random.default_rng(5)
    data = pd.concat([multiclass_day(rng, 0, 200), multiclass_day(rng, 1, 300), multiclass_day(rng, 2, 200, never_predict="upgrade")], ignore_index=True)
    checks = "\n".join(f"  - performance: {{metric: {m}}}" for m in MULTICLASS_METRICS)
    root = make_project(tmp_path_factory.mktemp("multiclass"), MULTICLASS_MONITOR % checks, {"intents": data})
    api.backfill(START + DAY, START + 3 * DAY, project=root, at=START + 4 * DAY)
    return results(root), data


def expected_multiclass(rows: pd.DataFrame, metric: str) -> float | None:
    rows = rows[rows.actual.notna()]
    y, p = rows.actual.to_numpy(), rows.predicted.to_numpy()
    if len(y) == 0:
        return None
    return {
        "accuracy": lambda: sk.accuracy_score(y, p),
        # A class never predicted leaves its precision undefined: the macro average is null.
        "macro_precision": lambda: None if set(y) - set(p) else sk.precision_score(y, p, average="macro"),
        "macro_recall": lambda: None if set(p) - set(y) else sk.recall_score(y, p, average="macro"),
        "macro_f1": lambda: sk.f1_score(y, p, average="macro"),
    }[metric]()


@pytest.mark.parametrize("metric", MULTICLASS_METRICS)
def test_multiclass_metric_equals_sklearn(multiclass_case, metric):
    frame, data = multiclass_case
    rows = frame[frame.check_name == f"performance_{metric}"]
    assert len(rows) >= 2 * 3
    for row in rows.itertuples():
        window = rows_of(data, row.window_start, segment_of(row))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert_value(pd.Series(row._asdict()), expected_multiclass(window, metric))


def test_never_predicted_class_makes_macro_precision_null(multiclass_case):
    frame, _ = multiclass_case
    row = result(frame[frame.check_name == "performance_macro_precision"], START + 2 * DAY)
    assert row.status == "insufficient_data" and value_of(row) is None


# -- late labels ------------------------------------------------------------------------------------------


LATE_MONITOR = """
name: late
source: {table: scored, timestamp: ts}
model:
  task: binary_classification
  score: score
  labels: {table: outcomes, key: lead_id, column: converted, delay: 2d}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-03}
min_rows: 1
checks:
  - performance: {metric: roc_auc, warn: {drop: 0.5}}
  - performance: {metric: accuracy}
  - performance: {metric: positive_rate}
"""


def late_data(rng):
    days = [binary_day(rng, d, 150) for d in range(5)]
    scored = pd.concat(days, ignore_index=True)
    scored.insert(0, "lead_id", np.arange(len(scored)))
    outcomes = scored[["lead_id", "converted"]].dropna()
    return scored.drop(columns="converted"), outcomes, scored


def test_late_labels_wait_for_maturity_and_a_later_run_fills_the_window_in(tmp_path):
    scored, outcomes, truth = late_data(np.random.default_rng(3))
    window = START + 2 * DAY
    early = outcomes[outcomes.lead_id.isin(truth.lead_id[truth.ts < window])]
    root = make_project(tmp_path, LATE_MONITOR, {"scored": scored, "outcomes": early})

    api.run(root, at=window + DAY + pd.Timedelta(hours=1))  # day 2 is due, its labels are 2d away
    first = results(root)
    for name in ("performance_accuracy", "performance_roc_auc"):
        row = result(first[first.check_name == name], window)
        assert row.status == "insufficient_data" and value_of(row) is None
        assert row.reason == "labels_not_mature"
        assert row.details["mature_at"] == (window + 3 * DAY).isoformat()
    positive_rate = result(first[first.check_name == "performance_positive_rate"], window)
    assert value_of(positive_rate) is not None  # predictions need no labels

    write_tables(root, {"outcomes": outcomes})  # the labels arrive
    summary = api.run(root, at=window + 3 * DAY + pd.Timedelta(hours=1))
    assert window in [o.window.start for o in summary.outcomes]  # re-evaluated, with days 3 and 4
    later = results(root)
    rows = truth[(truth.ts >= window) & (truth.ts < window + DAY)]
    labeled = rows[rows.converted.notna()]
    accuracy = result(later[later.check_name == "performance_accuracy"], window)
    assert_value(accuracy, sk.accuracy_score(labeled.converted.astype(int), labeled.score >= 0.5))
    assert accuracy.details["unlabeled_rows"] == len(rows) - len(labeled) > 0
    auc = result(later[later.check_name == "performance_roc_auc"], window)
    assert_value(auc, sk.roc_auc_score(labeled.converted.astype(int), labeled.score))
    reference = truth[(truth.ts < window) & truth.converted.notna()]
    assert auc.details["reference_value"] == pytest.approx(sk.roc_auc_score(reference.converted.astype(int), reference.score), abs=1e-9)
    # days 3 and 4 are not mature yet; the window was replaced, not duplicated
    assert result(later[later.check_name == "performance_accuracy"], window + DAY).reason == "labels_not_mature"
    assert len(later[(later.window_start == window) & (later.check_name == "performance_accuracy")]) == 1


# -- planning -------------------------------------------------------------------------------------------------


def test_a_key_the_labels_table_repeats_counts_once(tmp_path):
    """A label delivered twice counts once; two copies that disagree make the key unlabeled, not a
    prediction counted twice (the LEFT JOIN would repeat it)."""
    scored, outcomes, truth = late_data(np.random.default_rng(8))
    window = START + 2 * DAY
    day_ids = truth.lead_id[(truth.ts >= window) & (truth.ts < window + DAY)].tolist()
    labeled_ids = outcomes.lead_id[outcomes.lead_id.isin(day_ids)].tolist()
    again, conflicting = labeled_ids[:20], labeled_ids[20:30]
    copies = outcomes[outcomes.lead_id.isin(again)]
    flipped = outcomes[outcomes.lead_id.isin(conflicting)].assign(converted=lambda f: 1 - f.converted)
    root = make_project(tmp_path, LATE_MONITOR, {"scored": scored, "outcomes": pd.concat([outcomes, copies, flipped])})
    api.backfill(window, window + DAY, project=root, at=window + 3 * DAY + pd.Timedelta(hours=1))

    rows = truth[truth.lead_id.isin(day_ids) & ~truth.lead_id.isin(conflicting)]
    labeled = rows[rows.converted.notna()]
    accuracy = result(results(root, check_name="performance_accuracy"), window)
    assert_value(accuracy, sk.accuracy_score(labeled.converted.astype(int), labeled.score >= 0.5))
    assert accuracy.n_current == len(labeled)
    assert accuracy.details["unlabeled_rows"] == len(day_ids) - len(labeled)
    auc = result(results(root, check_name="performance_roc_auc"), window)
    assert_value(auc, sk.roc_auc_score(labeled.converted.astype(int), labeled.score))


def test_query_count_does_not_grow_with_the_number_of_metrics(tmp_path, binary_data):
    few = BINARY_MONITOR.replace("name: leads", "name: few") % "  - performance: {metric: accuracy}"
    many = BINARY_MONITOR.replace("name: leads", "name: many") % "\n".join(
        [f"  - performance: {{metric: {m}}}" for m in BINARY_METRICS]
        + ["  - quality: {metric: null_rate, columns: [score, region]}", "  - latency: {column: score, quantile: 0.9}",
           "  - metric: {name: conversion, sql: avg(converted)}"]
    )
    few, many = few.replace("\n  - performance: {name: auc_vs_reference, metric: roc_auc, warn: {drop: 0.02}}", ""), many.replace(
        "\n  - performance: {name: auc_vs_reference, metric: roc_auc, warn: {drop: 0.02}}", "")
    root = make_project(tmp_path, [few, many], {"leads": binary_data})
    for day in (3, 4):
        summary = api.run(root, at=START + day * DAY + pd.Timedelta(hours=1))
        queries = {o.monitor: o.queries for o in summary.outcomes}
        assert queries["few"] == queries["many"] == 2, queries  # histogram counts + ONE model-check query


# -- PostgreSQL ---------------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_matches_sklearn(tmp_path, binary_data):
    url = os.environ.get("DRIFTLINE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set DRIFTLINE_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run on PostgreSQL")
    import ibis

    suffix = uuid.uuid4().hex[:8]
    table, schema = f"leads_{suffix}", f"driftline_{suffix}"
    con = ibis.connect(url)
    data = binary_data.assign(ts=binary_data.ts.astype("datetime64[us]"))
    con.create_table(table, data)
    checks = "\n".join(f"  - performance: {{metric: {m}}}" for m in BINARY_METRICS)
    checks += "\n  - fairness: {metric: demographic_parity_difference, group: region}"
    checks += "\n  - quality: {metric: null_rate, columns: [converted]}\n  - latency: {column: score, quantile: 0.9}"
    monitor = (BINARY_MONITOR % checks).replace("table: leads", f"table: {table}")
    root = make_project(tmp_path, monitor, connection=url, results_schema=schema)
    try:
        summary = api.run(root, at=START + 3 * DAY + pd.Timedelta(hours=1))
        assert [o.status for o in summary.outcomes] == ["success"], [o.error for o in summary.outcomes]
        frame = results(root)
        window = START + 2 * DAY
        for metric in BINARY_METRICS:
            for segment in (None, "north", "south", "tiny"):
                row = result(frame[frame.check_name == f"performance_{metric}"], window, segment)
                assert_value(row, expected_binary(rows_of(binary_data, window, segment), metric))
        latency = result(frame[frame.check_name == "latency_score_p90"], window)
        assert_value(latency, float(np.quantile(rows_of(binary_data, window, None).score, 0.9)))
    finally:
        con.drop_table(table, force=True)
        con.raw_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
