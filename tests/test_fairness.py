"""Fairness metrics computed in the warehouse, checked against a plain numpy implementation of
fairlearn's ``between_groups`` definitions on generated data: overall and per segment, with
tiny groups left out, groups whose rate is undefined, and a group never selected."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from driftline import api
from driftline.spec.models import Bound, FairnessCheck
from model_projects import DAY, START, assert_value, make_project, result, results, rows_of, segment_of, value_of

METRICS = [
    "demographic_parity_difference", "demographic_parity_ratio", "equal_opportunity_difference",
    "equalized_odds_difference", "predictive_parity_difference", "disparate_impact",
]
MIN_ROWS = 20

MONITOR = """
name: loans
source: {table: loans, timestamp: ts}
model: {task: binary_classification, score: score, label: repaid, threshold: 0.5}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-02}
segments: [region]
min_rows: 20
checks:
%s
  - fairness: {name: di_vs_b, metric: disparate_impact, group: gender, reference_group: B}
"""


# -- data ------------------------------------------------------------------------------------------------


def day_rows(rng, day: int, sizes: dict, *, no_positive_labels=(), never_selected=()) -> pd.DataFrame:
    frames = []
    for group, n in sizes.items():
        score = rng.integers(1, 20, n) / 20
        if group in never_selected:
            score = rng.integers(1, 10, n) / 20
        label = (rng.uniform(size=n) < score).astype(float)
        if group in no_positive_labels:
            label[:] = 0.0
        label[rng.uniform(size=n) < 0.08] = np.nan  # some labels missing
        frames.append(pd.DataFrame({
            "ts": START + day * DAY + pd.to_timedelta(rng.uniform(0, 86399, n).round(), unit="s"),
            "gender": [group] * n,
            "region": rng.choice(["east", "west"], n),
            "score": score,
            "repaid": label,
        }))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    rng = np.random.default_rng(21)
    sizes = {"A": 300, "B": 200, "C": 120, "D": 8, None: 3}  # D and the null group are too small
    data = pd.concat([
        day_rows(rng, 0, sizes),
        day_rows(rng, 1, sizes),
        day_rows(rng, 2, sizes, no_positive_labels=("C",)),
        day_rows(rng, 3, sizes, never_selected=("B",)),
    ], ignore_index=True)
    checks = "\n".join(f"  - fairness: {{metric: {m}, group: gender}}" for m in METRICS)
    root = make_project(tmp_path_factory.mktemp("fairness"), MONITOR % checks, {"loans": data})
    summary = api.backfill(START + DAY, START + 4 * DAY, project=root, at=START + 5 * DAY)
    assert [o.status for o in summary.outcomes] == ["success"] * 3, [o.error for o in summary.outcomes]
    return results(root), data


# -- the independent implementation ---------------------------------------------------------------------------


def rates(rows: pd.DataFrame) -> dict:
    """fairlearn's selection_rate, true/false positive rate and precision of one group."""
    predicted = (rows.score >= 0.5).to_numpy()
    labeled = rows[rows.repaid.notna()]
    y, p = labeled.repaid.to_numpy() == 1, (labeled.score >= 0.5).to_numpy()
    tp, fp, fn, tn = (int(np.sum(c)) for c in (y & p, ~y & p, y & ~p, ~y & ~p))
    div = lambda a, b: a / b if b else None  # noqa: E731
    return {"n": len(rows), "selection_rate": float(predicted.mean()), "tpr": div(tp, tp + fn),
            "fpr": div(fp, fp + tn), "precision": div(tp, tp + fp)}


def groups_of(rows: pd.DataFrame, column: str = "gender") -> tuple[dict, dict]:
    every = {("__null__" if pd.isna(g) else g): part for g, part in rows.groupby(column, dropna=False)}
    kept = {g: rates(part) for g, part in every.items() if len(part) >= MIN_ROWS}
    excluded = {g: len(part) for g, part in every.items() if len(part) < MIN_ROWS}
    return kept, excluded


def between_groups(groups: dict, rate: str) -> float | None:
    values = [g[rate] for g in groups.values() if g[rate] is not None]
    return max(values) - min(values) if len(values) >= 2 else None


def expected(rows: pd.DataFrame, metric: str, reference_group: str | None = None, column: str = "gender") -> float | None:
    groups, _ = groups_of(rows, column)
    if metric == "demographic_parity_ratio":
        rates_ = [g["selection_rate"] for g in groups.values()]
        return min(rates_) / max(rates_) if len(rates_) >= 2 and max(rates_) > 0 else None
    if metric == "equalized_odds_difference":
        tpr, fpr = between_groups(groups, "tpr"), between_groups(groups, "fpr")
        return None if tpr is None or fpr is None else max(tpr, fpr)
    if metric == "disparate_impact":
        reference = reference_group or max(groups, key=lambda g: groups[g]["n"])
        base = groups[reference]["selection_rate"]
        ratios = [g["selection_rate"] / base for name, g in groups.items() if name != reference and base > 0]
        return min(ratios) if ratios else None
    rate = {"demographic_parity_difference": "selection_rate", "equal_opportunity_difference": "tpr",
            "predictive_parity_difference": "precision"}[metric]
    return between_groups(groups, rate)


# -- tests ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_fairness_metric_equals_numpy_between_groups(case, metric):
    frame, data = case
    rows = frame[frame.check_name == f"fairness_{metric}"]
    assert len(rows) == 3 * 3  # three windows, overall + east + west
    for row in rows.itertuples():
        assert row.column_name == "gender"
        segment_rows = rows_of(data, row.window_start, segment_of(row))
        assert_value(pd.Series(row._asdict()), expected(segment_rows, metric))
        assert row.n_current == len(segment_rows)  # the segment's rows, the excluded groups' too


def test_explicit_reference_group(case):
    frame, data = case
    for row in frame[frame.check_name == "di_vs_b"].itertuples():
        assert_value(pd.Series(row._asdict()), expected(rows_of(data, row.window_start, segment_of(row)), "disparate_impact", "B"))
        assert row.details["reference_group"] == "B"


def test_per_group_rates_and_excluded_groups_are_in_details(case):
    frame, data = case
    for segment in (None, "east"):
        row = result(frame[frame.check_name == "fairness_equal_opportunity_difference"], START + DAY, segment)
        groups, excluded = groups_of(rows_of(data, START + DAY, segment))
        assert row.details["excluded_groups"] == excluded and "D" in excluded
        assert set(row.details["groups"]) == set(groups) == {"A", "B", "C"}
        for name, rates_ in groups.items():
            for key, value in rates_.items():
                stored = row.details["groups"][name][key]
                assert (stored is None and value is None) or math.isclose(stored, value, abs_tol=1e-12)


def test_a_group_with_an_undefined_rate_is_left_out_of_that_comparison(case):
    frame, data = case
    row = result(frame[frame.check_name == "fairness_equal_opportunity_difference"], START + 2 * DAY)
    assert row.details["groups"]["C"]["tpr"] is None  # no positive labels in C that day
    tprs = [g["tpr"] for name, g in row.details["groups"].items() if name != "C"]
    assert value_of(row) == pytest.approx(max(tprs) - min(tprs), abs=1e-12)


def test_disparate_impact_breaches_the_four_fifths_rule_by_default(case):
    frame, _ = case
    row = result(frame[frame.check_name == "fairness_disparate_impact"], START + 3 * DAY)
    assert value_of(row) == 0.0  # group B is never selected that day
    assert row.status == "fail" and row.fail_threshold == "{below: 0.8}"
    assert row.details["reference_group"] == "A"  # the largest group
    check = FairnessCheck(metric="disparate_impact", group="gender")
    assert check.fail == Bound(below=0.8)
    assert FairnessCheck(metric="disparate_impact", group="gender", warn=0.9).fail is None


def test_label_dependent_fairness_waits_for_labels(tmp_path):
    rng = np.random.default_rng(2)
    data = pd.concat([day_rows(rng, d, {"A": 60, "B": 50}) for d in range(3)], ignore_index=True)
    data.insert(0, "loan_id", np.arange(len(data)))
    monitor = """
    name: late_loans
    source: {table: loans, timestamp: ts}
    model:
      task: binary_classification
      score: score
      labels: {table: outcomes, key: loan_id, column: repaid, delay: 3d}
    schedule: {every: 1d}
    reference: {start: 2024-03-01, end: 2024-03-02}
    min_rows: 20
    checks:
      - fairness: {metric: equal_opportunity_difference, group: gender}
      - fairness: {metric: demographic_parity_difference, group: gender}
    """
    tables = {"loans": data.drop(columns="repaid"), "outcomes": data[["loan_id", "repaid"]].dropna()}
    root = make_project(tmp_path, monitor, tables)
    api.run(root, at=START + 3 * DAY)
    frame = results(root)
    waiting = result(frame[frame.check_name == "fairness_equal_opportunity_difference"], START + 2 * DAY)
    assert waiting.status == "insufficient_data" and waiting.reason == "labels_not_mature"
    parity = result(frame[frame.check_name == "fairness_demographic_parity_difference"], START + 2 * DAY)
    assert_value(parity, expected(rows_of(data, START + 2 * DAY, None), "demographic_parity_difference"))


def test_a_segment_whose_groups_are_all_excluded_still_counts_its_rows(tmp_path):
    """n_current is the segment's row count, as for every other check, even when no group has
    min_rows rows: the value is then null (insufficient_data) and every group is listed."""
    rng = np.random.default_rng(8)
    big = day_rows(rng, 1, {"A": 120, "B": 90}).assign(region="mainland")
    small = day_rows(rng, 1, {"A": 12, "B": 9, "C": 5}).assign(region="islands")  # each < min_rows 20
    data = pd.concat([day_rows(rng, 0, {"A": 100, "B": 80}), big, small], ignore_index=True)
    monitor = MONITOR % "  - fairness: {metric: demographic_parity_difference, group: gender}"
    root = make_project(tmp_path, monitor, {"loans": data})
    api.run(root, at=START + 2 * DAY)
    frame = results(root)
    checks = frame[frame.check_name == "fairness_demographic_parity_difference"]
    islands = result(checks, START + DAY, "islands")
    assert islands.n_current == 26
    assert_value(islands, None)
    assert islands.details["excluded_groups"] == {"A": 12, "B": 9, "C": 5} and islands.details["groups"] == {}
    overall = result(checks, START + DAY)
    assert overall.n_current == 120 + 90 + 12 + 9 + 5
    assert overall.details["excluded_groups"] == {"C": 5}
    assert_value(overall, expected(rows_of(data, START + DAY, None), "demographic_parity_difference"))


TWO_GROUP_COLUMNS = MONITOR.replace("segments: [region]", "segments: [region, channel]") % "\n".join([
    "  - fairness: {metric: equalized_odds_difference, group: gender}",
    "  - fairness: {metric: demographic_parity_ratio, group: age_band}",
    "  - fairness: {metric: predictive_parity_difference, group: age_band}",
])


def test_two_group_columns_over_two_segment_columns(tmp_path):
    """Each check's groups come from its own column, in every segment of both segment columns
    (null segment values and null groups included): the per-group counts are grouped by the
    group value and the combination of segment values, and added up per segment."""
    rng = np.random.default_rng(5)
    data = pd.concat([day_rows(rng, day, {"A": 260, "B": 180, None: 40}) for day in range(3)], ignore_index=True)
    data["channel"] = rng.choice(np.array(["web", "app", None], dtype=object), len(data), p=[0.5, 0.4, 0.1])
    data["age_band"] = rng.choice(np.array(["young", "old", None], dtype=object), len(data), p=[0.45, 0.45, 0.1])
    root = make_project(tmp_path, TWO_GROUP_COLUMNS, {"loans": data})
    summary = api.backfill(START + DAY, START + 3 * DAY, project=root, at=START + 4 * DAY)
    assert [o.status for o in summary.outcomes] == ["success"] * 2, [o.error for o in summary.outcomes]
    frame = results(root)
    checks = {"fairness_equalized_odds_difference": "gender", "fairness_demographic_parity_ratio": "age_band",
              "fairness_predictive_parity_difference": "age_band"}
    segments = [(None, None)] + [(key, value) for key in ("region", "channel") for value in ("east", "west", "web", "app", "__null__")]
    compared = 0
    for check, column in checks.items():
        for row in frame[frame.check_name == check].itertuples():
            key = None if pd.isna(row.segment_key) else row.segment_key
            assert (key, segment_of(row)) in segments
            rows = data[(data.ts >= row.window_start) & (data.ts < row.window_start + DAY)]
            if key is not None:
                rows = rows[rows[key].isna()] if row.segment_value == "__null__" else rows[rows[key] == row.segment_value]
            assert_value(pd.Series(row._asdict()), expected(rows, check.removeprefix("fairness_"), column=column))
            groups, excluded = groups_of(rows, column)
            assert set(row.details["groups"]) == set(groups) and row.details["excluded_groups"] == excluded
            compared += 1
    assert compared == 3 * 2 * 6  # three checks, two windows, overall + east + west + web + app + null channel
