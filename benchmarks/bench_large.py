"""Drift at 100M rows on one machine, through the command line: PSI on the 25 features over 5
segments, a fixed 30-day reference against the 7-day window, the DuckDB file on disk.

Each figure comes from a fresh process, as a scheduled ``driftline`` would run:

- the floors: one query reading the monitor's columns once (as in ``bench_drift.py``), over both
  windows and over the current window, each timed after one untimed run in the same process,
  with the same DuckDB ``memory_limit`` and ``threads`` as driftline;
- the first run: ``driftline backfill`` of the one window after the cached reference profile is
  deleted, so it computes edges, categories and the counts of both windows;
- the steady-state run: the same command again, the profile now cached;
- peak RSS of each driftline process (``/usr/bin/time``'s maximum resident set size), with the
  DuckDB settings the project file gave it (its ``duckdb:`` block);
- what a run reads: the compressed bytes of the columns it scans, from DuckDB's storage info,
  and its queries, as ``driftline compile`` prints them per dialect (for the 1B-row estimate in
  RESULTS.md).

One repetition per figure by default: at 100M rows a first run takes minutes.

    python benchmarks/bench_large.py [--rows 100000000] [--memory-limit 2GB] [--threads N] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    AT, CURRENT_END, CURRENT_START, DATA, REFERENCE_END, REFERENCE_START, RESULTS_SCHEMA, TABLE, categorical_features,
    floor_query, load_average, machine, monitor_spec, numeric_features, save, write_project,
)

MONITOR = "drift_large"
NUMERIC, CATEGORICAL, SEGMENTS = 20, 5, ("segment",)
DRIFTLINE = Path(sys.executable).parent / "driftline"
COMPILE_DIALECTS = ("duckdb", "snowflake", "databricks")


def database_for(rows: int) -> Path:
    return DATA / f"bench_{rows // 1_000_000}m.duckdb" if rows % 1_000_000 == 0 else DATA / f"bench_{rows}.duckdb"


def ready_database(rows: int, database: Path | None = None) -> Path:
    """``database`` (by default the one for ``rows``), made by make_data.py when missing."""
    database = database or database_for(rows)
    if not database.exists():
        from make_data import make

        print(f"[data] generating {database.name} ({rows:,} rows) ...", flush=True)
        print(f"  {make(database, rows=rows)['seconds']:.0f}s", flush=True)
    return database


def project(database: Path, memory_limit: str | None, threads: int | None) -> Path:
    """The benchmark project over ``database``, DuckDB's resources in its ``duckdb:`` block."""
    directory = write_project(DATA / "projects" / f"{MONITOR}_{database.stem}", database, [monitor_spec(MONITOR, NUMERIC, CATEGORICAL, SEGMENTS)])
    settings = yaml.safe_load((directory / "driftline_project.yml").read_text())
    settings["duckdb"] = {k: v for k, v in {"memory_limit": memory_limit, "threads": threads}.items() if v is not None}
    (directory / "driftline_project.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return directory


def duckdb_config(memory_limit: str | None, threads: int | None) -> dict:
    return {k: v for k, v in {"memory_limit": memory_limit, "threads": threads}.items() if v is not None}


def floors(database: Path, memory_limit: str | None, threads: int | None) -> dict:
    """Both floors in a fresh process with driftline's DuckDB settings; each timed after one
    untimed run."""
    columns = numeric_features(NUMERIC), [*categorical_features(CATEGORICAL), *SEGMENTS]
    queries = {
        "both": floor_query(*columns, REFERENCE_START, CURRENT_END),
        "current": floor_query(*columns, CURRENT_START, CURRENT_END),
    }
    code = (
        "import duckdb, json, sys, time\n"
        "config, queries = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "con = duckdb.connect(sys.argv[3], read_only=True, config=config)\n"
        "con.execute('SET enable_progress_bar = false')\n"
        "out = {}\n"
        "for name, q in queries.items():\n"
        "    con.execute(q).fetchall()\n"
        "    started = time.perf_counter(); con.execute(q).fetchall(); out[name] = time.perf_counter() - started\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, json.dumps(duckdb_config(memory_limit, threads)), json.dumps(queries), str(database)],
                          capture_output=True, text=True, check=True)
    return {name: {"seconds": s, "sql": queries[name]} for name, s in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def forget_profile(database: Path) -> None:
    """Delete the cached reference profile and the stored window, so the next run is a first run."""
    import duckdb

    with duckdb.connect(str(database)) as con:
        present = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [RESULTS_SCHEMA]).fetchall()}
        for table in ("driftline_profiles", "driftline_results", "driftline_histograms", "driftline_runs"):
            if table in present:
                con.execute(f"DELETE FROM {RESULTS_SCHEMA}.{table}")


def driftline_run(directory: Path) -> dict:
    """One ``driftline backfill`` of the benchmark's window in a fresh process: wall time,
    peak RSS and its queries."""
    command = [
        "/usr/bin/time", "-f", "%e %M", str(DRIFTLINE), "backfill", "--project", str(directory), "--monitor", MONITOR,
        "--start", CURRENT_START.isoformat(), "--end", CURRENT_END.isoformat(), "--at", AT, "--json", "--fail-on", "never",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"driftline failed ({done.returncode}):\n{done.stderr[-3000:]}")
    seconds, peak_kb = done.stderr.strip().splitlines()[-1].split()
    report = json.loads(done.stdout)
    (window,) = report["windows"]
    if window["error"] is not None:  # a status of ok/warn/fail is a run that worked
        raise RuntimeError(f"driftline's window ended in an error: {window['error']}")
    return {"seconds": float(seconds), "peak_rss_mb": int(peak_kb) / 1024, "results": len(window["results"]), "load_average": load_average()}


def queries_per_dialect(directory: Path) -> dict:
    """How many queries a run sends on each dialect, as ``driftline compile`` prints them: a
    first run's when no profile is stored, a steady-state run's when one is."""
    counts = {}
    for dialect in COMPILE_DIALECTS:
        command = [str(DRIFTLINE), "compile", "--project", str(directory), "--monitor", MONITOR, "--dialect", dialect, "--at", AT]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        counts[dialect] = len(re.findall(r";\s*$", done.stdout, flags=re.MULTILINE))
    return counts


def column_bytes(database: Path) -> dict:
    """Compressed bytes of each column the monitor reads (DuckDB's storage info), and the share
    of the table's rows in each window: what a columnar engine that prunes by time scans."""
    import duckdb

    columns = ["event_time", *numeric_features(NUMERIC), *categorical_features(CATEGORICAL), *SEGMENTS]
    with duckdb.connect(str(database), read_only=True) as con:
        info = con.execute(
            f"SELECT column_name, count(DISTINCT block_id) * 262144 FROM pragma_storage_info('{TABLE}') "
            "WHERE persistent GROUP BY column_name"
        ).fetchall()
        rows, reference, current = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE event_time >= TIMESTAMP '{REFERENCE_START}' AND event_time < TIMESTAMP '{REFERENCE_END}'), "
            f"count(*) FILTER (WHERE event_time >= TIMESTAMP '{CURRENT_START}' AND event_time < TIMESTAMP '{CURRENT_END}') FROM {TABLE}"
        ).fetchone()
    sizes = {name: int(size) for name, size in info if name in columns}
    return {"rows": rows, "reference_rows": reference, "current_rows": current, "column_bytes": sizes}


def bytes_per_run(scan: dict) -> dict:
    """Compressed bytes a run's queries read on a columnar engine that prunes by time (DuckDB's
    own sizes as the stand-in for Parquet or micro-partitions), per query, from the rows' shares
    of the windows: a first run reads the reference's numeric columns (edges), its categorical
    columns (categories) and every column over both windows (counts); a steady-state run every
    column over the current window. Each query also reads ``event_time``; the counts ``segment``."""
    size, rows = scan["column_bytes"], scan["rows"]
    reference, both, current = scan["reference_rows"] / rows, (scan["reference_rows"] + scan["current_rows"]) / rows, scan["current_rows"] / rows
    numeric = sum(size[c] for c in numeric_features(NUMERIC)) + size["event_time"]
    categorical = sum(size[c] for c in categorical_features(CATEGORICAL)) + size["event_time"]
    every = numeric + categorical - size["event_time"] + sum(size[s] for s in SEGMENTS)
    first = {"edges": numeric * reference, "categories": categorical * reference, "counts": every * both}
    return {"first": first, "first_total": sum(first.values()), "steady": {"counts": every * current}, "steady_total": every * current}


def interleaved(database: Path, limits: list[str], repeat: int, threads: int | None) -> dict:
    """First runs with each ``memory_limit`` in turn, ``repeat`` rounds: what a limit costs in
    time, measured under the same load (on a shared machine the load moves within minutes)."""
    runs: dict[str, list] = {limit: [] for limit in limits}
    for _ in range(repeat):
        for limit in limits:
            directory = project(database, None if limit.lower() == "none" else limit, threads)
            forget_profile(database)
            runs[limit].append(driftline_run(directory))
            print(f"  {limit}: first run {runs[limit][-1]}", flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--database", type=Path, help="default: data/bench_<rows>m.duckdb, made when missing")
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB's memory_limit in the project file; 'none' for DuckDB's default")
    parser.add_argument("--threads", type=int, help="DuckDB's threads; default: DuckDB's (one per core)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--name", default="large", help="the results file: data/results/<name>.json")
    parser.add_argument("--interleave", help="only first runs, with each of these comma-separated memory_limits in turn (e.g. none,512MB)")
    args = parser.parse_args()
    memory_limit = None if args.memory_limit.lower() == "none" else args.memory_limit
    database = ready_database(args.rows, args.database)
    if args.interleave:
        runs = interleaved(database, args.interleave.split(","), args.repeat, args.threads)
        print(f"[large] results: {save(args.name, {'machine': machine(), 'database': str(database), 'threads': args.threads, 'first_runs': runs})}")
        return
    directory = project(database, memory_limit, args.threads)
    payload: dict = {"machine": machine(), "load_average_start": load_average(), "database": str(database),
                     "database_bytes": database.stat().st_size, "memory_limit": memory_limit, "threads": args.threads, "repeat": args.repeat}
    print(f"[large] {database.name}: floors ...", flush=True)
    payload["floors"] = floors(database, memory_limit, args.threads)
    print(f"  both {payload['floors']['both']['seconds']:.2f}s, current {payload['floors']['current']['seconds']:.2f}s", flush=True)
    payload["first_runs"], payload["steady_runs"] = [], []
    for _ in range(args.repeat):
        forget_profile(database)
        payload["first_runs"].append(driftline_run(directory))
        print(f"  first run {payload['first_runs'][-1]}", flush=True)
        payload["steady_runs"].append(driftline_run(directory))
        print(f"  steady run {payload['steady_runs'][-1]}", flush=True)
    payload["queries"] = {"steady": queries_per_dialect(directory)}
    forget_profile(database)
    payload["queries"]["first"] = queries_per_dialect(directory)
    payload["scan"] = column_bytes(database)
    payload["bytes_per_run"] = bytes_per_run(payload["scan"])
    print(json.dumps({k: payload[k] for k in ("queries", "bytes_per_run")}), flush=True)
    print(f"[large] results: {save(args.name, payload)}")


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
