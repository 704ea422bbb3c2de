"""Drift benchmark (issue 2): PSI drift on every feature, a fixed 30-day reference against a
7-day current window, on DuckDB.

Measured in one session, medians of ``--repeat`` runs:

- the floor: one DuckDB query reading the monitored columns once (``count(*)`` + ``sum``/``max``
  per column) over the reference + current rows, and over the current rows alone;
- the first run: builds the reference profile (edges in three queries on DuckDB, categories) and
  counts both windows;
  the cached profile is deleted before every repetition;
- the steady-state run: the profile is cached, only the current window is read;
- how queries and time grow with 5, 25 and 100 monitored columns (a wider table);
- a breakdown of one first and one steady run: time inside the warehouse queries vs the rest;
- peak RSS of a fresh driftline process doing a first run, a steady-state run, and nothing.

    python benchmarks/bench_drift.py [--repeat 5] [--no-scaling]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    DATA, Bench, timed, categorical_features, load_average, machine, measure_monitor, monitor_spec, numeric_features,
    peak_rss_mb, require_data, run_child, save, write_project,
)
from make_data import DEFAULT_DB  # noqa: E402

WIDE_DB = DATA / "bench_wide.duckdb"
PROJECTS = DATA / "projects"
MAIN = ("drift_25", 20, 5, ())
MAIN_SEGMENTED = ("drift_25_segmented", 20, 5, ("segment",))
SCALING = (("drift_wide_5", 4, 1), ("drift_wide_25", 20, 5), ("drift_wide_100", 80, 20))


def project_for(name: str, database: Path, numeric: int, categorical: int, segments=()) -> Path:
    return write_project(PROJECTS / name, database, [monitor_spec(name, numeric, categorical, segments)])


def measure(project: Path, monitor: str, numeric: int, categorical: int, segments, repeat: int) -> dict:
    """Floors, first run and steady-state run of one drift monitor, in one workspace."""
    floor_columns = (numeric_features(numeric), [*categorical_features(categorical), *segments])
    return {"numeric": numeric, "categorical": categorical, **measure_monitor(project, monitor, *floor_columns, repeat)}


def breakdown(project: Path, monitor: str) -> dict:
    """One first and one steady run with every warehouse query timed (compile + execute + fetch)."""
    bench = Bench(project, monitor)
    evaluator = bench.evaluator
    original = evaluator._execute
    log: list[float] = []

    def execute(expr):
        started = time.perf_counter()
        try:
            return original(expr)
        finally:
            log.append(time.perf_counter() - started)

    evaluator._execute = execute
    bench.run()  # warm
    figures = {}
    for label, setup in (("first_run", bench.forget_profile), ("steady_run", None)):
        if setup:
            setup()
        log.clear()
        started = time.perf_counter()
        outcome = bench.run()
        total = time.perf_counter() - started
        figures[label] = {"total_s": total, "queries": outcome.queries, "query_s": list(log), "outside_queries_s": total - sum(log)}
    bench.close()
    return figures


def counting_forms(project: Path, monitor: str, repeat: int = 3) -> dict:
    """The counting query in three forms, same edges, each run as SQL on the same connection:
    what driftline runs on DuckDB (one ``HISTOGRAM`` aggregate per column), the portable form
    other backends run (one ``SUM(CAST(step AS INT))`` per bin), and that form with
    ``COUNT(*) FILTER (WHERE step)``, which ``count(where=)`` compiles to."""
    import re

    import ibis

    from driftline.plan import histograms
    from driftline.plan.source import CURRENT, REFERENCE
    from driftline.windows import reference_window

    bench = Bench(project, monitor)
    bench.run()  # stores the profile
    evaluator = bench.evaluator
    reference = reference_window(evaluator.monitor.reference, bench.window)
    profile, cached, _ = evaluator._profile(reference)
    assert cached
    figures = {}
    for label, windows, runs in (
        ("current window", {CURRENT: bench.window}, repeat),
        ("both windows (first run)", {CURRENT: bench.window, REFERENCE: reference}, max(1, repeat - 1)),
    ):
        expr, layout = evaluator.plan.counts_query(windows, profile.bins)
        native = str(ibis.to_sql(expr, dialect="duckdb"))
        portable_layout = histograms.CountLayout(layout.bins, layout.segments)  # no native histograms
        portable_expr = histograms.counts_query(evaluator.plan.source.tagged(windows), portable_layout)
        portable = str(ibis.to_sql(portable_expr, dialect="duckdb"))
        filtered = re.sub(r"COALESCE\(SUM\(CAST\((.*?) AS INT\)\), 0\)", r"COUNT(*) FILTER(WHERE \1)", portable, flags=re.DOTALL)
        assert "HISTOGRAM" in native and "HISTOGRAM" not in portable and "SUM(CAST" not in filtered
        native_t = timed(lambda q=native: bench.sql(q), runs, warmup=1)
        sum_t = timed(lambda q=portable: bench.sql(q), runs, warmup=0)
        filter_t = timed(lambda q=filtered: bench.sql(q), runs, warmup=0)
        counts = [histograms.rollup(bench.duck.execute(q).df(), lay) for q, lay in ((native, layout), (portable, portable_layout))]
        same = all(counts[0][k].sort_index().equals(counts[1][k].sort_index()) for k in counts[1]) and counts[0].keys() == counts[1].keys()
        figures[label] = {"histogram_s": native_t.median, "sum_s": sum_t.median, "filter_s": filter_t.median, "runs": runs, "same_counts": same}
        print(f"  {label}: FILTER {filter_t.median:.2f}s, SUM(CAST) {sum_t.median:.2f}s, HISTOGRAM {native_t.median:.2f}s, same counts: {same}", flush=True)
    bench.close()
    return figures


def edge_forms(project: Path, monitor: str, repeat: int = 3) -> dict:
    """The reference's exact quantile edges two ways, on the same connection: what driftline
    runs on DuckDB (a sample's brackets, three queries) and the one ``quantile_cont`` query the
    other backends run; then each in fresh processes for the peak memory."""
    bench = Bench(project, monitor)
    bracketed, quantile_cont = _edge_computations(bench)
    figures = {"bracketed_s": timed(bracketed, repeat).median, "quantile_cont_s": timed(quantile_cont, repeat).median}
    mine, theirs = bracketed(), quantile_cont()
    pairs = [(float(mine[k]), float(theirs[k])) for k in theirs.index if pd.notna(theirs[k])]
    figures |= {
        "edges": len(pairs),
        "bit_identical": sum(a == b for a, b in pairs),
        "max_relative_difference": max(abs(a - b) / max(abs(b), 1e-300) for a, b in pairs),
    }
    bench.close()
    for form in ("bracketed", "quantile_cont"):
        runs = [run_child(sys.executable, Path(__file__), ["--child", f"edges-{form}", str(project), monitor]) for _ in range(repeat)]
        figures[f"{form}_peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    print(
        f"  bracketed {figures['bracketed_s']:.2f}s / {figures['bracketed_peak_rss_mb']:.0f} MB, quantile_cont "
        f"{figures['quantile_cont_s']:.2f}s / {figures['quantile_cont_peak_rss_mb']:.0f} MB; {figures['bit_identical']} of "
        f"{figures['edges']} edges bit-identical, max relative difference {figures['max_relative_difference']:.1e}",
        flush=True,
    )
    return figures


def _edge_computations(bench: Bench):
    from driftline.plan import bracketed_quantiles, histograms
    from driftline.windows import reference_window

    plan = bench.evaluator.plan
    reference = reference_window(plan.monitor.reference, bench.window)
    execute = lambda expr: expr.execute()  # noqa: E731
    rows = plan.source.between(reference)
    bracketed = lambda: bracketed_quantiles.bracketed_edges(rows, plan.binned_columns, execute).figures  # noqa: E731
    single = histograms.edges_query(plan.source.between(reference), plan.binned_columns, plan.dialect)
    return bracketed, lambda: execute(single).iloc[0]


def child(mode: str, project: str, monitor: str) -> None:
    """A fresh process: peak RSS of opening the workspace and doing one run of ``mode``."""
    bench = Bench(Path(project), monitor)
    started = time.perf_counter()
    queries = 0
    if mode == "first":
        bench.forget_profile()
        started = time.perf_counter()
        queries = bench.run().queries
    elif mode == "steady":
        queries = bench.run().queries
    elif mode.startswith("edges-"):
        bracketed, quantile_cont = _edge_computations(bench)
        started = time.perf_counter()
        (bracketed if mode == "edges-bracketed" else quantile_cont)()
    bench.close()
    print(json.dumps({"mode": mode, "seconds": time.perf_counter() - started, "queries": queries, "peak_rss_mb": peak_rss_mb()}))


def memory(project: Path, monitor: str, repeat: int = 3) -> dict:
    figures = {}
    for mode in ("idle", "first", "steady"):
        runs = [run_child(sys.executable, Path(__file__), ["--child", mode, str(project), monitor]) for _ in range(repeat)]
        figures[mode] = {
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "peak_rss_mb_runs": [r["peak_rss_mb"] for r in runs],
            "seconds_runs": [r["seconds"] for r in runs],
            "queries": runs[-1]["queries"],
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-scaling", action="store_true", help="skip the 5/25/100-column table")
    parser.add_argument("--edges-only", action="store_true", help="only the edge forms, added to the saved drift results")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PROJECT", "MONITOR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    require_data()

    payload: dict = {"machine": machine(), "load_average_start": load_average(), "repeat": args.repeat}
    name, numeric, categorical, segments = MAIN
    main_project = project_for(name, DEFAULT_DB, numeric, categorical, segments)
    if args.edges_only:
        saved = json.loads((DATA / "results" / "drift.json").read_text())
        saved["edge_forms"] = edge_forms(main_project, name, args.repeat)
        print(f"[drift] results: {save('drift', saved)}")
        return
    print(f"[drift] {name}: floors, first and steady runs ({args.repeat} repetitions) ...", flush=True)
    payload["main"] = measure(main_project, name, numeric, categorical, segments, args.repeat)
    _report(payload["main"])

    name_s, numeric_s, categorical_s, segments_s = MAIN_SEGMENTED
    segmented_project = project_for(name_s, DEFAULT_DB, numeric_s, categorical_s, segments_s)
    print(f"[drift] {name_s} ...", flush=True)
    payload["segmented"] = measure(segmented_project, name_s, numeric_s, categorical_s, segments_s, args.repeat)
    _report(payload["segmented"])

    print("[drift] breakdown of one first and one steady run ...", flush=True)
    payload["breakdown"] = breakdown(main_project, name)
    print("[drift] the counting query: HISTOGRAM vs SUM(CAST) vs COUNT(*) FILTER ...", flush=True)
    payload["counting_forms"] = counting_forms(main_project, name)
    print("[drift] exact quantile edges: bracketed vs quantile_cont ...", flush=True)
    payload["edge_forms"] = edge_forms(main_project, name)
    print("[drift] peak RSS in fresh processes ...", flush=True)
    payload["memory"] = memory(main_project, name)
    print(json.dumps(payload["memory"], indent=1), flush=True)

    if not args.no_scaling:
        if not WIDE_DB.exists():
            from make_data import make

            print(f"[drift] generating {WIDE_DB.name} (80 numeric + 20 categorical) ...", flush=True)
            make(WIDE_DB, numeric=80, categorical=20)
        payload["scaling"] = []
        for name_w, numeric_w, categorical_w in SCALING:
            print(f"[drift] scaling: {name_w} ...", flush=True)
            project = project_for(name_w, WIDE_DB, numeric_w, categorical_w)
            payload["scaling"].append(measure(project, name_w, numeric_w, categorical_w, (), args.repeat))
            _report(payload["scaling"][-1])
    print(f"[drift] results: {save('drift', payload)}")


def _report(m: dict) -> None:
    print(
        f"  floor both {m['floor_both']['median_s']:.3f}s, floor current {m['floor_current']['median_s']:.3f}s, "
        f"first {m['first_run']['median_s']:.3f}s ({m['first_run']['queries']} queries, {m['first_over_floor_both']:.1f}x floor), "
        f"steady {m['steady_run']['median_s']:.3f}s ({m['steady_run']['queries']} queries, "
        f"{m['steady_over_floor_current']:.1f}x current floor, {m['steady_over_floor_both']:.1f}x both-window floor), "
        f"load {m['load_average'][0]:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
