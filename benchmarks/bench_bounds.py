"""Lower bounds (issues 2 and 3): what the two speed targets still missed would need, measured
with the cheapest exact primitives DuckDB offers on the benchmark's data.

- **first run ≤ 6× the floor** (``drift_25``). A first run does at least what a steady-state run
  does (count the current window, judge, store) and, on top, finds the reference's exact
  quantile edges (SPEC §6: numpy's interpolated quantiles). Whatever the method, that takes at
  least one pass placing every reference value of every numeric column against a boundary that
  depends on the data. The cheapest such pass measured, per column: one ``quantile_cont(x, 0.5)``
  (DuckDB's selection, one quantile instead of nine), or one ``GROUP BY`` of an integer bucket
  ``CAST((x - lo) * s AS INTEGER)`` (a counting pass, before any value is fetched). So
  ``steady run + Σ_columns min(the two)`` is below any exact first run. The counting pass as one
  query for every column (``GROUPING SETS``, so the number of queries stays flat; a UNION ALL of
  12 or more grouped branches never returns on DuckDB 1.5.6) is timed too.
- **the metrics add ≤ 50 % to a steady-state run** (``metrics_seg`` over ``drift_seg``). Exact
  ``roc_auc`` (ties averaged, per segment) needs the window's scores ranked overall and within
  each segment. The cheapest forms measured: ``rank()`` over the scores, and ``rank()``
  partitioned by ``segment``, each summed over the positives (other forms were slower: see
  RESULTS.md). Those two window queries alone, set against the budget of half a drift-only run.

    python benchmarks/bench_bounds.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_drift import MAIN, PROJECTS, project_for  # noqa: E402
from bench_metrics import drift_only_spec, floor_columns  # noqa: E402
from common import (  # noqa: E402
    CURRENT_END, CURRENT_START, REFERENCE_END, REFERENCE_START, TABLE, Bench, between, categorical_features,
    floor_query, load_average, machine, numeric_features, require_data, save, timed, write_project,
)
from make_data import DEFAULT_DB  # noqa: E402

BUCKETS = 16_384  # as fine as a counting pass would need to keep the values to fetch small


def first_run_bound(repeat: int) -> dict:
    name, numeric, categorical, segments = MAIN
    bench = Bench(project_for(name, DEFAULT_DB, numeric, categorical, segments), name)
    columns = numeric_features(numeric)
    floor = timed(lambda: bench.sql(floor_query(columns, categorical_features(categorical), REFERENCE_START, CURRENT_END)), repeat)
    bench.run()  # the profile is cached from here on
    steady = timed(bench.run, repeat)
    reference = between(REFERENCE_START, REFERENCE_END)
    per_column, buckets = {}, {}
    for column in columns:
        lo, hi = bench.sql(f"SELECT min({column}), max({column}) FROM (SELECT * FROM {TABLE} TABLESAMPLE 2% (SYSTEM) WHERE {reference} AND isfinite({column}))")[0]
        scale = BUCKETS / (hi - lo)
        bucket = f"TRY_CAST(({column} - {lo!r}) * {scale!r} AS INTEGER)"
        buckets[column] = bucket
        selection = timed(lambda c=column: bench.sql(f"SELECT quantile_cont({c}, 0.5) FROM {TABLE} WHERE {reference}"), repeat)
        counting = timed(lambda b=bucket: bench.sql(f"SELECT {b} AS b, count(*) FROM {TABLE} WHERE {reference} GROUP BY b"), repeat)
        per_column[column] = {"quantile_cont_s": selection.median, "bucket_group_by_s": counting.median}
    inner = ", ".join(f"{b} AS {c}" for c, b in buckets.items())
    grouping_sets = f"SELECT {', '.join(columns)}, count(*) FROM (SELECT {inner} FROM {TABLE} WHERE {reference}) GROUP BY GROUPING SETS ({', '.join(f'({c})' for c in columns)})"
    one_query = timed(lambda: bench.sql(grouping_sets), repeat)
    bench.close()
    cheapest = sum(min(c.values()) for c in per_column.values())
    bound = steady.median + cheapest
    return {
        "monitor": name,
        "floor_both_s": floor.median,
        "steady_run_s": steady.median,
        "per_column": per_column,
        "cheapest_pass_s": cheapest,
        "grouping_sets_pass_s": one_query.median,
        "bound_s": bound,
        "one_query_bound_s": steady.median + one_query.median,
        "bound_over_floor": bound / floor.median,
        "target_s": 6 * floor.median,
    }


def metrics_bound(repeat: int) -> dict:
    spec = drift_only_spec()
    bench = Bench(write_project(PROJECTS / spec["name"], DEFAULT_DB, [spec]), spec["name"])
    bench.run()
    drift_only = timed(bench.run, repeat)
    window = between(CURRENT_START, CURRENT_END)
    scored = f"SELECT segment, label, score FROM {TABLE} WHERE {window} AND label IS NOT NULL AND isfinite(score)"
    ranked = "SELECT {keys} sum(CASE WHEN label THEN r ELSE 0 END) FROM (SELECT *, rank() OVER (w) AS r FROM ({scored}) WINDOW w AS ({order})) {group}"
    overall = timed(lambda: bench.sql(ranked.format(keys="", scored=scored, order="ORDER BY score", group="")), repeat)
    by_segment = timed(lambda: bench.sql(ranked.format(keys="segment,", scored=scored, order="PARTITION BY segment ORDER BY score", group="GROUP BY segment")), repeat)
    floor = timed(lambda: bench.sql(floor_query(*floor_columns(True), CURRENT_START, CURRENT_END)), repeat)
    bench.close()
    sorts = overall.median + by_segment.median
    return {
        "drift_only_steady_s": drift_only.median,
        "budget_s": 0.5 * drift_only.median,
        "rank_overall_s": overall.median,
        "rank_per_segment_s": by_segment.median,
        "rank_sorts_s": sorts,
        "floor_current_s": floor.median,
        "sorts_share_of_budget": sorts / (0.5 * drift_only.median),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    require_data()
    payload = {"machine": machine(), "load_average_start": load_average(), "repeat": args.repeat}
    print("[bounds] first run ...", flush=True)
    first = payload["first_run"] = first_run_bound(args.repeat)
    print(
        f"  floor {first['floor_both_s']:.3f}s, steady run {first['steady_run_s']:.3f}s, one exact pass over the "
        f"reference's {len(first['per_column'])} columns {first['cheapest_pass_s']:.3f}s: bound {first['bound_s']:.3f}s = "
        f"{first['bound_over_floor']:.1f}x the floor (target 6x = {first['target_s']:.3f}s); the pass as one query "
        f"{first['grouping_sets_pass_s']:.3f}s: {first['one_query_bound_s'] / first['floor_both_s']:.1f}x",
        flush=True,
    )
    print("[bounds] metrics ...", flush=True)
    metrics = payload["metrics"] = metrics_bound(args.repeat)
    print(
        f"  drift-only steady run {metrics['drift_only_steady_s']:.3f}s, budget {metrics['budget_s']:.3f}s; rank sorts "
        f"{metrics['rank_overall_s']:.3f}s + {metrics['rank_per_segment_s']:.3f}s = {metrics['rank_sorts_s']:.3f}s "
        f"({metrics['sorts_share_of_budget']:.0%} of the budget)",
        flush=True,
    )
    print(f"[bounds] results: {save('bounds', payload)}")


if __name__ == "__main__":
    main()
