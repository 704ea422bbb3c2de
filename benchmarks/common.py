"""Shared pieces of the benchmarks: the data's windows, generated driftline projects, the floor
query, timing (medians), peak memory of child processes, and where results go."""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS_DIR = DATA / "results"
sys.path.insert(0, str(HERE))

from make_data import CURRENT_END, CURRENT_START, DEFAULT_DB, START, TABLE  # noqa: E402

REFERENCE_START, REFERENCE_END = START, CURRENT_START  # 30 days
TIMESTAMP = "event_time"
RESULTS_SCHEMA = "driftline_bench"
AT = CURRENT_END.isoformat()  # "now" for driftline: the 7-day window just ended is due


def numeric_features(n: int) -> list[str]:
    return [f"f{j}" for j in range(n)]


def categorical_features(n: int) -> list[str]:
    return [f"c{j}" for j in range(n)]


# -- projects -------------------------------------------------------------------------------------


def monitor_spec(
    name: str, numeric: int, categorical: int, segments: Sequence[str] = (), checks: list | None = None, model: dict | None = None,
    drift_options: dict | None = None,
) -> dict:
    """A monitor on ``predictions``: PSI drift of the features, 7-day windows, a fixed 30-day
    reference just before the benchmark's current week. ``drift_options`` are added to the
    drift check (``{"edges": "exact"}``)."""
    drift = {"columns": "features", "method": "psi", "warn": 0.1, "fail": 0.25, **(drift_options or {})}
    spec: dict[str, Any] = {
        "name": name,
        "owner": "@bench",
        "source": {"table": TABLE, "timestamp": TIMESTAMP},
        "schedule": {"every": "7d", "delay": "0h"},
        "reference": {"start": REFERENCE_START.isoformat(), "end": REFERENCE_END.isoformat()},
        "min_rows": 100,
        "features": {"numeric": numeric_features(numeric), "categorical": categorical_features(categorical)},
        "checks": [{"drift": drift}, *(checks or [])],
    }
    if segments:
        spec["segments"] = list(segments)
    if model:
        spec["model"] = model
    return spec


def write_project(directory: Path, database: Path, monitors: Sequence[dict]) -> Path:
    """A driftline project in ``directory`` over ``database``; results in their own schema."""
    (directory / "monitors").mkdir(parents=True, exist_ok=True)
    for old in (directory / "monitors").glob("*.yml"):
        old.unlink()
    settings = {"name": "driftline-bench", "connection": f"duckdb://{database.resolve()}", "results": {"schema": RESULTS_SCHEMA}}
    (directory / "driftline_project.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    for monitor in monitors:
        (directory / "monitors" / f"{monitor['name']}.yml").write_text(yaml.safe_dump(monitor, sort_keys=False))
    return directory


class Bench:
    """One driftline workspace (one DuckDB instance) with a monitor's evaluator, and the floor
    queries run through the same connection, so they share the same caches."""

    def __init__(self, project: Path, monitor: str):
        from driftline.api import Workspace
        from driftline.windows import Window

        self.workspace = Workspace.open(project)
        self.workspace.store.ensure_tables()
        (self.bound,) = self.workspace.bind([monitor])
        self.evaluator = self.workspace.evaluator(self.bound)
        self.window = Window(CURRENT_START, CURRENT_END)
        self.now = CURRENT_END
        self.duck = self.workspace.con.con  # the raw duckdb connection behind ibis
        self.duck.execute("SET enable_progress_bar = false")  # no progress bars on stdout

    def forget_profile(self) -> None:
        """Drop every cached reference profile (and stored run), so the next run builds it again."""
        for table in ("driftline_profiles", "driftline_results", "driftline_histograms", "driftline_runs"):
            self.duck.execute(f"DELETE FROM {RESULTS_SCHEMA}.{table}")

    def run(self):
        outcome = self.evaluator.evaluate(self.window, self.now)
        if outcome.status != "success":
            raise RuntimeError(f"driftline run failed: {outcome.error}")
        return outcome

    def sql(self, query: str):
        return self.duck.execute(query).fetchall()

    def close(self) -> None:
        """Release the database file (a child process opens it next)."""
        self.workspace.con.disconnect()
        gc.collect()


def floor_query(numeric: Sequence[str], other: Sequence[str], start: datetime, end: datetime) -> str:
    """The floor: one scan reading the same columns over the same rows, once — ``count(*)``
    plus ``sum`` of every numeric and ``max`` of every other column."""
    aggregates = ["count(*)"] + [f"sum({c})" for c in numeric] + [f"max({c})" for c in other]
    return f"SELECT {', '.join(aggregates)} FROM {TABLE} WHERE {between(start, end)}"


def between(start: datetime, end: datetime) -> str:
    """The rows of the window [start, end), as a plain range predicate on the timestamp."""
    return f"{TIMESTAMP} >= TIMESTAMP '{start}' AND {TIMESTAMP} < TIMESTAMP '{end}'"


def measure_monitor(project: Path, monitor: str, numeric: Sequence[str], other: Sequence[str], repeat: int, steady: bool = True) -> dict:
    """Floors (both windows, current window), first run and steady-state run of ``monitor``,
    medians of ``repeat`` runs in one workspace. ``numeric`` and ``other`` are the columns the
    monitor reads, for the floor query. ``steady=False``: the first run only."""
    bench = Bench(project, monitor)
    both = floor_query(numeric, other, REFERENCE_START, CURRENT_END)
    current = floor_query(numeric, other, CURRENT_START, CURRENT_END)
    floor_both = timed(lambda: bench.sql(both), repeat)
    floor_current = timed(lambda: bench.sql(current), repeat)

    def run() -> dict:
        outcome = bench.run()
        return {"queries": outcome.queries, "results": len(outcome.results)}

    first = timed(run, repeat, setup=bench.forget_profile)
    figures = {
        "monitor": monitor,
        "columns": len(numeric) + len(other),
        "segments": list(bench.bound.loaded.spec.segments),
        "floor_both": floor_both.as_dict(),
        "floor_current": floor_current.as_dict(),
        "first_run": first.as_dict(),
        "first_over_floor_both": first.median / floor_both.median,
    }
    if steady:
        steady_run = timed(run, repeat)  # the last first run left its profile behind
        figures |= {
            "steady_run": steady_run.as_dict(),
            "steady_over_floor_current": steady_run.median / floor_current.median,
            "steady_over_floor_both": steady_run.median / floor_both.median,
        }
    bench.close()
    return figures | {"load_average": load_average(), "floor_sql_both": both}


def require_data(database: Path = DEFAULT_DB) -> None:
    """Stop, saying what to run, when the benchmark's data has not been made yet."""
    if not database.exists():
        sys.exit(f"{database} is missing: run python benchmarks/make_data.py first")


# -- timing and memory --------------------------------------------------------------------------


@dataclass
class Timing:
    times: list[float]
    extra: dict[str, Any]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def as_dict(self) -> dict[str, Any]:
        return {"median_s": self.median, "min_s": min(self.times), "max_s": max(self.times), "runs_s": self.times, **self.extra}


def timed(fn: Callable[[], Any], repeat: int, setup: Callable[[], Any] | None = None, warmup: int = 1) -> Timing:
    """Median of ``repeat`` timed calls of ``fn`` (``setup`` before each, untimed), after
    ``warmup`` untimed calls. ``extra`` keeps what the last call returned when it is a dict."""
    last: Any = None
    for _ in range(warmup):
        if setup:
            setup()
        fn()
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        started = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - started)
    return Timing(times, last if isinstance(last, dict) else {})


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB.

    ``VmHWM`` from /proc, not ``getrusage``: Linux carries ``ru_maxrss`` over ``exec``, so a child
    started by a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(python: str | Path, script: Path, args: Sequence[str], timeout: float = 3600) -> dict:
    """Run ``script`` in a fresh process; it prints one JSON object on its last stdout line."""
    completed = subprocess.run([str(python), str(script), *args], capture_output=True, text=True, timeout=timeout, cwd=str(HERE.parent))
    if completed.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def load_average() -> list[float]:
    return list(os.getloadavg())


# -- results ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import duckdb
    import ibis

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.release()})"
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": memory_gb,
        "os": os_name,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "ibis": ibis.__version__,
    }


def save(name: str, payload: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"recorded_at": datetime.now().isoformat(timespec="seconds"), "load_average_end": load_average(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
