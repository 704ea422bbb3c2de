"""Drift benchmark (issues 2 and 13): PSI drift on every feature, a fixed 30-day reference
against a 7-day current window, on DuckDB.

Measured in one session, medians of ``--repeat`` runs:

- the floor: one DuckDB query reading the monitored columns once (``count(*)`` + ``sum``/``max``
  per column) over the reference + current rows, and over the current rows alone;
- the first run with the default ``edges: approximate``: the reference's size and edges (on
  DuckDB the data values at the quantiles' positions in a sample of about 150,000 rows), its
  categories, and one counting query
  over both windows; the cached profile is deleted before every repetition;
- the steady-state run: the profile is cached, one query reads the current window;
- a first run of the same monitor with ``edges: exact`` (one ``quantile_cont`` query);
- a breakdown of one first and one steady run: time inside the warehouse queries vs the rest;
- the counting query in three forms, and the edges query in three: the sample (default), exact
  ``quantile_cont``, and DuckDB's t-digest ``approx_quantile``, each with the rank error of
  its edges against numpy;
- peak RSS of a fresh driftline process doing a first run, a steady-state run, and nothing;
- how queries and time grow with 5, 25 and 100 monitored columns (a wider table).

    python benchmarks/bench_drift.py [--repeat 5] [--no-scaling] [--edges-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # edge_ranks: SPEC §6's rank error, as the tests measure it

from common import (  # noqa: E402
    DATA, REFERENCE_END, REFERENCE_START, TABLE, Bench, between, categorical_features, load_average, machine,
    measure_monitor, monitor_spec, numeric_features, peak_rss_mb, require_data, run_child, save, timed, write_project,
)
from make_data import DEFAULT_DB  # noqa: E402

WIDE_DB = DATA / "bench_wide.duckdb"
PROJECTS = DATA / "projects"
MAIN = ("drift_25", 20, 5, ())
EXACT = "drift_25_exact"  # drift_25 with `edges: exact`, in the same project
MAIN_SEGMENTED = ("drift_25_segmented", 20, 5, ("segment",))
SCALING = (("drift_wide_5", 4, 1), ("drift_wide_25", 20, 5), ("drift_wide_100", 80, 20))
EDGE_FORMS = ("approximate", "exact", "tdigest")
# The columns whose edges are checked against numpy: one of each shape make_data draws (a normal
# with nulls, a log-normal, a uniform, integer counts with long tie blocks, a normal with NaN).
RANK_COLUMNS = ("f0", "f1", "f2", "f3", "f4")


def project_for(name: str, database: Path, numeric: int, categorical: int, segments=()) -> Path:
    return write_project(PROJECTS / name, database, [monitor_spec(name, numeric, categorical, segments)])


def main_project() -> Path:
    """``drift_25`` and, beside it, the same monitor with ``edges: exact``."""
    name, numeric, categorical, segments = MAIN
    monitors = [monitor_spec(name, numeric, categorical, segments), monitor_spec(EXACT, numeric, categorical, segments, drift_options={"edges": "exact"})]
    return write_project(PROJECTS / name, DEFAULT_DB, monitors)


def measure(project: Path, monitor: str, numeric: int, categorical: int, segments, repeat: int, steady: bool = True) -> dict:
    """Floors, first run and (unless ``steady`` is false) steady-state run of one drift monitor, in one workspace."""
    floor_columns = (numeric_features(numeric), [*categorical_features(categorical), *segments])
    return {"numeric": numeric, "categorical": categorical, **measure_monitor(project, monitor, *floor_columns, repeat, steady=steady)}


def breakdown(project: Path, monitor: str) -> dict:
    """One first and one steady run with every warehouse query timed (compile + execute + fetch)."""
    bench = Bench(project, monitor)
    measurer = bench.evaluator.measurer
    original = measurer.execute
    log: list[float] = []

    def execute(expr):
        started = time.perf_counter()
        try:
            return original(expr)
        finally:
            log.append(time.perf_counter() - started)

    measurer.execute = execute  # every query of a run goes through it
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

    from driftline import dialects
    from driftline.plan import histograms
    from driftline.plan.source import CURRENT, REFERENCE
    from driftline.windows import reference_window

    bench = Bench(project, monitor)
    bench.run()  # stores the profile
    evaluator = bench.evaluator
    reference = reference_window(evaluator.monitor.reference, bench.window)
    profile = evaluator.measurer.cached_profile(reference)
    assert profile is not None, "the run above stores the profile"
    figures = {}
    for label, windows, runs in (
        ("current window", {CURRENT: bench.window}, repeat),
        ("both windows (first run)", {CURRENT: bench.window, REFERENCE: reference}, max(1, repeat - 1)),
    ):
        expr, layout = evaluator.plan.counts_query(windows, profile.bins)
        native = dialects.to_sql(expr, "duckdb")
        portable_layout = histograms.CountLayout(layout.bins, layout.segments)  # no native histograms
        portable_expr = histograms.counts_query(evaluator.plan.source.tagged(windows), portable_layout)
        portable = dialects.to_sql(portable_expr, "duckdb")
        filtered = re.sub(r"COALESCE\(SUM\(CAST\((.*?) AS INT\)\), 0\)", r"COUNT(*) FILTER(WHERE \1)", portable, flags=re.DOTALL)
        assert "HISTOGRAM" in native.upper() and "HISTOGRAM" not in portable.upper() and "SUM(CAST" not in filtered
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
    """The reference's edges query in three forms, timed on the same connection: the default
    (``edges: approximate``: on DuckDB the data values at the quantiles' positions in a Bernoulli
    sample), ``edges:
    exact`` (``quantile_cont``), and DuckDB's t-digest ``approx_quantile``, which driftline does
    not run (slower than the sample). For each, the largest rank error of its edges against
    numpy on ``RANK_COLUMNS`` over every run, the warm-up included (the sample differs from run
    to run); then each form in fresh processes for the peak memory."""
    from edge_ranks import BINS, rank_errors

    bench = Bench(project, monitor)
    assert bench.evaluator.monitor.checks[0].bins == BINS, "rank_errors measures against k/BINS"
    queries, numeric = edge_queries(bench)
    values = reference_values(bench)
    figures: dict = {"columns": len(numeric), "quantiles": BINS - 1, "rank_columns": list(RANK_COLUMNS)}
    for form, expr in queries.items():
        results = []
        timing = timed(lambda e=expr: results.append(e.execute().iloc[0]), repeat)
        errors = {c: max(max(rank_errors(values[c], quantiles_of(row, numeric.index(c), BINS))) for row in results) for c in RANK_COLUMNS}
        figures[form] = {"seconds": timing.median, "runs_s": timing.times, "max_rank_error": max(errors.values()), "max_rank_error_by_column": errors}
    bench.close()
    for form in EDGE_FORMS:
        runs = [run_child(sys.executable, Path(__file__), ["--child", f"edges-{form}", str(project), monitor]) for _ in range(repeat)]
        figures[form]["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        f = figures[form]
        print(f"  {form}: {f['seconds']:.2f}s, {f['peak_rss_mb']:.0f} MB, max rank error {100 * f['max_rank_error']:.2f} points", flush=True)
    return figures


def edge_queries(bench: Bench):
    """The edges query of ``bench``'s monitor over its reference in each of ``EDGE_FORMS``, and
    its numeric columns (the i-th column's quantiles are ``e{i}_q{k}``)."""
    from driftline import dialects
    from driftline.plan import histograms
    from driftline.windows import reference_window

    plan = bench.evaluator.plan
    reference = reference_window(plan.monitor.reference, bench.window)
    rows = plan.source.between(reference)
    size = plan.reference_size_query(reference)  # what a run counts first: it sets the sample rate
    reference_rows = int(size.execute()[histograms.SIZE].iloc[0]) if size is not None else None
    numeric = [c for c in plan.binned_columns if c.binning.kind == "numeric"]
    exact = [replace(c, binning=replace(c.binning, edges="exact")) for c in numeric]
    tdigest = {}  # the edges query's shape with the backend's own approximate quantiles
    for i, column in enumerate(numeric):
        finite = histograms.finite(rows[column.name]).cast("float64")
        approximate = dialects.approximate_quantiles(finite, histograms.quantile_probabilities(column), "duckdb")
        tdigest |= {f"e{i}_q{k}": q for k, q in enumerate(approximate)}
    queries = {
        "approximate": histograms.edges_query(rows, numeric, plan.dialect, reference_rows),
        "exact": histograms.edges_query(rows, exact, plan.dialect),
        "tdigest": rows.aggregate(**tdigest),
    }
    return queries, [c.name for c in numeric]


def quantiles_of(row, i: int, bins: int) -> list[float]:
    """The i-th numeric column's quantiles at k/bins in a row of the edges query."""
    return [float(row[f"e{i}_q{k}"]) for k in range(bins - 1)]


def reference_values(bench: Bench) -> dict[str, np.ndarray]:
    """The finite reference values of each of ``RANK_COLUMNS``, what numpy measures the edges
    against; sorted once here, so that ``rank_errors``'s own sort finds them in order."""
    reference = between(REFERENCE_START, REFERENCE_END)
    return {c: np.sort(bench.duck.execute(f"SELECT {c} FROM {TABLE} WHERE {reference} AND isfinite({c})").fetchnumpy()[c]) for c in RANK_COLUMNS}


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
        expr = edge_queries(bench)[0][mode.removeprefix("edges-")]
        started = time.perf_counter()
        expr.execute()
        queries = 1
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
    project = main_project()
    if args.edges_only:
        saved = json.loads((DATA / "results" / "drift.json").read_text())
        saved["edge_forms"] = edge_forms(project, name, args.repeat)
        print(f"[drift] results: {save('drift', saved)}")
        return
    print(f"[drift] {name}: floors, first and steady runs ({args.repeat} repetitions) ...", flush=True)
    payload["main"] = measure(project, name, numeric, categorical, segments, args.repeat)
    _report(payload["main"])

    print(f"[drift] {EXACT}: the first run with `edges: exact` ...", flush=True)
    payload["exact_edges"] = measure(project, EXACT, numeric, categorical, segments, args.repeat, steady=False)
    _report(payload["exact_edges"])

    name_s, numeric_s, categorical_s, segments_s = MAIN_SEGMENTED
    segmented_project = project_for(name_s, DEFAULT_DB, numeric_s, categorical_s, segments_s)
    print(f"[drift] {name_s} ...", flush=True)
    payload["segmented"] = measure(segmented_project, name_s, numeric_s, categorical_s, segments_s, args.repeat)
    _report(payload["segmented"])

    print("[drift] breakdown of one first and one steady run ...", flush=True)
    payload["breakdown"] = breakdown(project, name)
    print("[drift] the counting query: HISTOGRAM vs SUM(CAST) vs COUNT(*) FILTER ...", flush=True)
    payload["counting_forms"] = counting_forms(project, name, args.repeat)
    print("[drift] the edges query: sample (default) vs quantile_cont (exact) vs t-digest ...", flush=True)
    payload["edge_forms"] = edge_forms(project, name, args.repeat)
    print("[drift] peak RSS in fresh processes ...", flush=True)
    payload["memory"] = memory(project, name)
    print(json.dumps(payload["memory"], indent=1), flush=True)

    if not args.no_scaling:
        if not WIDE_DB.exists():
            from make_data import make

            print(f"[drift] generating {WIDE_DB.name} (80 numeric + 20 categorical) ...", flush=True)
            make(WIDE_DB, numeric=80, categorical=20)
        payload["scaling"] = []
        for name_w, numeric_w, categorical_w in SCALING:
            print(f"[drift] scaling: {name_w} ...", flush=True)
            scaling_project = project_for(name_w, WIDE_DB, numeric_w, categorical_w)
            payload["scaling"].append(measure(scaling_project, name_w, numeric_w, categorical_w, (), args.repeat))
            _report(payload["scaling"][-1])
    print(f"[drift] results: {save('drift', payload)}")


def _report(m: dict) -> None:
    line = (
        f"  floor both {m['floor_both']['median_s']:.3f}s, floor current {m['floor_current']['median_s']:.3f}s, "
        f"first {m['first_run']['median_s']:.3f}s ({m['first_run']['queries']} queries, {m['first_over_floor_both']:.1f}x floor)"
    )
    if "steady_run" in m:
        line += (
            f", steady {m['steady_run']['median_s']:.3f}s ({m['steady_run']['queries']} queries, "
            f"{m['steady_over_floor_current']:.1f}x current floor, {m['steady_over_floor_both']:.1f}x both-window floor)"
        )
    print(f"{line}, load {m['load_average'][0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
