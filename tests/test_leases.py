"""One evaluator per monitor at a time (SPEC §4, §5 ``driftline_leases``), as a user meets it:
``driftline`` processes started side by side on one project, on DuckDB and on PostgreSQL.

Overlap is made certain rather than hoped for: the project posts its alert to a local webhook
that holds the evaluating process's request until the test lets it go, so that process keeps
its lease (and, on DuckDB, its file) while the others start, look and exit. Nothing asserts on
durations; every wait is bounded.

On DuckDB a second process cannot even open the warehouse file while the first has it open
(DuckDB admits one writing process per file), so it skips before reaching the lease: the line
it prints names the PID holding the file. On PostgreSQL all three reach the lease table.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from drift_model import small_monitor

from driftline import connect, leases
from driftline.plan.profile import now_utc

AT = "2026-01-09T03:00"  # the latest due daily window: 2026-01-08 (drifted: psi fails)
NEXT_AT = "2026-01-10T03:00"  # one more window due: 2026-01-09
MONITOR = small_monitor("failed", "{method: psi}")
BOUND = 240  # seconds: the most any process or wait may take on two shared cores
RESULT_KEY = "window_start, check_name, column_name, segment_key, segment_value"


# -- a webhook that holds the first message until released ------------------------------------------


class Gate:
    """A Slack incoming webhook on loopback. Each POST is recorded, then answered ``ok`` once
    the gate is open (or after ``hold`` seconds, within driftline's 10 s delivery timeout)."""

    def __init__(self, hold: float = 8.0):
        self.posts: list[bytes] = []
        self.arrived = threading.Event()
        self.opened = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                gate.posts.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                gate.arrived.set()
                gate.opened.wait(hold)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/T0/B0/gate"

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gate():
    opened = Gate()
    yield opened
    opened.close()


# -- projects on both backends -------------------------------------------------------------------


def events() -> pa.Table:
    rng = np.random.default_rng(11)
    ts = [datetime(2026, 1, 1) + timedelta(minutes=20 * i) for i in range(10 * 72)]
    x = [float(rng.normal(1.0 if t >= datetime(2026, 1, 8) else 0.0)) for t in ts]
    return pa.table({"ts": pa.array(ts, pa.timestamp("us")), "x": x, "cat": [str(c) for c in rng.choice(["a", "b"], len(ts))]})


class Warehouse:
    """The project's warehouse as the test sees it: SQL in, rows out, connections closed."""

    def __init__(self, project: Path, url: str, schema: str | None):
        self.project, self.url, self.schema = project, url, schema

    def table(self, name: str) -> str:
        return f'"{self.schema}"."{name}"' if self.schema else f'"{name}"'

    def query(self, sql: str) -> list[tuple]:
        con = connect.connect(self.url, self.project)
        try:
            return con.con.execute(sql).fetchall()
        finally:
            con.disconnect()

    def execute(self, sql: str, values: list | None = None) -> None:
        con = connect.connect(self.url, self.project)
        try:
            con.con.execute(sql, values or [])
        finally:
            con.disconnect()

    def duplicated_keys(self) -> int:
        rows = self.query(f"SELECT count(*) FROM (SELECT {RESULT_KEY} FROM {self.table('driftline_results')} "
                          f"GROUP BY {RESULT_KEY} HAVING count(*) > 1) AS d")
        return rows[0][0]

    def success_runs(self) -> list[tuple]:
        return self.query(f"SELECT window_start, count(*) FROM {self.table('driftline_runs')} "
                          "WHERE status = 'success' GROUP BY window_start ORDER BY window_start")

    def orphan_results(self) -> int:
        return self.query(f"SELECT count(*) FROM {self.table('driftline_results')} r WHERE NOT EXISTS "
                          f"(SELECT 1 FROM {self.table('driftline_runs')} u WHERE u.run_id = r.run_id)")[0][0]

    def lease_rows(self) -> list[tuple]:
        return self.query(f"SELECT monitor, host, pid FROM {self.table('driftline_leases')}")

    def hold_lease(self, host: str, pid: int, expires_in: timedelta) -> None:
        """Write the lease row of another process, as it would (creating the table if need be)."""
        now = now_utc()
        marks = ", ".join(["%s" if "postgres" in self.url else "?"] * 6)
        con = connect.connect(self.url, self.project)
        try:
            leases.ensure_table(con, self.schema)
            con.con.execute(f"INSERT INTO {self.table('driftline_leases')} VALUES ({marks})",
                            ["failed", uuid.uuid4().hex, host, pid, now, now + expires_in])
        finally:
            con.disconnect()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request, tmp_path, gate) -> Warehouse:
    """A project with the monitor ``failed`` and the gate as its Slack webhook, tables ready."""
    settings = {"notify": {"slack": {"webhook_url": gate.url, "channel": "#ml"}}, "lease_ttl": "10m"}
    if request.param == "duckdb":
        url, schema, source = "duckdb://warehouse.duckdb", None, "events"
    else:
        url = request.getfixturevalue("postgres_url")
        schema = f"driftline_lease_{uuid.uuid4().hex[:10]}"
        source = f"{schema}.events"
    root = tmp_path / "project"
    (root / "monitors").mkdir(parents=True)
    write_settings(root, {"name": "leases", "connection": url, "results": {"schema": schema}, **settings})
    (root / "monitors" / "failed.yml").write_text(MONITOR.replace("table: events", f"table: {source}"), encoding="utf-8")
    con = connect.connect(url, root)
    if schema:
        con.create_database(schema, force=True)
    con.create_table("events", events(), database=schema, overwrite=True)
    con.disconnect()
    created = Warehouse(root, url, schema)
    yield created
    if schema:
        con = connect.connect(url, root)
        con.drop_database(schema, force=True, cascade=True)
        con.disconnect()


def write_settings(root: Path, settings: dict) -> None:
    import yaml

    (root / "driftline_project.yml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")


def set_lease_ttl(warehouse: Warehouse, ttl: str) -> None:
    import yaml

    path = warehouse.project / "driftline_project.yml"
    settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    write_settings(warehouse.project, {**settings, "lease_ttl": ttl})


# -- running driftline as a user does ---------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DRIFTLINE_CONNECTION"}
    env.update({name: "" for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")})  # the webhook is on loopback
    return env


def start(command: str, root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "driftline.cli", command, "--project", str(root), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )


def driftline(command: str, root: Path, *args: str) -> subprocess.CompletedProcess:
    process = start(command, root, *args)
    out, err = process.communicate(timeout=BOUND)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=BOUND)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def evaluated(result: subprocess.CompletedProcess) -> list[str]:
    """The windows a run printed an outcome for."""
    return [line.split()[1] for line in result.stdout.splitlines() if line.startswith("failed 2026-")]


def skipped(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if "skipped" in line]


def reached_alert(gate: Gate, processes: list[subprocess.Popen]) -> None:
    """Wait until a process posts its alert; fail with their output should all of them exit."""
    wait_for(lambda: gate.arrived.is_set() or all(p.poll() is not None for p in processes), "an alert")
    assert gate.arrived.is_set(), [finish(p) for p in processes]


def wait_for(condition, what: str, seconds: float = BOUND) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


# -- the tests --------------------------------------------------------------------------------------


def test_three_runs_at_once_evaluate_the_window_once(warehouse, gate):
    """Issue 14: three `driftline run --at` at once. One evaluates and posts the alert once; the
    others skip with one line naming the holder; no key is stored twice."""
    runs = [start("run", warehouse.project, "--at", AT) for _ in range(3)]

    reached_alert(gate, runs)
    # The evaluator is held at the webhook, lease in hand: the two others must finish without it.
    wait_for(lambda: sum(p.poll() is not None for p in runs) >= 2, "two processes to exit")
    gate.opened.set()
    results = [finish(p) for p in runs]

    evaluators = [r for r in results if evaluated(r)]
    assert len(evaluators) == 1, [(r.returncode, r.stdout, r.stderr) for r in results]
    (evaluator,) = evaluators
    assert evaluated(evaluator) == ["2026-01-08"] and evaluator.returncode == 2  # psi fails
    for other in results:
        if other is evaluator:
            continue
        assert other.returncode == 0, other.stderr
        (line,) = skipped(other)
        assert f"pid {evaluator_pid(runs, results, evaluator)}" in line and socket.gethostname() in line, line
        assert "nothing due" not in other.stdout
    assert len(gate.posts) == 1  # the Slack message, once
    assert warehouse.duplicated_keys() == 0
    assert warehouse.orphan_results() == 0
    assert [count for _, count in warehouse.success_runs()] == [1]  # 2026-01-08
    assert warehouse.lease_rows() == []  # released on exit


def evaluator_pid(runs, results, evaluator) -> int:
    return runs[results.index(evaluator)].pid


def test_the_lease_of_a_killed_run_is_taken_over_at_once(warehouse, gate):
    """SIGKILL leaves the lease row behind; its PID is gone on this host, so the next run does
    not wait for lease_ttl (10m here)."""
    killed = start("run", warehouse.project, "--at", AT)
    reached_alert(gate, [killed])
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=BOUND)  # reaped: a zombie would still answer os.kill(pid, 0)
    gate.opened.set()
    assert warehouse.lease_rows() == [("failed", socket.gethostname(), killed.pid)]

    result = driftline("run", warehouse.project, "--at", NEXT_AT)

    assert skipped(result) == [], result.stderr
    assert evaluated(result) == ["2026-01-09"], result.stdout
    assert warehouse.lease_rows() == []
    assert warehouse.duplicated_keys() == 0


def test_a_live_holder_on_another_host_blocks_until_its_lease_expires(warehouse):
    """A holder elsewhere cannot be looked up: it is presumed alive until its lease expires."""
    warehouse.hold_lease("build-7.elsewhere.example", 4242, timedelta(hours=1))

    blocked = driftline("run", warehouse.project, "--at", AT, "--no-notify")

    assert blocked.returncode == 0 and evaluated(blocked) == []
    (line,) = skipped(blocked)
    assert "host build-7.elsewhere.example, pid 4242, since " in line and "'failed'" in line
    assert len(blocked.stderr.strip().splitlines()) == 1

    # The same holder, last renewed now with a lease_ttl of 2s: a run that waits gets the
    # monitor once the lease has expired.
    warehouse.execute(f"DELETE FROM {warehouse.table('driftline_leases')}")
    set_lease_ttl(warehouse, "2s")
    warehouse.hold_lease("build-7.elsewhere.example", 4242, timedelta(seconds=2))

    waited = driftline("run", warehouse.project, "--at", AT, "--no-notify", "--wait", str(BOUND))

    assert skipped(waited) == [], waited.stderr
    assert evaluated(waited) == ["2026-01-08"]
    assert warehouse.lease_rows() == []


def test_wait_runs_once_the_holder_releases(warehouse):
    """A run with --wait waits for the holder, then evaluates. On PostgreSQL the holder is a
    live process on another host that then releases its lease; on DuckDB, a process keeping
    the warehouse file open that then closes it."""
    if warehouse.schema is None:
        holder = duckdb.connect(str(warehouse.project / "warehouse.duckdb"))
        release = holder.close
    else:
        warehouse.hold_lease("build-7.elsewhere.example", 4242, timedelta(hours=1))
        release = lambda: warehouse.execute(f"DELETE FROM {warehouse.table('driftline_leases')}")  # noqa: E731
    looked = lease_reads(warehouse)
    waiting = start("run", warehouse.project, "--at", AT, "--wait", str(BOUND), "--no-notify")
    wait_for(lambda: is_waiting(warehouse, waiting, looked), "the run to find the monitor held")
    release()

    result = finish(waiting)

    assert skipped(result) == [], result.stderr
    assert evaluated(result) == ["2026-01-08"], result.stdout
    assert [count for _, count in warehouse.success_runs()] == [1]
    assert warehouse.lease_rows() == []


def is_waiting(warehouse: Warehouse, process: subprocess.Popen, looked: int) -> bool:
    """Whether ``process`` has found the lease held and looks again. On PostgreSQL: the lease
    table has been read twice more than ``looked`` times (each try reads it once, in a
    transaction of its own, so a session's last statement is mostly its COMMIT). On DuckDB: it
    has the duckdb library loaded, the file being held by the first run (the attempt to open it
    follows at once)."""
    assert process.poll() is None, finish(process).stderr
    if warehouse.schema is None:
        return "duckdb" in Path(f"/proc/{process.pid}/maps").read_text()
    return lease_reads(warehouse) >= looked + 2


def lease_reads(warehouse: Warehouse) -> int:
    """How often the lease table has been read (PostgreSQL's cumulative statistics); 0 on DuckDB."""
    if warehouse.schema is None:
        return 0
    rows = warehouse.query(
        "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
        f"WHERE schemaname = '{warehouse.schema}' AND relname = 'driftline_leases'"
    )
    return int(rows[0][0]) if rows else 0


def test_bad_wait_is_one_line_and_exit_3(tmp_path):
    root = tmp_path / "project"
    (root / "monitors").mkdir(parents=True)
    write_settings(root, {"name": "leases"})

    result = driftline("run", root, "--wait", "soon")

    assert result.returncode == 3
    assert "--wait: expected a number of seconds, 0 or more, got 'soon'" in result.stderr


def test_bad_lease_ttl_is_located(tmp_path):
    root = tmp_path / "project"
    (root / "monitors").mkdir(parents=True)
    write_settings(root, {"name": "leases", "lease_ttl": "0s"})

    result = driftline("run", root)

    assert result.returncode == 3
    assert result.stderr.strip() == f"{root / 'driftline_project.yml'}:2:1: lease_ttl: lease_ttl must be longer than 0s"


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_a_writer_whose_lease_was_taken_over_writes_nothing(backend, tmp_path, request):
    """The race guard: a holder slower than lease_ttl has its lease taken over; its window's
    write checks the lease in the same transaction and is rolled back whole."""
    from driftline.store import ResultStore, WindowRecord

    url = "duckdb://warehouse.duckdb" if backend == "duckdb" else request.getfixturevalue("postgres_url")
    schema = None if backend == "duckdb" else f"driftline_lease_{uuid.uuid4().hex[:10]}"
    con = connect.connect(url, tmp_path)
    try:
        store = ResultStore(con, schema)
        store.ensure_tables()
        slow, _ = leases.acquire(con, schema, "failed", timedelta(0))  # expired at once: a holder slower than its ttl
        store.held["failed"] = (slow, timedelta(minutes=10))
        fast, holder = leases.acquire(con, schema, "failed", timedelta(minutes=10))
        assert fast is not None and holder is None

        run = {"run_id": "slow", "monitor": "failed", "window_start": datetime(2026, 1, 8), "window_end": datetime(2026, 1, 9),
               "started_at": now_utc(), "finished_at": now_utc(), "status": "success"}
        with pytest.raises(leases.LeaseLost):
            store.replace_window(WindowRecord(run, [], []))
        assert store.table("driftline_runs").count().execute() == 0
        with pytest.raises(leases.LeaseLost):  # and every later window of the evaluation
            store.replace_window(WindowRecord(run, [], []))
    finally:
        if schema:
            con.drop_database(schema, force=True, cascade=True)
        con.disconnect()


# -- Spark: the same lease, no transactions ----------------------------------------------------------


@pytest.mark.spark
def test_spark_lease_skips_a_held_monitor_and_releases_after_a_run(tmp_path):
    """In this process (a second local Spark process cannot share the metastore): a foreign
    lease makes the monitor skipped; once it is gone, a run takes, uses and releases it."""
    import shutil

    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java")
    from pyspark.sql import SparkSession

    from driftline import api

    started_here = SparkSession.getActiveSession() is None
    session = connect.local_spark_session((tmp_path / "spark-warehouse").resolve()) if started_here else SparkSession.getActiveSession()
    schema = f"lease_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "project"
    (root / "monitors").mkdir(parents=True)
    write_settings(root, {"name": "leases", "connection": "pyspark://", "results": {"schema": schema}})
    (root / "monitors" / "failed.yml").write_text(MONITOR.replace("table: events", f"table: {schema}.events"), encoding="utf-8")
    try:
        session.sql(f"CREATE DATABASE {schema}")
        session.createDataFrame(events().to_pandas()).write.saveAsTable(f"{schema}.events")
        con = connect.connect("pyspark://")
        leases.ensure_table(con, schema)
        mine, _ = leases.acquire(con, schema, "failed", timedelta(hours=1))
        other = leases.Lease("failed", "x", "elsewhere.example", 4242, mine.acquired_at, mine.expires_at)
        leases._write_spark(con, schema, "failed", other)  # as a process on another host would

        held = api.run(root, at=AT, notify=False)
        assert held.outcomes == [] and [s.holder.host for s in held.skipped] == ["elsewhere.example"]

        leases.release(con, schema, other)
        ran = api.run(root, at=AT, notify=False)
        assert [(o.window.start, o.status) for o in ran.outcomes] == [(datetime(2026, 1, 8), "success")] and ran.skipped == []
        assert con.table("driftline_leases", database=schema).count().execute() == 0
    finally:
        session.sql(f"DROP DATABASE IF EXISTS {schema} CASCADE")
        if started_here:
            session.stop()
