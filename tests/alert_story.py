"""The days an alert test tells a story with: a reference week at 50/50 between two categories,
then one day per entry of a story at that day's share of "a" (``OK``, ``WARN``, ``FAIL`` for a
psi check with warn 0.1 and fail 0.25: 50/50 is ok, 70/30 a warn (0.17), 80/20 a fail (0.62))."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

DAY = timedelta(days=1)
START = datetime(2026, 3, 1)
OK, WARN, FAIL = 0.5, 0.7, 0.8  # share of "a" in a day


def events(story: list[float], rows_per_day: int = 100) -> pd.DataFrame:
    """The reference week at 50/50, then one day per entry of ``story`` at that share of "a"."""
    days = [(datetime(2026, 2, 1) + d * DAY, OK) for d in range(7)]
    days += [(START + d * DAY, share) for d, share in enumerate(story)]
    frames = []
    for day, share in days:
        count_a = round(rows_per_day * share)
        frames.append(pd.DataFrame({
            "ts": [day + timedelta(seconds=i * 86400 // rows_per_day) for i in range(rows_per_day)],
            "c": ["a"] * count_a + ["b"] * (rows_per_day - count_a),
            "region": "eu",
        }))
    return pd.concat(frames, ignore_index=True)


def story_monitor(alerts: str, header: str = "") -> str:
    """The monitor ``leads`` over :func:`events` (psi drift of ``c``, per ``region``), with its
    ``alerts`` block lines (indented as they stand under ``alerts:``) and extra top-level lines."""
    return f"""
    name: leads
{header}    source: {{table: events, timestamp: ts}}
    schedule: {{every: 1d}}
    reference: {{start: 2026-02-01, end: 2026-02-08}}
    features: {{categorical: [c]}}
    segments: [region]
    min_rows: 50
    checks:
      - drift: {{columns: [c], method: psi, warn: 0.1, fail: 0.25}}
    alerts:
{alerts}"""
