"""Render ``benchmarks/data/results/*.json`` (written by the bench scripts) as tables in
``benchmarks/data/results/tables.md``, which RESULTS.md quotes. Run by ``run_all.py``.

    python benchmarks/report.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "data" / "results"
OUT = RESULTS_DIR / "tables.md"


def load(name: str) -> dict | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def s(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def x(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}×"


def spread(timing: dict) -> str:
    return f"{s(timing['median_s'])} ({timing['min_s']:.2f}–{timing['max_s']:.2f})"


def machine_table(m: dict) -> list[str]:
    return [
        "| | |", "|---|---|",
        f"| CPU | {m['cpu']}, `nproc` = {m['nproc']} |",
        f"| memory | {m['memory_gb']} GB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        f"| duckdb / ibis-framework | {m['duckdb']} / {m['ibis']} |",
    ]


def drift_tables(d: dict) -> list[str]:
    out = ["### Drift: 25 features, 30-day reference vs 7-day window", ""]
    out += [
        "| monitor | floor, both windows | floor, current window | first run | queries | first ÷ floor(both) | steady run | queries | steady ÷ floor(current) | steady ÷ floor(both) | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ("main", "segmented"):
        m = d.get(key)
        if not m:
            continue
        label = f"`{m['monitor']}`" + (f" (segments: {', '.join(m['segments'])})" if m["segments"] else "")
        out.append(
            f"| {label} | {spread(m['floor_both'])} | {spread(m['floor_current'])} | {spread(m['first_run'])} | "
            f"{m['first_run']['queries']} | **{x(m['first_over_floor_both'])}** | {spread(m['steady_run'])} | "
            f"{m['steady_run']['queries']} | **{x(m['steady_over_floor_current'])}** | **{x(m['steady_over_floor_both'])}** | "
            f"{m['load_average'][0]:.1f} |"
        )
    out.append("")
    b = d.get("breakdown")
    if b:
        out += ["Where one run's time goes (`drift_25`, one run each, every query timed from ibis compile to the pandas frame):", ""]
        out += ["| run | total | the queries, in order | outside the queries (plan, judge, store) |", "|---|---|---|---|"]
        names = {
            "first_run": ["edges 1/3: a sample brackets each quantile", "edges 2/3: the ranks of the brackets, per segment",
                          "edges 3/3: the values of the buckets holding the edges, per segment", "categories, per segment",
                          "counts, current window (the reference's from edges 2-3 and categories)"],
            "steady_run": ["counts, current window"],
        }
        for run, f in b.items():
            labels = names[run] if len(names[run]) == len(f["query_s"]) else [f"query {i + 1}" for i in range(len(f["query_s"]))]
            cells = "; ".join(f"{label}: {s(q)}" for label, q in zip(labels, f["query_s"]))
            out.append(f"| {run.replace('_', ' ')} | {s(f['total_s'])} | {cells} | {s(f['outside_queries_s'])} |")
        out.append("")
    forms = d.get("counting_forms")
    if forms:
        out += ["The counting query in three forms, same edges, run as SQL: one `COUNT(*) FILTER (WHERE …)` per bin, one "
                "`SUM(CAST(… AS INT))` per bin (the portable form, what other backends run), and one `HISTOGRAM` per column "
                "(what DuckDB runs now):", ""]
        out += ["| window | FILTER per bin | SUM(CAST) per bin | HISTOGRAM per column | HISTOGRAM vs SUM(CAST) | same counts |", "|---|---|---|---|---|---|"]
        for window, f in forms.items():
            out.append(f"| {window} | {s(f['filter_s'])} | {s(f['sum_s'])} | {s(f['histogram_s'])} | {x(f['sum_s'] / f['histogram_s'])} faster | {f['same_counts']} |")
        out.append("")
    edges = d.get("edge_forms")
    if edges:
        out += ["The reference's exact quantile edges (20 columns × 9 quantiles, 4.05M reference rows) two ways: what "
                "DuckDB runs now (a sample's brackets, three queries) and the one `quantile_cont` query the other backends "
                "run. Time on the benchmark's connection; peak RSS of a fresh process computing only the edges:", ""]
        out += ["| form | time | peak RSS | edges bit-identical | max relative difference |", "|---|---|---|---|---|"]
        out.append(f"| bracketed (DuckDB now) | {s(edges['bracketed_s'])} | {edges['bracketed_peak_rss_mb']:.0f} MB | "
                   f"{edges['bit_identical']} of {edges['edges']} | {edges['max_relative_difference']:.1e} |")
        out.append(f"| `quantile_cont` | {s(edges['quantile_cont_s'])} | {edges['quantile_cont_peak_rss_mb']:.0f} MB | — | — |")
        out.append("")
    scaling = d.get("scaling")
    if scaling:
        out += ["### Growth with the number of columns (`bench_wide.duckdb`: 5M rows, 80 numeric + 20 categorical; no segments)", ""]
        out += [
            "| columns | queries (first / steady) | floor both | first run | first ÷ floor(both) | floor current | steady run | steady ÷ floor(current) | steady ÷ floor(both) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for m in scaling:
            out.append(
                f"| {m['columns']} ({m['numeric']} + {m['categorical']}) | {m['first_run']['queries']} / {m['steady_run']['queries']} | "
                f"{s(m['floor_both']['median_s'])} | {s(m['first_run']['median_s'])} | {x(m['first_over_floor_both'])} | "
                f"{s(m['floor_current']['median_s'])} | {s(m['steady_run']['median_s'])} | {x(m['steady_over_floor_current'])} | "
                f"{x(m['steady_over_floor_both'])} |"
            )
        out.append("")
    mem = d.get("memory")
    if mem:
        out += ["### Peak memory of a driftline process (`drift_25`, fresh process each, embedded DuckDB included)", ""]
        out += ["| process | peak RSS (max of 3) | runs |", "|---|---|---|"]
        labels = {"idle": "imports, opens the project, binds the monitor; no run", "first": "+ one first run", "steady": "+ one steady-state run"}
        for mode, f in mem.items():
            out.append(f"| {labels[mode]} | {f['peak_rss_mb']:.0f} MB | {', '.join(f'{v:.0f}' for v in f['peak_rss_mb_runs'])} |")
        out.append("")
    return out


def evidently_tables(e: dict, d: dict | None) -> list[str]:
    out = ["### Evidently `DataDriftPreset` on the same two windows", ""]
    if e.get("error"):
        return out + [f"Not measured: {e['error']}", ""]
    out += [
        "| configuration | load into pandas | preset | total | peak RSS | vs driftline first run: time / memory | vs steady run: time / memory |",
        "|---|---|---|---|---|---|---|",
    ]
    main = (d or {}).get("main")
    mem = (d or {}).get("memory")
    for method in ("default", "psi"):
        f = e.get(method)
        if not f:
            continue
        if f.get("error"):
            out.append(f"| `{method}` | failed: {f['error'][:200]} | | | | | |")
            continue
        ratios = ["—", "—"]
        if main and mem:
            ratios = [
                f"**{x(f['total_median_s'] / main[run]['median_s'])} faster / {x(f['peak_rss_mb'] / mem[kind]['peak_rss_mb'])} less**"
                for run, kind in (("first_run", "first"), ("steady_run", "steady"))
            ]
        out.append(
            f"| `DataDriftPreset({'' if method == 'default' else 'method=' + repr(method)})` | {s(f['load_median_s'])} | {s(f['preset_median_s'])} | "
            f"{s(f['total_median_s'])} | {f['peak_rss_mb']:.0f} MB | {ratios[0]} | {ratios[1]} |"
        )
    versions = next((e[m] for m in ("default", "psi") if e.get(m) and not e[m].get("error")), None)
    if versions:
        out += ["", f"Evidently {versions['evidently']}, pandas {versions['pandas']}; {versions['rows_reference']:,} reference and {versions['rows_current']:,} current rows; medians of {e['repeat']} runs, each a fresh process."]
    out.append("")
    return out


def metrics_tables(m: dict) -> list[str]:
    out = ["### Drift + 10 model and data metrics, overall and per `segment` (5 values)", ""]
    out += [
        "| monitor | floor both | first run | queries | first ÷ floor(both) | floor current | steady run | queries | steady ÷ floor(current) | steady ÷ floor(both) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in (("drift_only", "drift only"), ("drift_and_metrics", "drift + 10 metrics"), ("metrics_only", "10 metrics, no drift")):
        f = m.get(key)
        if not f:
            continue
        if f.get("error"):
            out.append(f"| {label} | failed: {f['error'][:300]} | | | | | | | | |")
            continue
        out.append(
            f"| {label} (`{f['monitor']}`) | {s(f['floor_both']['median_s'])} | {spread(f['first_run'])} | {f['first_run']['queries']} | "
            f"{x(f['first_over_floor_both'])} | {s(f['floor_current']['median_s'])} | {spread(f['steady_run'])} | {f['steady_run']['queries']} | "
            f"{x(f['steady_over_floor_current'])} | {x(f['steady_over_floor_both'])} |"
        )
    out.append("")
    for run in ("first_run", "steady_run"):
        added = m.get(f"metrics_added_{run}")
        if added is not None:
            out.append(f"- the metrics add **{added:+.0%}** to the drift-only {run.replace('_', ' ')} (target: at most +50 %)")
    out.append("")
    return out


def bounds_tables(b: dict) -> list[str]:
    first, metrics = b["first_run"], b["metrics"]
    per_column = {form: statistics.median(c[form] for c in first["per_column"].values()) for form in ("quantile_cont_s", "bucket_group_by_s")}
    return [
        "### Lower bounds of the two targets still missed (`bench_bounds.py`)", "",
        "| target | budget | what it needs at least, with the cheapest exact forms measured | bound |",
        "|---|---|---|---|",
        f"| first run ≤ 6× the floor (`{first['monitor']}`) | {s(first['target_s'])} (6 × {s(first['floor_both_s'])}) | "
        f"a steady-state run ({s(first['steady_run_s'])}) + one counting pass over the reference's {len(first['per_column'])} numeric columns: "
        f"{s(first['grouping_sets_pass_s'])} as one `GROUPING SETS` query, {s(first['cheapest_pass_s'])} as one query per column "
        f"(the median column: `quantile_cont(x, 0.5)` {s(per_column['quantile_cont_s'])}, an integer-bucket `GROUP BY` {s(per_column['bucket_group_by_s'])}) | "
        f"**{x(first['one_query_bound_s'] / first['floor_both_s'])}** (one query), {x(first['bound_over_floor'])} (a query per column) |",
        f"| metrics add ≤ 50 % (steady) | {s(metrics['budget_s'])} (½ × {s(metrics['drift_only_steady_s'])}) | "
        f"`roc_auc`'s ranks: `rank()` over the scores {s(metrics['rank_overall_s'])} + partitioned by segment {s(metrics['rank_per_segment_s'])} | "
        f"**{metrics['sorts_share_of_budget']:.0%}** of the budget for the sorts alone |",
        "",
    ]


def main() -> None:
    drift, evidently, metrics, bounds = load("drift"), load("evidently"), load("metrics"), load("bounds")
    some = drift or metrics or evidently or bounds
    if some is None:
        sys.exit("no results yet: run python benchmarks/run_all.py")
    out = ["## Machine", ""] + machine_table(some["machine"]) + [""]
    out += ["## Figures", ""]
    if drift:
        out += drift_tables(drift)
    if evidently:
        out += evidently_tables(evidently, drift)
    if metrics:
        out += metrics_tables(metrics)
    if bounds:
        out += bounds_tables(bounds)
    stamps = [f"{n}: {r['recorded_at']} (load average at start {r['load_average_start'][0]:.1f}, at end {r['load_average_end'][0]:.1f})"
              for n, r in (("drift", drift), ("metrics", metrics), ("evidently", evidently), ("bounds", bounds)) if r]
    out += ["Recorded — " + "; ".join(stamps), ""]
    OUT.write_text("\n".join(out))
    print(f"wrote {OUT}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
