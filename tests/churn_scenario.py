"""A churn-like scenario for counting false alert episodes: a churn model scored daily over 8
customer segments, 28 reference days, then 32 monitored days; on day ``CHANGE_DAY`` the model's
recall collapses in one segment (``CHANGED_SEGMENT``), everything else is noise.

Per-segment performance checks written three ways — ``{drop: 0.05}``, ``{drop: 0.05, confidence:
0.95}`` and ``{reference_band: 3}`` — are run over the monitored days, and every episode that opens
anywhere but in the changed segment (or overall) on or after the change day is a false one.
``expected_episodes`` recomputes the episodes with numpy and scipy alone, for the tests.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

START = pd.Timestamp("2025-01-01")
DAY = pd.Timedelta(days=1)
REFERENCE_DAYS = 28
MONITORED_DAYS = 32
CHANGE_DAY = REFERENCE_DAYS + 20  # the 21st monitored day
SEGMENTS = [f"s{i}" for i in range(1, 9)]
CHANGED_SEGMENT = "s3"
ROWS_PER_SEGMENT_DAY = 120

THRESHOLDS = {
    "recall_drop": "{drop: 0.05}",
    "recall_drop_significant": "{drop: 0.05, confidence: 0.95}",
    "recall_band": "{reference_band: 3}",
}

MONITOR = f"""
name: churn
source: {{table: churn_scores, timestamp: scored_at}}
model: {{task: binary_classification, score: score, label: churned, threshold: 0.5}}
schedule: {{every: 1d}}
reference: {{start: {START:%Y-%m-%d}, end: {START + REFERENCE_DAYS * DAY:%Y-%m-%d}}}
segments: [segment]
min_rows: 20
checks:
""" + "\n".join(f"  - performance: {{name: {name}, metric: recall, warn: {threshold}}}" for name, threshold in THRESHOLDS.items())


def scenario(seed: int = 16) -> pd.DataFrame:
    """The scored customers: a score, whether they churned, their segment and the time scored."""
    rng = np.random.default_rng(seed)
    parts = []
    for day in range(REFERENCE_DAYS + MONITORED_DAYS):
        for segment in SEGMENTS:
            n = ROWS_PER_SEGMENT_DAY
            churned = rng.uniform(size=n) < 0.3
            # a churner's score is high; after the change, s3's churners look like stayers
            broken = day >= CHANGE_DAY and segment == CHANGED_SEGMENT
            score = np.where(churned, rng.beta(2.0 if broken else 5.0, 2.0, n), rng.beta(2.0, 5.0, n))
            parts.append(pd.DataFrame({
                "scored_at": START + day * DAY + pd.to_timedelta(rng.integers(0, 86400, n), unit="s"),
                "segment": segment, "score": score, "churned": churned.astype(int),
            }))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def write_project(root: Path, data: pd.DataFrame) -> Path:
    """A DuckDB project holding the scenario and its monitor."""
    import duckdb

    (root / "monitors").mkdir(parents=True, exist_ok=True)
    (root / "monitors" / "churn.yml").write_text(MONITOR.lstrip("\n"), encoding="utf-8")
    (root / "driftline_project.yml").write_text("name: churn\nconnection: duckdb://warehouse.duckdb\n", encoding="utf-8")
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.register("frame", data)
        con.execute("CREATE OR REPLACE TABLE churn_scores AS SELECT * FROM frame")
    return root


def monitored_days() -> list[pd.Timestamp]:
    return [START + d * DAY for d in range(REFERENCE_DAYS, REFERENCE_DAYS + MONITORED_DAYS)]


# -- the same episodes, computed with numpy and scipy alone ----------------------------------------


def _recall(rows: pd.DataFrame) -> tuple[float | None, float | None, int]:
    """Recall, its binomial standard error, and the rows (for min_rows)."""
    positives = rows[rows.churned == 1]
    if len(positives) == 0:
        return None, None, len(rows)
    r = float((positives.score >= 0.5).mean())
    return r, math.sqrt(r * (1 - r) / len(positives)), len(rows)


def _series(data: pd.DataFrame, segment: str | None) -> pd.DataFrame:
    return data if segment is None else data[data.segment == segment]


def breaches(data: pd.DataFrame, check: str, segment: str | None) -> list[bool | None]:
    """Per monitored day: True (breach), False (ok), None (not enough rows: neither)."""
    rows = _series(data, segment)
    reference = rows[rows.scored_at < START + REFERENCE_DAYS * DAY]
    r_ref, se_ref, _ = _recall(reference)
    days = [rows[(rows.scored_at >= d) & (rows.scored_at < d + DAY)] for d in [START + i * DAY for i in range(REFERENCE_DAYS)]]
    band_values = np.array([_recall(d)[0] for d in days if len(d) >= 20], dtype=float)
    flags = []
    for day in monitored_days():
        r, se, n = _recall(rows[(rows.scored_at >= day) & (rows.scored_at < day + DAY)])
        if r is None or n < 20:
            flags.append(None)
        elif check == "recall_drop":
            flags.append(r < r_ref - 0.05)
        elif check == "recall_drop_significant":
            flags.append(r < r_ref - max(0.05, norm.ppf(0.95) * math.hypot(se, se_ref)))
        else:
            mean, std = band_values.mean(), band_values.std()
            flags.append(r < mean - 3 * std or r > mean + 3 * std)
    return flags


def episodes(flags: list[bool | None]) -> list[int]:
    """The day indexes (into the monitored days) where an episode opens: a breach after a day
    that was ok, or the first breach; a day without a value neither opens nor resolves."""
    opened, open_now = [], False
    for i, flag in enumerate(flags):
        if flag is None:
            continue
        if flag and not open_now:
            opened.append(i)
        open_now = flag
    return opened


def expected_episodes(data: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per check: all episodes, and the false ones (outside the changed segment and overall, or
    opened before the change)."""
    change = CHANGE_DAY - REFERENCE_DAYS
    counts = {}
    for check in THRESHOLDS:
        total = false = 0
        for segment in [None, *SEGMENTS]:
            for start in episodes(breaches(data, check, segment)):
                total += 1
                true = segment in (None, CHANGED_SEGMENT) and start >= change
                false += not true
        counts[check] = {"episodes": total, "false": false}
    return counts


def stored_episodes(alerts: pd.DataFrame) -> dict[str, dict[str, int]]:
    """The same counts from ``driftline_alerts``."""
    change_day = START + CHANGE_DAY * DAY
    counts = {}
    for check in THRESHOLDS:
        mine = alerts[alerts.check_name == check]
        segment = mine.segment_value.where(mine.segment_value.notna(), None)
        true = segment.isin([CHANGED_SEGMENT]) | mine.segment_value.isna()
        true &= pd.to_datetime(mine.opened_at) >= change_day
        counts[check] = {"episodes": int(len(mine)), "false": int((~true).sum())}
    return counts
