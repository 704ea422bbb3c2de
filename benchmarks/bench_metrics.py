"""Model-check benchmark (issues 3 and 13): PSI drift on the 25 features plus 10 performance, fairness
and quality metrics, overall and over the 5 values of ``segment``, on the 5M-row table.

Three monitors on the same data, same windows (a fixed 30-day reference, a 7-day window):

- ``drift_seg``: drift only, segmented (the baseline);
- ``metrics_seg``: drift + the 10 metrics (the monitor of the issue);
- ``metrics_only_seg``: the 10 metrics without drift (where the extra time goes).

Each is timed as in ``bench_drift.py`` (medians of ``--repeat`` first runs, the cached
profile deleted before each, and steady-state runs), with its floor: one scan of the columns
the monitor reads. The figure: how much the metrics add to the drift-only run (issue 13 retired
the target of +50 %; reported without one).

    python benchmarks/bench_metrics.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    DATA, categorical_features, load_average, machine, measure_monitor, monitor_spec, numeric_features, require_data,
    save, write_project,
)
from make_data import DEFAULT_DB  # noqa: E402

PROJECTS = DATA / "projects"
SEGMENTS = ("segment",)
MODEL = {"task": "binary_classification", "score": "score", "threshold": 0.5, "label": "label"}
METRICS = [
    {"performance": {"metric": "accuracy", "fail": {"below": 0.5}}},
    {"performance": {"metric": "precision", "fail": {"below": 0.3}}},
    {"performance": {"metric": "recall", "fail": {"below": 0.1}}},
    {"performance": {"metric": "roc_auc", "fail": {"below": 0.6}, "warn": {"drop": 0.03}}},  # relative: reads the reference once
    {"performance": {"metric": "log_loss", "fail": {"above": 1.0}}},
    {"performance": {"metric": "brier", "fail": {"above": 0.3}}},
    {"fairness": {"metric": "demographic_parity_ratio", "group": "group_attr", "fail": {"below": 0.8}}},
    {"fairness": {"metric": "equalized_odds_difference", "group": "group_attr", "fail": {"above": 0.2}}},
    {"quality": {"metric": "null_rate", "columns": "features", "fail": {"above": 0.05}}},
    {"quality": {"metric": "row_count", "fail": {"below": 1000}}},
]
MODEL_COLUMNS = ("score", "label", "group_attr")


def drift_only_spec() -> dict:
    return monitor_spec("drift_seg", 20, 5, SEGMENTS)


def metrics_spec() -> dict:
    return monitor_spec("metrics_seg", 20, 5, SEGMENTS, checks=METRICS, model=MODEL)


def metrics_only_spec() -> dict:
    spec = monitor_spec("metrics_only_seg", 20, 5, SEGMENTS, checks=METRICS, model=MODEL)
    spec["checks"] = spec["checks"][1:]  # without the drift check
    return spec


def floor_columns(with_model: bool) -> tuple[list[str], list[str]]:
    numeric = numeric_features(20) + (["score"] if with_model else [])
    other = categorical_features(5) + list(SEGMENTS) + (["label", "group_attr"] if with_model else [])
    return numeric, other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    require_data()

    payload: dict = {"machine": machine(), "load_average_start": load_average(), "repeat": args.repeat, "checks": METRICS}
    for key, spec, with_model in (
        ("drift_only", drift_only_spec(), False),
        ("drift_and_metrics", metrics_spec(), True),
        ("metrics_only", metrics_only_spec(), True),
    ):
        project = write_project(PROJECTS / spec["name"], DEFAULT_DB, [spec])
        print(f"[metrics] {spec['name']} ({args.repeat} repetitions) ...", flush=True)
        try:
            payload[key] = measure_monitor(project, spec["name"], *floor_columns(with_model), args.repeat)
        except Exception as error:  # the model checks may not run yet: say why, keep the rest
            payload[key] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
            print(f"  FAILED: {payload[key]['error']}", flush=True)
            continue
        m = payload[key]
        print(
            f"  floor both {m['floor_both']['median_s']:.3f}s, current {m['floor_current']['median_s']:.3f}s; "
            f"first {m['first_run']['median_s']:.3f}s ({m['first_run']['queries']} queries), "
            f"steady {m['steady_run']['median_s']:.3f}s ({m['steady_run']['queries']} queries), load {m['load_average'][0]:.1f}",
            flush=True,
        )
    drift, both = payload["drift_only"], payload["drift_and_metrics"]
    if "error" not in drift and "error" not in both:
        for run in ("first_run", "steady_run"):
            added = both[run]["median_s"] / drift[run]["median_s"] - 1
            payload[f"metrics_added_{run}"] = added
            print(f"  metrics add {added:+.0%} to the drift-only {run.replace('_', ' ')}", flush=True)
    print(f"[metrics] results: {save('metrics', payload)}")


if __name__ == "__main__":
    main()
