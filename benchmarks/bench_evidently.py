"""Evidently's ``DataDriftPreset`` on the same data as ``bench_drift.py``: the 30-day reference
and the 7-day current window of the 25 features, read from DuckDB into pandas, then the preset.

Evidently needs pandas < 3, so it runs in its own virtual environment,
``benchmarks/.venv-evidently`` (``make -C benchmarks evidently-venv``). This script is started
with any Python; every measured run is a fresh process of that venv's Python (``--child``), which
reports its wall times (load, preset) and its peak RSS (``VmHWM``).

Two configurations: the preset's defaults (for >1000 rows Evidently picks Wasserstein distance
for numeric and Jensen-Shannon for categorical columns), and ``method="psi"`` (what the
driftline monitor computes).

    python benchmarks/bench_evidently.py [--repeat 3] [--database data/bench_10m.duckdb --name evidently_10m]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_data import CURRENT_END, CURRENT_START, DEFAULT_DB, START, TABLE  # noqa: E402

VENV_PYTHON = HERE / ".venv-evidently" / "bin" / "python"
NUMERIC = [f"f{j}" for j in range(20)]
CATEGORICAL = [f"c{j}" for j in range(5)]


def peak_rss_mb() -> float:
    """Peak RSS of this process in MB: ``VmHWM`` (``getrusage``'s ``ru_maxrss`` survives ``exec``,
    so it could report the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(method: str, database: Path = DEFAULT_DB) -> None:
    """One measured run in this process: load both windows into pandas, run the preset."""
    import duckdb
    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = ", ".join(NUMERIC + CATEGORICAL)
    started = time.perf_counter()
    with duckdb.connect(str(database), read_only=True) as con:
        con.execute("SET enable_progress_bar = false")
        query = f"SELECT {columns} FROM {TABLE} WHERE event_time >= ? AND event_time < ?"
        reference = con.execute(query, [START, CURRENT_START]).df()
        current = con.execute(query, [CURRENT_START, CURRENT_END]).df()
    loaded = time.perf_counter()
    rss_loaded = peak_rss_mb()

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    preset = DataDriftPreset() if method == "default" else DataDriftPreset(method=method)
    snapshot = Report([preset]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    summary = snapshot.dict()
    finished = time.perf_counter()
    values = {}
    for metric in summary.get("metrics", []):
        name = str(metric.get("metric_name", ""))
        if name.startswith(("ValueDrift", "DriftedColumnsCount")):
            values[name] = metric.get("value")
    print(json.dumps({
        "method": method,
        "evidently": evidently.__version__,
        "pandas": pd.__version__,
        "rows_reference": len(reference),
        "rows_current": len(current),
        "load_s": loaded - started,
        "preset_s": finished - loaded,
        "total_s": finished - started,
        "peak_rss_mb_after_load": rss_loaded,
        "peak_rss_mb": peak_rss_mb(),
        "column_values": values,
    }, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--methods", default="default,psi")
    parser.add_argument("--database", type=Path, default=DEFAULT_DB, help="another table made by make_data.py --rows N --out PATH, to find the size Evidently fails at")
    parser.add_argument("--name", default="evidently", help="the results file: data/results/<name>.json")
    parser.add_argument("--child", metavar="METHOD", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.database)
        return

    from common import load_average, machine, run_child, save

    payload: dict = {"machine": machine(), "load_average_start": load_average(), "repeat": args.repeat, "database": str(args.database)}
    if not VENV_PYTHON.exists():
        payload["error"] = f"{VENV_PYTHON} is missing: create it with `make -C benchmarks evidently-venv`"
        print(f"[evidently] {payload['error']}")
        save(args.name, payload)
        return
    import statistics

    for method in args.methods.split(","):
        print(f"[evidently] DataDriftPreset(method={method}) x {args.repeat}, each in a fresh process ...", flush=True)
        try:
            runs = [run_child(VENV_PYTHON, Path(__file__), ["--child", method, "--database", str(args.database)], timeout=3600) for _ in range(args.repeat)]
        except Exception as error:
            payload[method] = {"error": str(error)}
            print(f"  FAILED: {error}", flush=True)
            continue
        figures = {key: statistics.median(r[key] for r in runs) for key in ("load_s", "preset_s", "total_s")}
        payload[method] = {
            **{f"{k.removesuffix('_s')}_median_s": v for k, v in figures.items()},
            "total_runs_s": [r["total_s"] for r in runs],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "peak_rss_mb_runs": [r["peak_rss_mb"] for r in runs],
            "peak_rss_mb_after_load": max(r["peak_rss_mb_after_load"] for r in runs),
            "evidently": runs[-1]["evidently"],
            "pandas": runs[-1]["pandas"],
            "rows_reference": runs[-1]["rows_reference"],
            "rows_current": runs[-1]["rows_current"],
            "column_values": runs[-1]["column_values"],
            "load_average": load_average(),
        }
        print(
            f"  load {figures['load_s']:.2f}s + preset {figures['preset_s']:.2f}s = {figures['total_s']:.2f}s, "
            f"peak RSS {payload[method]['peak_rss_mb']:.0f} MB, load avg {load_average()[0]:.1f}",
            flush=True,
        )
    print(f"[evidently] results: {save(args.name, payload)}")


if __name__ == "__main__":
    main()
