"""Trailing-reference benchmark (issue 13): PSI drift on the 25 features against a trailing
28-day reference, one window a day, so every run is a first run (each window has a reference
of its own: edges, categories and one counting query over both windows).

The 7 daily windows at the end of the data, [2026-01-01, 2026-01-08), whose trailing references
start on 2025-12-04 at the earliest, inside the data (it starts on 2025-12-02), are evaluated one
after the other with the evaluator of one workspace, as ``driftline run`` or ``backfill`` does;
the cached profiles are deleted before each repetition. Against it: 7 floors, each the floor
query over one window's reference + current rows (29 days), on the same connection.

    python benchmarks/bench_trailing.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    CURRENT_END, DATA, Bench, categorical_features, floor_query, load_average, machine, monitor_spec, numeric_features,
    require_data, save, timed, write_project,
)
from make_data import DEFAULT_DB, START  # noqa: E402

NAME = "drift_trailing"
TRAILING = timedelta(days=28)
DAY = timedelta(days=1)
WINDOWS = 7


def trailing_spec() -> dict:
    spec = monitor_spec(NAME, 20, 5)
    spec["schedule"] = {"every": "1d", "delay": "0h"}
    spec["reference"] = {"trailing": "28d"}
    return spec


def daily_windows():
    """The last ``WINDOWS`` whole days of the data; the first one's reference must lie inside it."""
    from driftline.windows import Window

    windows = [Window(CURRENT_END - (WINDOWS - k) * DAY, CURRENT_END - (WINDOWS - k - 1) * DAY) for k in range(WINDOWS)]
    assert windows[0].start - TRAILING >= START, "the first window's trailing reference starts before the data"
    return windows


def measure(repeat: int) -> dict:
    project = write_project(DATA / "projects" / NAME, DEFAULT_DB, [trailing_spec()])
    bench = Bench(project, NAME)
    windows = daily_windows()
    columns = (numeric_features(20), categorical_features(5))
    floors = [timed(lambda w=w: bench.sql(floor_query(*columns, w.start - TRAILING, w.end)), repeat).median for w in windows]
    per_window: list[list[float]] = [[] for _ in windows]

    def run_every_window() -> dict:
        queries = []
        for k, window in enumerate(windows):
            started = time.perf_counter()
            outcome = bench.evaluator.evaluate(window, CURRENT_END)
            per_window[k].append(time.perf_counter() - started)
            if outcome.status != "success":
                raise RuntimeError(f"driftline run of {window} failed: {outcome.error}")
            queries.append(outcome.queries)
        return {"queries": queries}

    # each repetition finds no profile: every window's reference is new to it, as in production
    total = timed(run_every_window, repeat, setup=bench.forget_profile)
    bench.close()
    return {
        "monitor": NAME,
        "windows": [[str(w.start), str(w.end)] for w in windows],
        "trailing_days": TRAILING.days,
        "floors_s": floors,
        "floors_total_s": sum(floors),
        "total": total.as_dict(),
        "window_median_s": [statistics.median(times[1:]) for times in per_window],  # the warm-up left out
        "total_over_floors": total.median / sum(floors),
        "load_average": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    require_data()
    payload: dict = {"machine": machine(), "load_average_start": load_average(), "repeat": args.repeat}
    print(f"[trailing] {NAME}: {WINDOWS} daily windows, each against its trailing 28 days ({args.repeat} repetitions) ...", flush=True)
    m = payload["trailing"] = measure(args.repeat)
    print(
        f"  7 floors {m['floors_total_s']:.3f}s, 7 windows {m['total']['median_s']:.3f}s "
        f"({sum(m['total']['queries'])} queries): {m['total_over_floors']:.1f}x the floors, load {m['load_average'][0]:.1f}",
        flush=True,
    )
    print(f"[trailing] results: {save('trailing', payload)}")


if __name__ == "__main__":
    main()
