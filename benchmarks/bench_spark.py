"""Drift at 10M rows on DuckDB and on a local Spark standalone cluster, through the command line:
the monitor of ``bench_large.py`` (PSI on the 25 features over 5 segments, a fixed 30-day reference
against the 7-day window), the same window on both engines.

Each figure comes from a fresh ``driftline backfill`` process, as a scheduled ``driftline`` would
run, with its wall time and peak RSS from ``/usr/bin/time``:

- DuckDB, the file on disk (``data/bench_10m.duckdb``, made when missing): a first run (the cached
  reference profile deleted first, as in ``bench_large.py``) and a steady-state run, with DuckDB's
  ``memory_limit`` in the project's ``duckdb:`` block (2GB by default, as ``bench_large.py``);
- Spark: a master and one worker (2 cores, 6g) started here with pyspark's own
  ``sbin/spark-daemon.sh``, as ``.ci/services/spark.sh`` starts them, on free ports of
  127.0.0.1 (never CI's 7077), all their state in a temporary directory, stopped by PID at the end.
  ``predictions`` is exported from the DuckDB file to Parquet (DuckDB's ``COPY``) and registered
  as a Spark table over that location in a project whose connection is the master
  (``spark://127.0.0.1:PORT``); its result tables are created beforehand, so the first run, as on
  DuckDB, finds them and only lacks the profile. Then the same first and steady-state runs.
  ``/usr/bin/time`` sees the driftline process only: the driver's JVM (pyspark starts it and never
  waits for it) and the executor (the worker's child) are sampled from /proc every 0.25 s, their
  ``VmHWM``. Spark's event log says where a run's time went: starting the context, waiting for
  the executor, inside SQL executions, the rest on the driver;
- agreement: every result row of Spark's run against DuckDB's on the same check, column and
  segment: status equal and value within 1e-9 relative, numeric and categorical columns apart.
  Default (approximate) quantile edges are each engine's own estimate (a sample's quantiles on
  DuckDB, ``percentile_approx`` on Spark), so numeric PSI values differ by design. So the bins
  behind Spark's steady-state run (its ``driftline_histograms`` rows, read from the table's
  Parquet files) are counted again by DuckDB with Spark's edges: equal counts in every bin mean
  the engines differ in the edges only. (The monitor keeps the default edges, as users run it;
  ``edges: exact`` makes the engines' edges agree, and RESULTS.md says what it cost on Spark.)

One repetition per figure: the figures are the cost of each run kind, not a distribution.

    python benchmarks/bench_spark.py [--rows 10000000] [--memory-limit 2GB] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_large import CATEGORICAL, DRIFTLINE, MONITOR, NUMERIC, SEGMENTS, forget_profile, ready_database  # noqa: E402
from bench_large import project as duckdb_project  # noqa: E402
from common import (  # noqa: E402
    AT, CURRENT_END, CURRENT_START, REFERENCE_START, RESULTS_SCHEMA, TABLE, TIMESTAMP, categorical_features, load_average, machine,
    monitor_spec, numeric_features, save, write_project,
)

IDENT = "driftline-bench"  # spark-daemon.sh's ident: CI's daemons are "driftline-ci"
WORKER_CORES, WORKER_MEMORY = 2, "6g"
# The session's settings (the project's spark: block): one executor taking the worker's cores;
# driftline's own 4 shuffle partitions (its queries return small aggregates). The event log is
# what the breakdown of a run's time is read from.
SPARK_CONF = {
    "spark.executor.memory": "4g",
    "spark.executor.cores": str(WORKER_CORES),
    "spark.cores.max": str(WORKER_CORES),
    "spark.sql.shuffle.partitions": "4",
    "spark.eventLog.enabled": "true",
    "spark.eventLog.compress": "false",
    "spark.eventLog.rolling.enabled": "false",  # one file per application
}
RELATIVE = 1e-9
SAMPLE_EVERY = 0.25  # seconds between two readings of the JVMs' peak RSS
TIME_FORMAT = "driftline-time %e %M"  # /usr/bin/time's line, told apart from Spark's log lines


# -- processes and their memory -------------------------------------------------------------------


def children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(root: int, tree: dict[int, list[int]]) -> list[int]:
    found, todo = [], list(tree.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def peak_kb(pid: int) -> int | None:
    """``VmHWM``: the process's peak RSS so far; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Sampler(threading.Thread):
    """The peak RSS of the processes under each root (label -> pid), read every SAMPLE_EVERY s
    until stopped. ``seen`` keeps every such process's latest command line (spark-submit's bash
    becomes the driver's JVM by exec, under the same PID), so whatever still runs at the end can
    be stopped by PID; processes already in it when sampling starts (the executor of an earlier
    run, still exiting) are not counted."""

    def __init__(self, roots: dict[str, int], seen: dict[int, str]):
        super().__init__(daemon=True)
        self.roots, self.seen, self.earlier = roots, seen, set(seen)
        self.peaks: dict[int, list] = {}  # pid -> [kind, peak kB]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(SAMPLE_EVERY)
        self.sample()

    def sample(self) -> None:
        tree = children()
        for label, root in self.roots.items():
            for pid in descendants(root, tree):
                kb, line = peak_kb(pid), command_line(pid)
                if kb is None or not line or pid in self.earlier:
                    continue
                self.seen[pid] = line
                kind = label if label != "driftline" else ("driver JVM" if "org.apache.spark" in line else "driftline")
                self.peaks[pid] = [kind, max(kb, self.peaks.get(pid, [None, 0])[1])]

    def stop(self) -> dict[str, float]:
        """Peak RSS in MB per kind of process (several of one kind: the sum of their peaks)."""
        self.done.set()
        self.join()
        out: dict[str, float] = {}
        for kind, kb in self.peaks.values():
            out[kind] = out.get(kind, 0) + kb / 1024
        return out


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick among the ephemeral ones, never 7077)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state.split()[1]  # a zombie has exited already


def stop_pids(pids: dict[int, str], grace: float = 30) -> list[int]:
    """SIGTERM each process still running the command line it was recorded with (a reused PID is
    someone else's), SIGKILL what is left after ``grace`` seconds; the PIDs that had to be killed."""
    ours = [pid for pid, line in pids.items() if line and alive(pid) and command_line(pid) == line]
    for pid in ours:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in ours) and time.monotonic() < deadline:
        time.sleep(0.5)
    killed = [pid for pid in ours if alive(pid)]
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    return killed


# -- the Spark cluster ----------------------------------------------------------------------------


class Cluster:
    """A standalone master and one worker on 127.0.0.1, started as .ci/services/spark.sh starts
    them; every file of theirs in ``state``."""

    def __init__(self, state: Path):
        import pyspark

        self.home = Path(pyspark.__file__).parent
        self.state, self.port = state, free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.daemons: dict[int, str] = {}  # pid -> command line: the master and the worker
        self.env = {
            **os.environ,
            "SPARK_HOME": str(self.home), "SPARK_PID_DIR": str(state / "pids"), "SPARK_LOG_DIR": str(state / "logs"),
            "SPARK_WORKER_DIR": str(state / "work"), "SPARK_LOCAL_DIRS": str(state / "tmp"), "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": "512m", "SPARK_IDENT_STRING": IDENT, "PYSPARK_PYTHON": sys.executable,
        }
        for name in ("pids", "logs", "work", "tmp"):
            (state / name).mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.daemon("org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(free_port()))
        self.daemon("org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--webui-port", str(free_port()),
                    "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY, self.url)
        self.wait(lambda: self.answers(), "the master to listen on its port")
        # the worker is ready once the master has registered it
        self.wait(lambda: "Registering worker" in self.log("Master"), "the worker to register with the master")

    def daemon(self, cls: str, *args: str) -> None:
        subprocess.run(["bash", str(self.home / "sbin" / "spark-daemon.sh"), "start", cls, "1", *args],
                       env=self.env, check=True, stdout=subprocess.DEVNULL)
        # spark-daemon.sh names its pid file spark-<ident>-<class>-<instance>.pid
        pid = int((self.state / "pids" / f"spark-{IDENT}-{cls}-1.pid").read_text())
        self.daemons[pid] = command_line(pid)

    @property
    def worker_pid(self) -> int:
        return next(pid for pid, line in self.daemons.items() if "deploy.worker.Worker" in line)

    def answers(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def log(self, which: str) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.state / "logs").glob(f"*{which}*.out"))

    def wait(self, ready, what: str, seconds: int = 120) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"waited {seconds} s for {what}:\n{self.log('Master')[-2000:]}\n{self.log('Worker')[-2000:]}")
            time.sleep(1)

    def stop(self) -> list[int]:
        """The worker first (it stops its executors), then the master."""
        order = sorted(self.daemons.items(), key=lambda item: "Master" in item[1])
        return stop_pids(dict(order))


# -- projects, data and runs ----------------------------------------------------------------------


def spark_project(directory: Path, database: Path, master: str) -> Path:
    """The benchmark's monitor on the cluster; the warehouse (and its Derby metastore, and the
    event logs) inside ``directory``. The query timeout is lifted: this measures, it does not bound."""
    write_project(directory, database, [monitor_spec(MONITOR, NUMERIC, CATEGORICAL, SEGMENTS)])
    settings = yaml.safe_load((directory / "driftline_project.yml").read_text())
    (directory / "events").mkdir(exist_ok=True)
    settings |= {
        "connection": master,
        "spark": {"warehouse": "spark-warehouse", "conf": {**SPARK_CONF, "spark.eventLog.dir": (directory / "events").as_uri()}},
        "query_timeout": "2h",
    }
    (directory / "driftline_project.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return directory


def export_parquet(database: Path, folder: Path) -> dict:
    """``predictions`` as one Parquet file in ``folder``, in the table's (time) order, so each row
    group's min/max of ``event_time`` lets Spark skip the groups outside a window."""
    import duckdb

    folder.mkdir(parents=True)
    started = time.perf_counter()
    with duckdb.connect(str(database), read_only=True) as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"COPY {TABLE} TO '{folder / 'part-0.parquet'}' (FORMAT parquet)")
    size = sum(p.stat().st_size for p in folder.iterdir())
    return {"seconds": time.perf_counter() - started, "bytes": size}


# A process of its own (one Spark context per process, and the Derby metastore admits one process
# at a time): the table over the Parquet folder, and driftline's result tables, so that the first
# run finds them as on DuckDB, where forget_profile empties them.
REGISTER = """
import json, sys
from driftline.workspace import Workspace

with Workspace.open(sys.argv[1]) as workspace:
    session = workspace.con._session
    session.sql(f"CREATE TABLE {sys.argv[2]} USING parquet LOCATION '{sys.argv[3]}'")
    workspace.store.ensure_tables()
    table = session.table(sys.argv[2])
    print(json.dumps({"rows": table.count(), "event_time": table.schema["event_time"].dataType.simpleString()}))
"""


def register_table(directory: Path, parquet: Path, seen: dict[int, str]) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", REGISTER, str(directory), TABLE, str(parquet)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=directory)
    sampler = Sampler({"driftline": process.pid}, seen)
    sampler.start()
    out, err = process.communicate()
    sampler.stop()
    if process.returncode != 0:
        raise RuntimeError(f"registering {TABLE} failed ({process.returncode}):\n{err[-3000:]}")
    return {"seconds": time.perf_counter() - started, **json.loads(out.strip().splitlines()[-1])}


def driftline_run(directory: Path, monitor: str, seen: dict[int, str], executors_of: int | None = None) -> dict:
    """One ``driftline backfill`` of the window in a fresh process: wall time and peak RSS from
    /usr/bin/time, the JVMs' peaks, and every result row (bench_large's driftline_run keeps only
    their count; the agreement needs the rows)."""
    command = [
        "/usr/bin/time", "-f", TIME_FORMAT, str(DRIFTLINE), "backfill", "--project", str(directory), "--monitor", monitor,
        "--start", CURRENT_START.isoformat(), "--end", CURRENT_END.isoformat(), "--at", AT, "--json", "--fail-on", "never",
    ]
    launched = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=directory)
    sampler = Sampler({"driftline": process.pid, **({"executor": executors_of} if executors_of else {})}, seen)
    sampler.start()
    out, err = process.communicate()
    jvm_peaks = sampler.stop()
    timed = [line for line in err.splitlines() if line.startswith("driftline-time ")]
    if process.returncode != 0 or not timed:
        raise RuntimeError(f"driftline failed ({process.returncode}):\n{err[-3000:]}")
    _, seconds, peak = timed[-1].split()
    report = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))
    (window,) = report["windows"]
    if window["error"] is not None:  # a status of ok/warn/fail is a run that worked
        raise RuntimeError(f"driftline's window ended in an error: {window['error']}")
    return {
        "seconds": float(seconds), "peak_rss_mb": int(peak) / 1024, "sampled_peak_rss_mb": jvm_peaks,
        "results": len(window["results"]), "status": window["status"], "load_average": load_average(),
        "launched_epoch": launched, "rows": window["results"],
    }


def summary_of(run: dict) -> str:
    sampled = ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(run["sampled_peak_rss_mb"].items()))
    return f"{run['seconds']:.1f}s, peak RSS {run['peak_rss_mb']:.0f} MB ({sampled}), {run['results']} results, load {run['load_average'][0]:.2f}"


# -- where a Spark run's time went ----------------------------------------------------------------


def new_event_log(events: Path, before: set[str]) -> Path | None:
    fresh = sorted(p for p in events.iterdir() if p.name not in before)
    return fresh[-1] if fresh else None


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one interval (Spark runs some jobs side by side)."""
    total, end = 0.0, -math.inf
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def breakdown(log: Path, launched: float, seconds: float) -> dict:
    """From the run's event log: the process until the Spark context started (Python's imports,
    the project, the driver's JVM), the wait for the executor, the time inside SQL executions
    (and, within it, inside jobs on the executor), the rest on the driver (catalog, planning,
    Python), and the end (stopping the context, leaving the process)."""
    app_start = app_end = executor = None
    jobs: dict[int, list] = {}
    sql: dict[int, dict] = {}
    for line in log.read_text().splitlines():
        event = json.loads(line)
        kind = event["Event"].rsplit(".", 1)[-1]
        if kind == "SparkListenerApplicationStart":
            app_start = event["Timestamp"] / 1000
        elif kind == "SparkListenerApplicationEnd":
            app_end = event["Timestamp"] / 1000
        elif kind == "SparkListenerExecutorAdded" and executor is None:
            executor = event["Timestamp"] / 1000
        elif kind == "SparkListenerJobStart":
            jobs[event["Job ID"]] = [event["Submission Time"] / 1000, None]
        elif kind == "SparkListenerJobEnd" and event["Job ID"] in jobs:
            jobs[event["Job ID"]][1] = event["Completion Time"] / 1000
        elif kind == "SparkListenerSQLExecutionStart":
            sql[event["executionId"]] = {"start": event["time"] / 1000, "kind": plan_kind(event.get("physicalPlanDescription", ""))}
        elif kind == "SparkListenerSQLExecutionEnd" and event["executionId"] in sql:
            sql[event["executionId"]]["end"] = event["time"] / 1000
    end = app_end if app_end is not None else launched + seconds
    in_sql = union_seconds([(q["start"], q["end"]) for q in sql.values() if "end" in q])
    kinds: dict[str, dict] = {}
    for q in sql.values():
        if "end" in q:
            kind = kinds.setdefault(q["kind"], {"count": 0, "seconds": 0.0, "longest_s": 0.0})
            kind["count"] += 1
            kind["seconds"] += q["end"] - q["start"]
            kind["longest_s"] = max(kind["longest_s"], q["end"] - q["start"])
    return {
        "until_context_started_s": app_start - launched if app_start else None,
        "executor_added_after_s": executor - app_start if executor and app_start else None,
        "in_sql_executions_s": in_sql,
        "in_jobs_s": union_seconds([tuple(j) for j in jobs.values() if j[1] is not None]),
        "driver_outside_sql_s": end - app_start - in_sql if app_start else None,
        "after_context_stopped_s": launched + seconds - end,
        "jobs": len(jobs),
        "sql_executions": len(sql),
        "sql_executions_by_kind": dict(sorted(kinds.items(), key=lambda item: -item[1]["seconds"])),
    }


def plan_kind(plan: str) -> str:
    """What an SQL execution did, from the top of its physical plan: ``HashAggregate`` (a query),
    ``Execute InsertIntoHadoopFsRelationCommand`` (a write), ``LocalTableScan`` ... (every SQL
    execution's description is driftline's job group, which says nothing)."""
    lines = plan.split("== Physical Plan ==", 1)[-1].splitlines()
    for line in lines:
        words = re.sub(r"^[\s:+-]*(\*(\(\d+\))?\s*)?", "", line).split()
        if not words or words[0] in ("AdaptiveSparkPlan", "=="):
            continue
        return " ".join(words[:2]) if words[0] == "Execute" else words[0]
    return "unknown"


# -- agreement --------------------------------------------------------------------------------------


def keyed(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["check_name"], r["column_name"], r["segment_key"], r["segment_value"]): r for r in rows}


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=RELATIVE, abs_tol=1e-12)  # abs_tol: both 0 up to rounding


def agreement(spark: list[dict], duckdb: list[dict]) -> dict:
    """How many of DuckDB's result rows Spark's run gives again: same check, column and segment;
    status equal, value within 1e-9 relative. Numeric and categorical columns apart (default
    edges differ between engines on numeric columns only); row counts apart (both read the same
    rows whatever the edges)."""
    ours, theirs = keyed(spark), keyed(duckdb)
    categorical = set(categorical_features(CATEGORICAL))
    agree = {"numeric": 0, "categorical": 0}
    status = counts = 0
    worst = 0.0
    for key, expected in theirs.items():
        got = ours.get(key)
        if got is None:
            continue
        kind = "categorical" if key[1] in categorical else "numeric"
        status += got["status"] == expected["status"]
        counts += (got["n_current"], got["n_reference"]) == (expected["n_current"], expected["n_reference"])
        if got["status"] == expected["status"] and close(got["value"], expected["value"]):
            agree[kind] += 1
        elif got["value"] is not None and expected["value"]:
            worst = max(worst, abs(got["value"] - expected["value"]) / abs(expected["value"]))
    return {
        "duckdb_rows": len(theirs), "spark_rows": len(ours), "same_keys": len(ours.keys() & theirs.keys()),
        "agree": sum(agree.values()), "agree_numeric": agree["numeric"], "agree_categorical": agree["categorical"],
        "rows_numeric": sum(k[1] not in categorical for k in theirs), "rows_categorical": sum(k[1] in categorical for k in theirs),
        "status_equal": status, "row_counts_equal": counts, "largest_relative_difference": worst,
    }


def counted_with_spark_edges(database: Path, warehouse: Path, run_id: str) -> dict:
    """Spark's bins of every numeric column and segment (its edges, its reference and current
    counts) counted again by DuckDB over the same rows: finite and NaN-free values, bin i holding
    edge_i <= x < edge_(i+1) as driftline counts them. The rows come from the table's Parquet
    files, read by DuckDB (no Spark process needed), filtered to the run; a (column, segment,
    bin) found twice would be a stale file, and is reported."""
    import duckdb

    files = warehouse / f"{RESULTS_SCHEMA}.db" / "driftline_histograms" / "*.parquet"
    numeric = numeric_features(NUMERIC)
    with duckdb.connect(str(database), read_only=True) as con:
        con.execute("SET enable_progress_bar = false")
        spark_bins = con.execute(
            f"SELECT column_name, segment_value, bin_index, lower, reference_count, current_count FROM read_parquet('{files}') "
            "WHERE run_id = ? AND column_name IN (SELECT unnest(?)) ORDER BY column_name, segment_value NULLS FIRST, bin_index",
            [run_id, numeric]).fetchall()
        bins: dict[tuple, list] = {}
        for column, segment, index, lower, reference, current in spark_bins:
            bins.setdefault((column, segment), []).append((index, lower, reference, current))
        repeated = sum(len(b) - len({i for i, *_ in b}) for b in bins.values())
        different, equal_bins, equal_histograms = [], 0, 0
        for column in numeric:
            edges = [lower for _, lower, _, _ in bins.get((column, None), []) if lower is not None]
            # bin = how many edges the value reaches; each edge a text cast back, bit for bit
            bin_of = " + ".join(f"({column} >= '{edge!r}'::DOUBLE)::INTEGER" for edge in edges) or "0"
            counted = con.execute(
                f"SELECT {SEGMENTS[0]} AS seg, {TIMESTAMP} >= TIMESTAMP '{CURRENT_START}' AS in_current, {bin_of} AS bin_index, count(*) "
                f"FROM {TABLE} WHERE {TIMESTAMP} >= TIMESTAMP '{REFERENCE_START}' AND {TIMESTAMP} < TIMESTAMP '{CURRENT_END}' "
                f"AND {column} IS NOT NULL AND NOT isnan({column}) GROUP BY GROUPING SETS ((seg, in_current, bin_index), (in_current, bin_index))"
            ).fetchall()
            ours = {(segment, current, b): n for segment, current, b, n in counted}
            for (name, segment), histogram in bins.items():
                if name != column:
                    continue
                same = True
                for index, _, reference, current in histogram:
                    duck = (ours.get((segment, False, index), 0), ours.get((segment, True, index), 0))
                    if duck == (reference, current):
                        equal_bins += 1
                    else:
                        same = False
                        different.append({"column": column, "segment": segment, "bin": index, "spark": [reference, current], "duckdb": list(duck)})
                equal_histograms += same
    return {"histograms": len(bins), "histograms_equal": equal_histograms, "bins": sum(len(b) for b in bins.values()),
            "bins_equal": equal_bins, "repeated_bins": repeated, "different": different[:20]}


# -- the benchmark ----------------------------------------------------------------------------------


def engines() -> dict:
    import pyspark

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    changed = subprocess.run(["git", "status", "--short", "--", "src"], capture_output=True, text=True, cwd=HERE.parent).stdout.split("\n")
    return {"pyspark": pyspark.__version__, "java": java[0] if java else None, "driftline_commit": commit,
            "src_uncommitted": [line[3:] for line in changed if line.strip()]}


def duckdb_side(database: Path, memory_limit: str | None, seen: dict[int, str]) -> dict:
    directory = duckdb_project(database, memory_limit, None)
    runs: dict = {}
    forget_profile(database)
    runs["first"] = driftline_run(directory, MONITOR, seen)
    print(f"  duckdb first run: {summary_of(runs['first'])}", flush=True)
    runs["steady"] = driftline_run(directory, MONITOR, seen)
    print(f"  duckdb steady run: {summary_of(runs['steady'])}", flush=True)
    return runs


def spark_side(database: Path, state: Path, seen: dict[int, str]) -> dict:
    out: dict = {"parquet": export_parquet(database, state / "parquet" / TABLE)}
    print(f"  parquet: {out['parquet']['bytes'] / 1e9:.2f} GB in {out['parquet']['seconds']:.1f}s", flush=True)
    cluster = Cluster(state / "cluster")
    try:
        started = time.perf_counter()
        cluster.start()
        out["cluster"] = {"master": cluster.url, "worker_cores": WORKER_CORES, "worker_memory": WORKER_MEMORY,
                          "conf": SPARK_CONF, "start_seconds": time.perf_counter() - started}
        print(f"  cluster: {cluster.url}, up in {out['cluster']['start_seconds']:.1f}s", flush=True)
        directory = spark_project(state / "project", database, cluster.url)
        out["register"] = register_table(directory, state / "parquet" / TABLE, seen)
        print(f"  registered: {out['register']}", flush=True)
        runs = {}
        for kind in ("first", "steady"):
            before = {p.name for p in (directory / "events").iterdir()}
            runs[kind] = driftline_run(directory, MONITOR, seen, executors_of=cluster.worker_pid)
            log = new_event_log(directory / "events", before)
            runs[kind]["spark"] = breakdown(log, runs[kind]["launched_epoch"], runs[kind]["seconds"]) if log else None
            print(f"  spark {kind} run: {summary_of(runs[kind])}", flush=True)
            print(f"    {json.dumps(runs[kind]['spark'])}", flush=True)
        out["runs"] = runs
        out["same_edges"] = counted_with_spark_edges(database, directory / "spark-warehouse", runs["steady"]["rows"][0]["run_id"])
        print(f"  duckdb with spark's edges: {json.dumps({k: v for k, v in out['same_edges'].items() if k != 'different'})}", flush=True)
    finally:
        out["killed_after_30s"] = cluster.stop()
        # whatever else was started here and still runs (a driver's JVM, an executor)
        out["killed_after_30s"] += stop_pids({pid: line for pid, line in seen.items() if pid not in cluster.daemons})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--database", type=Path, help="default: data/bench_<rows>m.duckdb, made when missing")
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB's memory_limit in the project file; 'none' for DuckDB's default")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (Parquet, cluster logs, Spark project)")
    parser.add_argument("--name", default="spark", help="the results file: data/results/<name>.json")
    args = parser.parse_args()
    memory_limit = None if args.memory_limit.lower() == "none" else args.memory_limit
    database = ready_database(args.rows, args.database)
    payload: dict = {"machine": {**machine(), **engines()}, "load_average_start": load_average(), "database": str(database),
                     "rows": args.rows, "memory_limit": memory_limit, "monitor": MONITOR}
    seen: dict[int, str] = {}
    print(f"[spark] {database.name}: DuckDB ...", flush=True)
    duck = duckdb_side(database, memory_limit, seen)
    state = Path(tempfile.mkdtemp(prefix="driftline-spark-bench."))
    print(f"[spark] Spark standalone cluster (state in {state}) ...", flush=True)
    payload["duckdb"] = {kind: {k: v for k, v in run.items() if k != "rows"} for kind, run in duck.items()}
    try:
        spark = spark_side(database, state, seen)
    except BaseException as error:  # keep what ran
        print(f"[spark] DuckDB's figures only: {save(args.name, {**payload, 'spark_error': repr(error)[:3000]})}", file=sys.stderr)
        raise
    finally:
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)
    payload["spark"] = {**{k: v for k, v in spark.items() if k != "runs"},
                        "runs": {kind: {k: v for k, v in run.items() if k != "rows"} for kind, run in spark["runs"].items()}}
    payload["spark_over_duckdb"] = {kind: spark["runs"][kind]["seconds"] / duck[kind]["seconds"] for kind in duck}
    payload["agreement"] = {kind: agreement(spark["runs"][kind]["rows"], duck[kind]["rows"]) for kind in duck}
    path = save(args.name, payload)
    print("[spark] summary")
    for kind in duck:
        d, s, a = duck[kind], spark["runs"][kind], payload["agreement"][kind]
        print(f"  {kind:12s} duckdb {d['seconds']:7.1f}s {d['peak_rss_mb']:6.0f} MB | spark {s['seconds']:7.1f}s "
              f"{s['peak_rss_mb']:6.0f} MB (+ JVMs {sum(v for k, v in s['sampled_peak_rss_mb'].items() if k != 'driftline'):.0f} MB) | "
              f"spark/duckdb {payload['spark_over_duckdb'][kind]:.1f}x | agree {a['agree']}/{a['duckdb_rows']} "
              f"(numeric {a['agree_numeric']}/{a['rows_numeric']}, categorical {a['agree_categorical']}/{a['rows_categorical']}; "
              f"status {a['status_equal']}, row counts {a['row_counts_equal']})")
    same = spark["same_edges"]
    print(f"  with Spark's edges, DuckDB counts {same['bins_equal']}/{same['bins']} numeric bins the same "
          f"({same['histograms_equal']}/{same['histograms']} histograms)")
    print(f"[spark] results: {path}")


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
