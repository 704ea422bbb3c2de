"""Monitor windows (SPEC §4): ``[start, start + every)`` aligned to multiples of ``every`` since
1970-01-01T00:00Z, due once ``now >= end + delay``; the first run evaluates the latest due window,
later runs catch up on every due window after the last completed one."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from drift_model import stored_edges

from driftline import api
from driftline.spec.models import Reference, Schedule
from driftline.windows import Window, align, due_windows, last_due_end, reference_window, windows_between

EPOCH = datetime(1970, 1, 1)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def expected_start(moment: datetime, every: timedelta) -> datetime:
    """Floor to a multiple of ``every`` since the epoch, in whole seconds."""
    seconds = int((moment - EPOCH).total_seconds())
    step = int(every.total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % step)


@pytest.mark.parametrize("every", [15 * MINUTE, HOUR, DAY, 7 * DAY])
@pytest.mark.parametrize(
    "moment",
    [datetime(2026, 1, 7, 12, 34, 56), datetime(2026, 3, 1), datetime(1999, 12, 31, 23, 59, 59), datetime(2026, 1, 1)],
)
def test_windows_align_to_multiples_of_every_since_the_epoch(every, moment):
    assert align(moment, every) == expected_start(moment, every)
    assert align(moment, every) <= moment < align(moment, every) + every


def test_week_windows_start_on_thursdays_like_the_epoch():
    start = align(datetime(2026, 1, 7, 12), 7 * DAY)
    assert start == datetime(2026, 1, 1)  # a Thursday, as 1970-01-01 was
    assert start.weekday() == EPOCH.weekday() == 3


@pytest.mark.parametrize(
    ("now", "every", "delay", "expected"),
    [
        (datetime(2026, 1, 10, 0, 0), DAY, timedelta(0), Window(datetime(2026, 1, 9), datetime(2026, 1, 10))),
        (datetime(2026, 1, 10, 23, 59), DAY, timedelta(0), Window(datetime(2026, 1, 9), datetime(2026, 1, 10))),
        # with a 2h delay the window ending at midnight is due at 02:00, not before
        (datetime(2026, 1, 10, 1, 59), DAY, 2 * HOUR, Window(datetime(2026, 1, 8), datetime(2026, 1, 9))),
        (datetime(2026, 1, 10, 2, 0), DAY, 2 * HOUR, Window(datetime(2026, 1, 9), datetime(2026, 1, 10))),
        (datetime(2026, 1, 10, 12, 44), 15 * MINUTE, timedelta(0), Window(datetime(2026, 1, 10, 12, 15), datetime(2026, 1, 10, 12, 30))),
        (datetime(2026, 1, 10, 12, 44), HOUR, 30 * MINUTE, Window(datetime(2026, 1, 10, 11), datetime(2026, 1, 10, 12))),
        (datetime(2026, 1, 10), 7 * DAY, timedelta(0), Window(datetime(2026, 1, 1), datetime(2026, 1, 8))),
    ],
)
def test_first_run_evaluates_the_latest_due_window(now, every, delay, expected):
    schedule = Schedule(every=every, delay=delay)
    assert due_windows(now, schedule, completed_until=None) == [expected]
    assert now >= expected.end + delay  # due ...
    assert now < expected.end + every + delay  # ... and the next one is not yet


def test_catch_up_after_downtime_evaluates_every_missed_window_in_order():
    schedule = Schedule(every=HOUR, delay=15 * MINUTE)
    now = datetime(2026, 1, 10, 6, 20)
    windows = due_windows(now, schedule, completed_until=datetime(2026, 1, 10, 1))
    assert [w.start.hour for w in windows] == [1, 2, 3, 4, 5]
    assert all(w.end - w.start == HOUR for w in windows)
    assert due_windows(now, schedule, completed_until=datetime(2026, 1, 10, 6)) == []


def test_backfill_ranges_hold_only_whole_windows_inside_the_range():
    assert windows_between(datetime(2026, 1, 1), datetime(2026, 1, 4), DAY) == [
        Window(datetime(2026, 1, d), datetime(2026, 1, d + 1)) for d in (1, 2, 3)
    ]
    # unaligned ends: the partly covered windows at both ends are left out
    assert windows_between(datetime(2026, 1, 1, 12), datetime(2026, 1, 4, 12), DAY) == [
        Window(datetime(2026, 1, d), datetime(2026, 1, d + 1)) for d in (2, 3)
    ]
    assert windows_between(datetime(2026, 1, 1), datetime(2026, 1, 1, 1), 15 * MINUTE) == [
        Window(datetime(2026, 1, 1, 0, m), datetime(2026, 1, 1, 0, m) + 15 * MINUTE) for m in (0, 15, 30, 45)
    ]
    assert windows_between(datetime(2026, 1, 5), datetime(2026, 1, 4), DAY) == []
    assert last_due_end(datetime(2026, 1, 4, 5), Schedule(every=DAY, delay=6 * HOUR)) == datetime(2026, 1, 3)


def test_trailing_reference_is_the_period_just_before_each_window():
    window = Window(datetime(2026, 2, 1), datetime(2026, 2, 2))
    assert reference_window(Reference(trailing=28 * DAY), window) == Window(datetime(2026, 1, 4), datetime(2026, 2, 1))
    fixed = Reference(start=datetime(2026, 1, 1), end=datetime(2026, 1, 8))
    assert reference_window(fixed, window) == Window(datetime(2026, 1, 1), datetime(2026, 1, 8))


# -- the same rules through the API, with a real warehouse ---------------------------------------

MONITOR = """
name: hourly
source: {table: events, timestamp: ts}
schedule: {every: 1h, delay: 10m}
reference: {trailing: 6h}
min_rows: 1
features: {numeric: [x]}
checks:
  - drift: {method: tvd}
"""


@pytest.fixture
def hourly(make_project):
    rng = np.random.default_rng(3)
    ts = pd.date_range("2026-01-01", "2026-01-03", freq="1min", inclusive="left")
    frame = pd.DataFrame({"ts": ts, "x": rng.normal(size=len(ts))})
    return make_project(monitors={"hourly": MONITOR}, tables={"events": frame})


def evaluated(summary: api.RunSummary) -> list[tuple[datetime, datetime]]:
    assert all(o.status == "success" for o in summary.outcomes), [o.error for o in summary.outcomes]
    return [(o.window.start, o.window.end) for o in summary.outcomes]


def test_runs_evaluate_latest_window_then_catch_up(hourly):
    first = api.run(hourly.root, at="2026-01-02T05:09:00", notify=False)
    assert evaluated(first) == [(datetime(2026, 1, 2, 3), datetime(2026, 1, 2, 4))]  # 05:00 + 10m not yet
    again = api.run(hourly.root, at="2026-01-02T05:09:00", notify=False)
    assert evaluated(again) == []
    later = api.run(hourly.root, at="2026-01-02T08:30:00+00:00", notify=False)
    assert evaluated(later) == [(datetime(2026, 1, 2, h), datetime(2026, 1, 2, h + 1)) for h in (4, 5, 6, 7)]
    # an offset is converted to UTC: 09:15+01:00 is 08:15Z, nothing new is due
    assert evaluated(api.run(hourly.root, at="2026-01-02T09:15:00+01:00", notify=False)) == []
    runs = hourly.query("select window_start, rows_current, rows_reference from driftline_runs order by window_start")
    assert list(runs.rows_current) == [60] * 5
    assert list(runs.rows_reference) == [360] * 5  # a trailing 6h reference before each window
    profiles = hourly.query("select reference_start, reference_end from driftline_profiles order by reference_start")
    assert [(r.reference_start, r.reference_end) for r in profiles.itertuples()] == [
        (datetime(2026, 1, 2, h) - 6 * HOUR, datetime(2026, 1, 2, h)) for h in (3, 4, 5, 6, 7)
    ]
    # the value of the last window, from its own trailing reference (numpy, SPEC §6)
    frame = hourly.query("select ts, x from events")
    reference = frame[(frame.ts >= datetime(2026, 1, 2, 1)) & (frame.ts < datetime(2026, 1, 2, 7))].x.to_numpy()
    current = frame[(frame.ts >= datetime(2026, 1, 2, 7)) & (frame.ts < datetime(2026, 1, 2, 8))].x.to_numpy()
    # the warehouse's approximate quantile edges, read back from the window's profile (SPEC §6)
    profile = hourly.query("select profile from driftline_profiles where reference_start = '2026-01-02 01:00:00'")
    (edges,) = stored_edges(profile).values()
    p = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=10) / len(reference)
    q = np.bincount(np.searchsorted(edges, current, side="right"), minlength=10) / len(current)
    (value,) = hourly.query("select value from driftline_results where window_start = '2026-01-02 07:00:00'").value
    assert value == pytest.approx(0.5 * np.abs(p - q).sum(), abs=1e-12)


def test_backfill_evaluates_whole_due_windows_in_the_range(hourly):
    summary = api.backfill("2026-01-01T10:30", "2026-01-01T14:00", hourly.root, at="2026-01-01T13:05")
    # 10:00-11:00 started before the range; 12:00-13:00 is not due until 13:10
    assert evaluated(summary) == [(datetime(2026, 1, 1, 11), datetime(2026, 1, 1, 12))]
