"""``{reference_band: k}``: bands learned from the reference cut into the schedule's own windows,
checked against numpy on the same rows (mean ± k·std of the per-window values, population std
as NannyML's ``np.nanstd``; the reference's partial windows at both ends left out)."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from driftline import api, connect
from driftline.plan import reference_band
from driftline.spec.models import Bound
from driftline.judge import Reference, bounds_of
from model_projects import DAY, START, make_project, result, results, rows_of

# The reference starts and ends mid-day: 2024-03-01 and 2024-03-15 are partial, left out.
MONITOR = """
name: leads
source: {table: leads, timestamp: ts}
model: {task: binary_classification, score: score, label: converted, threshold: 0.5}
schedule: {every: 1d}
reference: {start: "2024-03-01T12:00:00", end: "2024-03-15T06:00:00"}
segments: [region]
min_rows: 1
checks:
  - performance: {metric: precision, warn: {reference_band: 3}}
  - performance: {metric: roc_auc, fail: {reference_band: 2.5}}
  - metric: {name: mean_amount, sql: avg(amount), warn: {reference_band: 2}}
  - quality: {metric: row_count, warn: {reference_band: 3}}
  - estimated_performance: {metric: precision, warn: {reference_band: 3}}
"""

WHOLE_DAYS = [START + d * DAY for d in range(1, 14)]  # 03-02 .. 03-14
CURRENT = [START + d * DAY for d in (16, 17)]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(21)
    parts = []
    for day in range(18):
        n = int(rng.integers(250, 400))
        score = rng.uniform(size=n)
        shift = 0.3 if day == 17 else 0.0  # the last day converts far less
        parts.append(pd.DataFrame({
            "ts": START + day * DAY + pd.to_timedelta(rng.integers(0, 86400, n), unit="s"),
            "region": rng.choice(["north", "south"], n),
            "score": score,
            "converted": (rng.uniform(size=n) < np.clip(score - shift, 0, 1)).astype(int),
            "amount": rng.gamma(2.0, 20.0, n),
        }))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def stored(request, tmp_path_factory, data):
    """The results of the two current windows, on DuckDB and on PostgreSQL (in schemas of its own)."""
    root = tmp_path_factory.mktemp("band")
    if request.param == "duckdb":
        make_project(root, MONITOR, {"leads": data})
        return run_and_read(root)
    url = request.getfixturevalue("postgres_url")
    con = connect.connect(url)
    schema = f"driftline_test_{uuid.uuid4().hex[:10]}"
    con.create_database(schema)
    try:
        con.create_table("leads", data, database=schema)
        make_project(root, MONITOR.replace("table: leads", f"table: {schema}.leads"), connection=url, results_schema=f"{schema}_results")
        return run_and_read(root)
    finally:
        for name in (schema, f"{schema}_results"):
            con.drop_database(name, force=True, cascade=True)
        con.disconnect()


def run_and_read(root) -> pd.DataFrame:
    summary = api.backfill(CURRENT[0], CURRENT[-1] + DAY, project=root, at=START + 30 * DAY)
    assert [o.status for o in summary.outcomes] == ["success"] * 2, [o.error for o in summary.outcomes]
    return results(root)


def per_day(data: pd.DataFrame, segment: str | None, measure) -> list[float]:
    return [measure(rows_of(data, day, segment)) for day in WHOLE_DAYS]


def precision(rows: pd.DataFrame) -> float:
    return rows[rows.score >= 0.5].converted.mean()


def roc_auc(rows: pd.DataFrame) -> float:
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(rows.converted, rows.score)


MEASURES = {
    "performance_precision": (precision, 3, "warn"),
    "performance_roc_auc": (roc_auc, 2.5, "fail"),
    "mean_amount": (lambda rows: rows.amount.mean(), 2, "warn"),
    "quality_row_count": (len, 3, "warn"),
    # an estimate's band: the realized metric's spread over the reference windows
    "estimated_performance_precision": (precision, 3, "warn"),
}


@pytest.mark.parametrize("check", list(MEASURES))
@pytest.mark.parametrize("segment", [None, "north", "south"])
def test_the_band_is_mean_plus_minus_k_std_of_the_whole_reference_windows(stored, data, check, segment):
    measure, k, level = MEASURES[check]
    values = np.array(per_day(data, segment, measure), dtype=float)
    lower, upper = values.mean() - k * values.std(), values.mean() + k * values.std()
    for day in CURRENT:
        row = result(stored[stored.check_name == check], day, segment)
        assert row[f"{level}_lower"] == pytest.approx(lower, rel=1e-9, abs=1e-12)
        assert row[f"{level}_upper"] == pytest.approx(upper, rel=1e-9, abs=1e-12)
        if check.startswith("estimated"):
            continue  # judged on the estimate, below
        value = measure(rows_of(data, day, segment))
        breached = value < lower or value > upper
        assert row.status == (level if breached else "ok"), (check, day, segment, value, lower, upper)


def test_the_planted_drop_breaches_its_band(stored):
    row = result(stored[stored.check_name == "performance_precision"], CURRENT[-1], None)
    assert row.status == "warn"


def test_the_band_is_stored_once_with_the_profile_and_learned_by_one_query(tmp_path, data):
    """A second window reuses the stored band: the run measuring it runs no more queries than a
    monitor without bands, and the first run exactly one more."""
    # without segments: an overall breach would otherwise add the query that splits it over them
    banded = MONITOR.replace("segments: [region]", "segments: []")
    plain = banded.replace("{reference_band: 3}", "{below: 0.1}").replace("{reference_band: 2.5}", "{below: 0.1}").replace("{reference_band: 2}", "{above: 1000}")
    counts = {}
    for name, text in (("band", banded), ("plain", plain)):
        root = make_project(tmp_path / name, text, {"leads": data})
        first = api.backfill(CURRENT[0], CURRENT[0] + DAY, project=root, at=START + 30 * DAY)
        second = api.backfill(CURRENT[1], CURRENT[1] + DAY, project=root, at=START + 30 * DAY)
        counts[name] = (first.outcomes[0].queries, second.outcomes[0].queries)
    assert counts["band"][0] == counts["plain"][0] + 1
    assert counts["band"][1] == counts["plain"][1]


def test_windows_inside_the_reference_leave_out_partial_ends():
    from driftline.spec.models import Monitor
    from driftline.windows import Window

    monitor = Monitor.model_validate({
        "name": "m", "source": {"table": "t", "timestamp": "ts"}, "schedule": {"every": "1d"},
        "reference": {"start": "2024-03-01T12:00:00", "end": "2024-03-15T06:00:00"}, "checks": [{"quality": {"metric": "row_count"}}],
    })  # fmt: skip
    windows = reference_band.reference_windows(monitor, Window(pd.Timestamp("2024-03-01 12:00").to_pydatetime(), pd.Timestamp("2024-03-15 06:00").to_pydatetime()))
    assert [w.start for w in windows] == [d.to_pydatetime() for d in WHOLE_DAYS]


def test_a_band_without_a_learned_spread_cannot_judge():
    assert bounds_of(Bound(reference_band=3), "metric", "x", Reference()) is None
