"""Which segment explains a change: an overall breach's details split the change since the
reference over each segment column's values (rate effect + mix effect), checked against numpy on
the same rows; the terms add up to the change exactly. A drifted column names its bins that moved
most, checked against numpy's shares."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from driftline import api
from model_projects import DAY, START, make_project, result, results, rows_of

MONITOR = """
name: leads
source: {table: leads, timestamp: ts}
model: {task: binary_classification, score: score, label: converted, threshold: 0.5}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-03}
segments: [region, channel]
min_rows: 1
features:
  categorical: [channel]
checks:
  - performance: {metric: precision, warn: {drop: 0.05}}
  - performance: {metric: recall, warn: {below: 0.01}}
  - metric: {name: mean_amount, sql: avg(amount), warn: {above: 35}}
  - drift: {columns: [channel], warn: 0.1}
"""

REGIONS = ["latam", "emea", "apac"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    """Two reference days, then a day on which latam's precision collapses and its share of
    predicted positives grows, and paid traffic takes over, spending more."""
    rng = np.random.default_rng(11)
    parts = []
    for day in range(3):
        n = 3000
        changed = day == 2
        region = rng.choice(REGIONS, n, p=[0.5, 0.3, 0.2] if changed else [0.3, 0.4, 0.3])
        channel = rng.choice(["organic", "paid"], n, p=[0.3, 0.7] if changed else [0.7, 0.3])
        score = rng.uniform(size=n)
        lift = np.where(changed & (region == "latam"), 0.45, 0.0)
        parts.append(pd.DataFrame({
            "ts": START + day * DAY + pd.to_timedelta(rng.integers(0, 86400, n), unit="s"),
            "region": region, "channel": channel, "score": score,
            "converted": (rng.uniform(size=n) < np.clip(score - lift, 0, 1)).astype(int),
            "amount": rng.gamma(2.0, 15.0, n) + np.where(channel == "paid", 10.0 if changed else 0.0, 0.0),
        }))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


WINDOW = START + 2 * DAY


@pytest.fixture(scope="module")
def stored_root(tmp_path_factory, data):
    root = make_project(tmp_path_factory.mktemp("contributions"), MONITOR, {"leads": data})
    summary = api.backfill(WINDOW, WINDOW + DAY, project=root, at=START + 9 * DAY, notify=False)
    assert [o.status for o in summary.outcomes] == ["success"], [o.error for o in summary.outcomes]
    return root


@pytest.fixture(scope="module")
def stored(stored_root) -> pd.DataFrame:
    return results(stored_root)


def precision_parts(rows: pd.DataFrame) -> tuple[float, float]:
    """(precision, its denominator: the predicted positives)."""
    predicted = rows[rows.score >= 0.5]
    return predicted.converted.mean(), len(predicted)


def amount_parts(rows: pd.DataFrame) -> tuple[float, float]:
    return rows.amount.mean(), len(rows)


def expected_split(data: pd.DataFrame, column: str, parts) -> tuple[float, dict[str, tuple[float, float]]]:
    """numpy: the overall change and, per value, (rate effect, mix effect)."""
    reference, current = data[data.ts < WINDOW], rows_of(data, WINDOW, None)
    big_r_ref, _ = parts(reference)
    big_r_cur, _ = parts(current)
    ref = {v: parts(g) for v, g in reference.groupby(column)}
    cur = {v: parts(g) for v, g in current.groupby(column)}
    w_ref = {v: n / sum(n for _, n in ref.values()) for v, (_, n) in ref.items()}
    w_cur = {v: n / sum(n for _, n in cur.values()) for v, (_, n) in cur.items()}
    effects = {v: (w_ref[v] * (cur[v][0] - ref[v][0]), (w_cur[v] - w_ref[v]) * (cur[v][0] - big_r_ref)) for v in ref}
    return big_r_cur - big_r_ref, effects


@pytest.mark.parametrize("check, parts", [("performance_precision", precision_parts), ("mean_amount", amount_parts)])
@pytest.mark.parametrize("column", ["region", "channel"])
def test_a_breach_splits_the_change_over_each_segment_column(stored, data, check, parts, column):
    row = result(stored[stored.check_name == check], WINDOW)
    assert row.status == "warn"
    change, effects = expected_split(data, column, parts)
    found = row.details["contributions"][column]
    assert found["change"] == pytest.approx(change, abs=1e-12)
    total = sum(rate + mix for rate, mix in effects.values())
    assert total == pytest.approx(change, abs=1e-12)  # the identity the split rests on
    assert found["unexplained"] == pytest.approx(0.0, abs=1e-12)
    assert found["mix"] == pytest.approx(sum(mix for _, mix in effects.values()), abs=1e-12)
    ranked = sorted(effects, key=lambda v: -abs(sum(effects[v])))
    assert [t["segment"] for t in found["top"]] == ranked[:3]
    for top in found["top"]:
        rate, mix = effects[top["segment"]]
        assert (top["rate"], top["mix"]) == (pytest.approx(rate, abs=1e-12), pytest.approx(mix, abs=1e-12))


def test_the_summary_names_the_segment_that_explains_the_drop(stored):
    row = result(stored[stored.check_name == "performance_precision"], WINDOW)
    assert row.details["explained_by"].startswith("region: latam −")
    top = row.details["contributions"]["region"]["top"][0]
    assert top["segment"] == "latam" and top["contribution"] < 0


def test_no_split_where_nothing_breaches(stored):
    row = result(stored[stored.check_name == "performance_recall"], WINDOW)
    assert row.status == "ok" and "contributions" not in row.details
    for segment in REGIONS:  # segment rows are explained by nothing further
        assert "contributions" not in result(stored[stored.check_name == "performance_precision"], WINDOW, segment).details


def test_a_drifted_column_names_the_bins_that_moved_most(stored, data):
    row = result(stored[stored.check_name == "drift_psi"], WINDOW, column="channel")
    assert row.status == "warn"
    reference = data[data.ts < WINDOW].channel.value_counts(normalize=True)
    current = rows_of(data, WINDOW, None).channel.value_counts(normalize=True)
    moved = row.details["moved_bins"]
    assert {m["bin"] for m in moved[:2]} == {"organic", "paid"}
    for m in moved[:2]:
        assert m["change"] == pytest.approx(current[m["bin"]] - reference[m["bin"]], abs=1e-12)


def test_the_slack_message_says_which_segment_explains_it(stored):
    from datetime import datetime

    from types import SimpleNamespace

    from driftline.alerts import breach_of
    from driftline.notify.messages import MonitorRun, render_run_message, render_text

    row = {k: (None if not isinstance(v, dict) and pd.isna(v) else v) for k, v in result(stored[stored.check_name == "performance_precision"], WINDOW).items()}
    row["details"] = json.dumps(row["details"])
    episode = SimpleNamespace(monitor="leads", opened_at=WINDOW.to_pydatetime())
    breach = breach_of(row, "warn", "new", episode)
    run = MonitorRun("leads", None, None, None, datetime(2024, 3, 3), datetime(2024, 3, 4), None)
    text = render_text(render_run_message(run, [breach], "#ml"))
    assert "explained by region: latam −" in text


def test_the_report_says_which_segment_explains_it(stored_root, tmp_path):
    out = api.report(stored_root, tmp_path / "report.html")
    html = out.read_text(encoding="utf-8")
    assert "Explained by region: latam −" in html
