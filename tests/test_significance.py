"""Thresholds that require significance: ``{drop: x, confidence: c}`` and the other explicit forms
with a ``confidence`` breach only beyond the bound by z·std_error (SPEC §3); the resolved bounds
are checked against scipy's normal quantile and numpy's binomial errors on the same rows."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from driftline import api
from model_projects import DAY, START, make_project, result, results, rows_of

MONITOR = """
name: leads
source: {table: leads, timestamp: ts}
model: {task: binary_classification, score: score, label: converted, threshold: 0.5}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-03}
segments: [region]
min_rows: 1
checks:
  - performance: {name: precision_plain, metric: precision, warn: {drop: 0.05}}
  - performance: {name: precision_significant, metric: precision, warn: {drop: 0.05, confidence: 0.95}}
  - performance: {name: recall_floor, metric: recall, warn: {below: 0.75, confidence: 0.9}}
  - fairness: {metric: demographic_parity_difference, group: channel, warn: {above: 0.05, confidence: 0.99}}
"""


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    """Two reference days, then a day whose precision falls in the small region only."""
    rng = np.random.default_rng(3)
    parts = []
    for day, n in ((0, 900), (1, 900), (2, 900)):
        region = rng.choice(["large", "large", "large", "small"], n)
        score = rng.uniform(size=n)
        noise = np.where((day == 2) & (region == "small"), 0.35, 0.0)  # positives fewer there
        converted = (rng.uniform(size=n) < np.clip(score - noise, 0, 1)).astype(int)
        parts.append(pd.DataFrame({
            "ts": START + day * DAY + pd.to_timedelta(rng.integers(0, 86400, n), unit="s"),
            "region": region, "channel": rng.choice(["web", "app"], n), "score": score, "converted": converted,
        }))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def stored(tmp_path_factory, data) -> pd.DataFrame:
    root = make_project(tmp_path_factory.mktemp("significance"), MONITOR, {"leads": data})
    summary = api.backfill(START + 2 * DAY, START + 3 * DAY, project=root, at=START + 9 * DAY)
    assert [o.status for o in summary.outcomes] == ["success"], [o.error for o in summary.outcomes]
    return results(root)


def precision_and_error(rows: pd.DataFrame) -> tuple[float, float]:
    predicted = rows[rows.score >= 0.5]
    p = predicted.converted.mean()
    return p, math.sqrt(p * (1 - p) / len(predicted))


def recall_and_error(rows: pd.DataFrame) -> tuple[float, float]:
    positives = rows[rows.converted == 1]
    r = (positives.score >= 0.5).mean()
    return r, math.sqrt(r * (1 - r) / len(positives))


WINDOW = START + 2 * DAY


def reference_rows(data: pd.DataFrame, segment: str | None) -> pd.DataFrame:
    rows = data[data.ts < WINDOW]
    return rows if segment is None else rows[rows.region == segment]


@pytest.mark.parametrize("segment", [None, "large", "small"])
def test_a_drop_breaches_only_beyond_both_the_drop_and_z_times_the_combined_error(stored, data, segment):
    value, se = precision_and_error(rows_of(data, WINDOW, segment))
    reference, se_ref = precision_and_error(reference_rows(data, segment))
    lower = reference - max(0.05, norm.ppf(0.95) * math.hypot(se, se_ref))

    row = result(stored[stored.check_name == "precision_significant"], WINDOW, segment)
    assert row.fail_lower is None or pd.isna(row.fail_lower)
    assert row.warn_lower == pytest.approx(lower, abs=1e-12)
    assert row.std_error == pytest.approx(se, rel=1e-9)
    assert row.status == ("warn" if value < lower else "ok")
    assert row.warn_threshold == "{drop: 0.05, confidence: 0.95}"

    plain = result(stored[stored.check_name == "precision_plain"], WINDOW, segment)
    assert plain.warn_lower == pytest.approx(reference - 0.05, abs=1e-12)


def test_the_small_segment_drop_is_material_and_significant(stored, data):
    """The planted drop is caught with the confidence too; a drop that is within the noise is
    what the confidence keeps quiet (here: the plain drop's verdict differs on some segment
    exactly when the drop lies between 0.05 and the significance margin)."""
    row = result(stored[stored.check_name == "precision_significant"], WINDOW, "small")
    assert row.status == "warn"


@pytest.mark.parametrize("segment", [None, "large", "small"])
def test_a_floor_with_confidence_moves_down_by_z_times_the_error(stored, data, segment):
    value, se = recall_and_error(rows_of(data, WINDOW, segment))
    row = result(stored[stored.check_name == "recall_floor"], WINDOW, segment)
    assert row.warn_lower == pytest.approx(0.75 - norm.ppf(0.9) * se, abs=1e-12)
    assert row.status == ("warn" if value < 0.75 - norm.ppf(0.9) * se else "ok")


def test_an_upper_bound_with_confidence_on_a_fairness_gap(stored, data):
    rows = rows_of(data, WINDOW, None)
    rates = {c: (part.score >= 0.5).mean() for c, part in rows.groupby("channel")}
    errors = {c: math.sqrt(rates[c] * (1 - rates[c]) / len(part)) for c, part in rows.groupby("channel")}
    row = result(stored[stored.check_name == "fairness_demographic_parity_difference"], WINDOW, None, column="channel")
    assert row.warn_upper == pytest.approx(0.05 + norm.ppf(0.99) * math.hypot(*errors.values()), abs=1e-12)


# -- nonsense is refused, located, in one line ---------------------------------------------------------

BAD = {
    "confidence: 1.5": ("performance: {metric: precision, warn: {drop: 0.05, confidence: 1.5}}", "less than 1"),
    "confidence alone": ("performance: {metric: precision, warn: {confidence: 0.9}}", "exactly one of"),
    "confidence without std_error": ("quality: {metric: null_rate, columns: [score], warn: {above: 0.1, confidence: 0.9}}", "confidence needs the value's std_error"),
    "confidence on rmse-like metric": ("metric: {name: total, sql: sum(score), warn: {above: 5, confidence: 0.9}}", "confidence needs the value's std_error"),
    "confidence on drift": ("drift: {columns: [score], warn: {above: 0.1, confidence: 0.9}}", "not drift distances"),
    "confidence with a band": ("performance: {metric: precision, warn: {reference_band: 3, confidence: 0.9}}", "already learned"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_nonsense_is_a_located_one_line_error_with_exit_code_3(tmp_path, data, case):
    check, words = BAD[case]
    text = MONITOR.split("checks:")[0] + f"checks:\n  - {check}\n"
    root = make_project(tmp_path, text, {"leads": data.head(50)})
    done = subprocess.run([sys.executable, "-m", "driftline.cli", "validate"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 3, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if words in line]
    assert lines and lines[0].startswith(str(root / "monitors" / "m0.yml") + ":") or "m0.yml:" in lines[0], done.stderr
