"""Render ``benchmarks/data/results/*.json`` (written by the bench scripts) as tables in
``benchmarks/data/results/tables.md``, which RESULTS.md quotes. Run by ``run_all.py``.

    python benchmarks/report.py
"""

from __future__ import annotations

import json
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
    notes = {"main": "", "exact_edges": " (`edges: exact`; first run only)", "segmented": ""}
    for key, note in notes.items():
        m = d.get(key)
        if not m:
            continue
        label = f"`{m['monitor']}`{note}" + (f" (segments: {', '.join(m['segments'])})" if m["segments"] else "")
        steady = ["—"] * 4
        if "steady_run" in m:
            steady = [spread(m["steady_run"]), str(m["steady_run"]["queries"]), f"**{x(m['steady_over_floor_current'])}**", f"**{x(m['steady_over_floor_both'])}**"]
        out.append(
            f"| {label} | {spread(m['floor_both'])} | {spread(m['floor_current'])} | {spread(m['first_run'])} | "
            f"{m['first_run']['queries']} | **{x(m['first_over_floor_both'])}** | {' | '.join(steady)} | {m['load_average'][0]:.1f} |"
        )
    out.append("")
    b = d.get("breakdown")
    if b:
        out += ["Where one run's time goes (`drift_25`, one run each, every query timed from ibis compile to the pandas frame):", ""]
        out += ["| run | total | the queries, in order | outside the queries (plan, judge, store) |", "|---|---|---|---|"]
        names = {
            "first_run": ["reference size", "edges: quantiles of a sample of about 150,000 reference rows",
                          "categories", "counts, both windows"],
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
    out += edge_forms_table(d.get("edge_forms"))
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


EDGE_FORMS = {
    "approximate": "`edges: approximate` (the default): the data values at the quantiles' positions in a Bernoulli sample of about 150,000 rows",
    "exact": "`edges: exact`: `quantile_cont`, a data value inside a tie block",
    "tdigest": "DuckDB's t-digest `approx_quantile` (for information: driftline does not run it)",
}


def edge_forms_table(edges: dict | None) -> list[str]:
    if not edges:
        return []
    columns = ", ".join(f"`{c}`" for c in edges["rank_columns"])
    out = [f"The reference's edges query ({edges['columns']} columns × {edges['quantiles']} quantiles, 4.05M reference rows) in three forms. "
           "Time on the benchmark's connection; peak RSS of a fresh process running only that query; the rank error of an edge "
           "is how far the share of the reference's finite values below it lies from its target k/10 (or from the exact "
           f"quantile's share, where a tie block straddles the target), the largest over {columns} and every run, "
           "against numpy (SPEC §6 guarantees at most 1 point for approximate edges):", ""]
    out += ["| form | time | peak RSS | max rank error | per column |", "|---|---|---|---|---|"]
    for form, label in EDGE_FORMS.items():
        f = edges.get(form)
        if f:
            per_column = ", ".join(f"{c} {points(e)}" for c, e in f["max_rank_error_by_column"].items())
            out.append(f"| {label} | {s(f['seconds'])} | {f['peak_rss_mb']:.0f} MB | **{points(f['max_rank_error'])}** | {per_column} |")
    out.append("")
    return out


def points(share: float) -> str:
    """A share as percentage points."""
    return f"{100 * share:.2f} pt"


def trailing_tables(t: dict) -> list[str]:
    m = t["trailing"]
    windows = m["windows"]
    out = [f"### Trailing reference: {len(windows)} daily windows, each against its trailing {m['trailing_days']} days", ""]
    out += [f"`{m['monitor']}`: the 25 features, `reference: {{trailing: {m['trailing_days']}d}}`, `schedule: {{every: 1d}}`, "
            f"windows {windows[0][0][:10]} to {windows[-1][1][:10]}: every window has a reference of its own, so every run is a "
            f"first run. Each window's floor reads its reference + current rows ({m['trailing_days'] + 1} days).", ""]
    n = len(windows)
    out += [f"| windows | queries | {n} floors (sum) | {n} runs (total) | total ÷ floors | each window (median of the runs) | load avg |", "|---|---|---|---|---|---|---|"]
    queries = m["total"]["queries"]
    per_window = ", ".join(f"{v:.2f}" for v in m["window_median_s"])
    out.append(
        f"| {n} | {sum(queries)} ({queries[0]} each) | {s(m['floors_total_s'])} | {spread(m['total'])} | "
        f"**{x(m['total_over_floors'])}** | {per_window} s | {m['load_average'][0]:.1f} |"
    )
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
            out.append(f"- the metrics add **{added:+.0%}** to the drift-only {run.replace('_', ' ')}")
    out.append("")
    return out


def summary_table(drift: dict | None, trailing: dict | None, evidently: dict | None, metrics: dict | None) -> list[str]:
    """Issue 13's targets, each with what this run measured."""
    rows = []
    main = (drift or {}).get("main")
    if main:
        first, both, current = main["first_run"]["median_s"], main["floor_both"]["median_s"], main["floor_current"]["median_s"]
        steady = main["steady_run"]["median_s"]
        rows += [
            ("first run (default `edges: approximate`) ≤ 10× the floor over both windows",
             f"**{x(first / both)}** ({s(first)} vs {s(both)}; {main['first_run']['queries']} queries)", met(first / both <= 10)),
            ("steady-state run ≤ 2× the floor over both windows",
             f"**{x(steady / both)}** ({s(steady)} vs {s(both)}; {main['steady_run']['queries']} query)", met(steady / both <= 2)),
            ("… and ≤ 10× the floor over the current window", f"**{x(steady / current)}** ({s(steady)} vs {s(current)})", met(steady / current <= 10)),
        ]
    rows += evidently_rows(drift, evidently)
    if trailing:
        m = trailing["trailing"]
        rows.append((
            f"trailing {m['trailing_days']}-day reference, {len(m['windows'])} daily windows (every run a first run)",
            f"**{s(m['total']['median_s'])}** in all, **{x(m['total_over_floors'])}** the {len(m['windows'])} floors ({s(m['floors_total_s'])})",
            "(no target)",
        ))
    exact = (drift or {}).get("exact_edges")
    if exact:
        rows.append(("first run with `edges: exact`", f"**{x(exact['first_over_floor_both'])}** the floor over both windows ({s(exact['first_run']['median_s'])})", "(no target)"))
    if metrics and "metrics_added_first_run" in metrics:
        rows.append(("drift + 10 metrics over 5 segments, against drift only",
                     f"**{metrics['metrics_added_first_run']:+.0%}** (first run), **{metrics['metrics_added_steady_run']:+.0%}** (steady-state run)", "(no target)"))
    if not rows:
        return []
    out = ["## Summary against the targets (issue 13)", "", "| target | measured (this run) | met? |", "|---|---|---|"]
    out += [f"| {target} | {measured} | {verdict} |" for target, measured, verdict in rows]
    return out + [""]


def evidently_rows(drift: dict | None, evidently: dict | None) -> list[tuple[str, str, str]]:
    """Evidently's default ``DataDriftPreset`` against a driftline first run: time and peak memory."""
    preset = (evidently or {}).get("default")
    main, memory = (drift or {}).get("main"), (drift or {}).get("memory")
    if not preset or preset.get("error") or not main or not memory:
        return []
    faster = preset["total_median_s"] / main["first_run"]["median_s"]
    less = preset["peak_rss_mb"] / memory["first"]["peak_rss_mb"]
    return [
        ("≥ 100× faster than Evidently `DataDriftPreset` (first run)",
         f"**{x(faster)} faster** ({s(preset['total_median_s'])} vs {s(main['first_run']['median_s'])})", met(faster >= 100)),
        ("≥ 10× less memory than Evidently (first run)",
         f"**{x(less)} less** ({preset['peak_rss_mb']:.0f} MB vs {memory['first']['peak_rss_mb']:.0f} MB)", met(less >= 10)),
    ]


def met(ok: bool) -> str:
    return "yes" if ok else "no"


def main() -> None:
    drift, trailing, evidently, metrics = load("drift"), load("trailing"), load("evidently"), load("metrics")
    results = {"drift": drift, "trailing": trailing, "metrics": metrics, "evidently": evidently}
    some = next((r for r in results.values() if r), None)
    if some is None:
        sys.exit("no results yet: run python benchmarks/run_all.py")
    out = summary_table(drift, trailing, evidently, metrics)
    out += ["## Machine", ""] + machine_table(some["machine"]) + [""]
    out += ["## Figures", ""]
    if drift:
        out += drift_tables(drift)
    if trailing:
        out += trailing_tables(trailing)
    if evidently:
        out += evidently_tables(evidently, drift)
    if metrics:
        out += metrics_tables(metrics)
    stamps = [f"{n}: {r['recorded_at']} (load average at start {r['load_average_start'][0]:.1f}, at end {r['load_average_end'][0]:.1f})"
              for n, r in results.items() if r]
    out += ["Recorded — " + "; ".join(stamps), ""]
    OUT.write_text("\n".join(out))
    print(f"wrote {OUT}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
