"""The result tables: created on first use, migrated additively, and written one window at a
time as one unit (re-running a window replaces its rows; nothing half-written)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ContextManager, Iterable, Iterator

import ibis
import pandas as pd

from driftline import leases, writers
from driftline.reasons import LABELS_NOT_MATURE
from driftline.result_schema import ALERTS, HISTOGRAMS, PROFILES, RESULTS, RUNS, TABLES
from driftline.windows import Window

# One row per one-time data migration applied (driftline's own; not part of the BI contract).
MIGRATIONS = "driftline_migrations"
_MIGRATIONS_SCHEMA = ibis.schema({"name": "string", "applied_at": "timestamp"})
# Episode times became window starts instead of window ends.
ALERTS_AT_WINDOW_START = "alerts_at_window_start"


@dataclass
class WindowRecord:
    """Everything one evaluation of a monitor window writes."""

    run: dict[str, Any]
    results: list[dict[str, Any]]
    histograms: list[dict[str, Any]]


class ResultStore:
    """The result tables of one connection, in ``schema`` (None: the connection's default).

    Every write goes through :func:`driftline.writers.writer`: one transaction on DuckDB,
    PostgreSQL and Snowflake; on Spark, one atomic swap per table, in the order the tables are touched here.
    """

    def __init__(self, con: ibis.BaseBackend, schema: str | None = None):
        self.con = con
        self.schema = schema
        # The leases this process holds, by monitor, with their ttl: every window written
        # checks and renews its monitor's lease first (see :meth:`replace_window`).
        # None once the lease was lost.
        self.held: dict[str, tuple[leases.Lease, timedelta] | None] = {}

    # -- tables ---------------------------------------------------------------------------------

    def ensure_tables(self) -> None:
        """Create missing tables and add missing columns (never drop or rename)."""
        with self._one_migration_at_a_time():
            self._ensure_tables()
            leases.ensure_table(self.con, self.schema)

    @contextlib.contextmanager
    def _one_migration_at_a_time(self) -> Iterator[None]:
        """On PostgreSQL, processes starting together would race to create the same tables
        (one of them failing on the catalog's unique index): they take turns, by a session
        advisory lock. DuckDB admits one writing process per file; Spark's local metastore one."""
        if self.con.name != "postgres":
            yield
            return
        with self.con.con.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_MIGRATION_LOCK])
            try:
                yield
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_MIGRATION_LOCK])

    def _ensure_tables(self) -> None:
        if self.schema and self.schema not in self.con.list_databases():
            self.con.create_database(self.schema, force=True)
        # Before looking for missing tables: a table caught mid-swap must not be recreated empty.
        writers.finish_interrupted_writes(self.con, self.schema, TABLES)
        existing = set(self.con.list_tables(database=self.schema))
        for name, schema in TABLES.items():
            if name not in existing:
                self.con.create_table(name, schema=schema, database=self.schema)
                continue
            present = set(self.con.table(name, database=self.schema).columns)
            for column, dtype in schema.items():
                if column not in present:
                    writers.add_column(self.con, name, self.schema, column, dtype)
            if name == RESULTS and "reason" not in present:
                self._backfill_labels_not_mature()
        self._migrate_alerts_to_window_starts()
        self._create_views()

    def _backfill_labels_not_mature(self) -> None:
        """Give results written before the ``reason`` column their reason where ``run`` needs
        it: a window waiting for its labels is evaluated again once they mature, and it is found
        by ``reason``. Those rows said so in ``details`` (``"reason": "labels not mature"``), so
        this one-time migration reads the JSON; only the runs holding such rows are rewritten."""
        results = self.table(RESULTS)
        waiting = results.filter(results.status == "insufficient_data").select("run_id", "details").execute()
        runs = sorted({r.run_id for r in waiting.itertuples() if _legacy_reason(r.details) == "labels not mature"})
        if not runs:
            return
        rows = results.filter(results.run_id.isin(runs)).execute()
        rows["reason"] = [LABELS_NOT_MATURE if _legacy_reason(d) == "labels not mature" else None for d in rows.details]
        with self.writer() as write:
            write.delete(RESULTS, "run_id", runs)
            write.insert(RESULTS, _frame(RESULTS, rows.to_dict("records")))

    def _migrate_alerts_to_window_starts(self) -> None:
        """Move the window times of episodes written before they were window starts (SPEC §5).

        Those rows held the ``window_end`` of the windows they name (``opened_at``,
        ``last_seen_at``, ``resolved_at`` and the cooldown clock ``notified_at``). Each such time
        was the end of a run of the episode's monitor, so ``driftline_runs`` says which window
        it was; a time no run ends at (its runs are gone) moves back by the monitor's usual
        window length, and a monitor without any run keeps its times. Applied once, recorded in
        ``driftline_migrations``: a second pass would move the times again.
        """
        if MIGRATIONS not in self.con.list_tables(database=self.schema):
            self.con.create_table(MIGRATIONS, schema=_MIGRATIONS_SCHEMA, database=self.schema)
        done = self.table(MIGRATIONS)
        if done.filter(done.name == ALERTS_AT_WINDOW_START).count().execute():
            return
        alerts = self.table(ALERTS).execute()
        runs = self.table(RUNS).select("monitor", "window_start", "window_end").distinct().execute()
        moved = _alerts_at_window_starts(alerts, runs)
        marker = pd.DataFrame({"name": [ALERTS_AT_WINDOW_START], "applied_at": [pd.Timestamp.now(tz="UTC").tz_localize(None)]})
        with self.writer() as write:
            if not moved.empty:
                write.delete(ALERTS, "alert_id", list(moved.alert_id))
                write.insert(ALERTS, _frame(ALERTS, moved.to_dict("records")))
            write.insert(MIGRATIONS, marker)

    def _create_views(self) -> None:
        try:
            from driftline.views import create_views
        except ImportError:
            return
        create_views(self.con, self.schema)

    def table(self, name: str) -> ibis.Table:
        return self.con.table(name, database=self.schema)

    def writer(self) -> ContextManager[writers.TableWriter]:
        """Deletes and inserts on these tables, applied together when the block ends."""
        return writers.writer(self.con, self.schema)

    # -- reading --------------------------------------------------------------------------------

    def completed_until(self, monitor: str) -> datetime | None:
        """End of the latest window of ``monitor`` evaluated successfully."""
        runs = self.table(RUNS)
        latest = runs.filter((runs.monitor == monitor) & (runs.status == "success")).window_end.max()
        value = latest.execute()
        return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()

    def failed_windows(self, monitor: str) -> list[Window]:
        """Windows of ``monitor`` none of whose runs succeeded: they ended in an error, or never
        ended (a process killed mid-run)."""
        runs = self.table(RUNS).filter(lambda t: t.monitor == monitor)
        failed = runs.group_by(["window_start", "window_end"]).aggregate(ok=(runs.status == "success").any())
        frame = failed.filter(~failed.ok).execute()
        return _windows(frame)

    def windows_with_reason(self, monitor: str, reason: str) -> list[Window]:
        """Windows of ``monitor`` with a stored result whose ``reason`` is this code (see
        ``driftline.reasons``)."""
        results = self.table(RESULTS)
        found = results.filter((results.monitor == monitor) & (results.reason == reason))
        frame = found.select("window_start", "window_end").distinct().execute()
        return _windows(frame)

    def load_profile(self, key: str) -> str | None:
        profiles = self.table(PROFILES)
        found = profiles.filter(profiles.profile_key == key).select("profile").limit(1).execute()
        return None if found.empty else str(found.profile.iloc[0])

    def save_profile(self, key: str, monitor: str, window: Window, profile: str, created_at: datetime) -> None:
        row = {
            "profile_key": key, "monitor": monitor, "reference_start": window.start,
            "reference_end": window.end, "created_at": created_at, "profile": profile,
        }
        with self.writer() as write:
            write.delete(PROFILES, "profile_key", [key])
            write.insert(PROFILES, _frame(PROFILES, [row]))

    # -- writing --------------------------------------------------------------------------------

    def mark_running(self, run: dict[str, Any]) -> None:
        with self.writer() as write:
            write.insert(RUNS, _frame(RUNS, [run]))

    def replace_window(self, record: WindowRecord) -> None:
        """Swap this window's previous rows for the new ones: no duplicates, nothing half-written.

        One transaction on DuckDB, PostgreSQL and Snowflake. On Spark each table is swapped atomically, the
        run row last, so readers never see a window twice, but a failure between two tables
        leaves the window half replaced: the run row, still ``running`` (or ``error`` once
        :meth:`record_error` has run), says so, and the window's next run finds every run id of
        the window in ``driftline_runs`` and sweeps all their rows away.
        """
        run = record.run
        with self.writer() as write:
            self._fence(write, run["monitor"])  # first: on PostgreSQL, also waits for a racing writer
            previous = self._run_ids(run["monitor"], run["window_start"])
            write.delete(RESULTS, "run_id", previous)
            write.delete(HISTOGRAMS, "run_id", previous)
            write.insert(RESULTS, _frame(RESULTS, record.results))
            write.insert(HISTOGRAMS, _frame(HISTOGRAMS, record.histograms))
            write.delete(RUNS, "run_id", [*previous, run["run_id"]])
            write.insert(RUNS, _frame(RUNS, [run]))

    def record_error(self, run: dict[str, Any]) -> None:
        """A failed evaluation: its run row says error, and none of its rows stay behind.

        Earlier good results of the window stay untouched. The deletes only find rows on Spark,
        where a ``replace_window`` that failed midway may have changed some tables already.
        """
        with self.writer() as write:
            write.delete(RESULTS, "run_id", [run["run_id"]])
            write.delete(HISTOGRAMS, "run_id", [run["run_id"]])
            write.delete(RUNS, "run_id", [run["run_id"]])
            write.insert(RUNS, _frame(RUNS, [run]))

    def _fence(self, write: writers.TableWriter, monitor: str) -> None:
        """Renew this process's lease on ``monitor`` as part of the write, or raise LeaseLost
        so that nothing is written: only the holder of a monitor's lease writes its windows."""
        if monitor not in self.held:
            return  # written outside a lease (a test writing a store directly)
        if self.held[monitor] is None:
            raise leases.LeaseLost(f"monitor {monitor!r}: its lease was taken over by another driftline")
        lease, ttl = self.held[monitor]
        try:
            if isinstance(write, writers.TransactionWriter):
                lease = leases.fence(self.con, write.cursor, self.schema, lease, ttl)
            else:  # Spark: checked and renewed just before, not atomically (see driftline.leases)
                lease = leases.renew(self.con, self.schema, lease, ttl)
        except leases.LeaseLost:
            self.held[monitor] = None  # the evaluation stops; the new holder releases the lease
            raise
        self.held[monitor] = (lease, ttl)

    # -- alert episodes (read and written by driftline.alerts and driftline.outbox) -------------

    def alert_state(self, monitor: str) -> pd.DataFrame:
        """The episodes of ``monitor`` that alerting needs, in one query: the latest episode of
        each fingerprint, and every episode with a notification still pending."""
        alerts = self.table(ALERTS)
        mine = alerts.filter(alerts.monitor == monitor)
        newest_first = ibis.row_number().over(group_by=mine.fingerprint, order_by=ibis.desc(mine.opened_at))
        ranked = mine.mutate(_rank=newest_first)
        wanted = ranked.filter((ranked._rank == 0) | ranked.notify_status.isin(["pending", "sending"]))
        return wanted.drop("_rank").execute()

    def alert_episodes(self, monitor: str) -> pd.DataFrame:
        """Every episode of ``monitor``: what rebuilding them from the window timeline starts from."""
        alerts = self.table(ALERTS)
        return alerts.filter(alerts.monitor == monitor).execute()

    def result_timeline(self, monitor: str, until: datetime) -> pd.DataFrame:
        """The stored results of ``monitor`` in windows starting at or before ``until``, in window order."""
        results = self.table(RESULTS)
        mine = results.filter((results.monitor == monitor) & (results.window_start <= ibis.literal(until, "timestamp")))
        return mine.order_by("window_start").execute()

    def last_judged_windows(self, monitor: str, leaving_out: Iterable[datetime] = ()) -> pd.DataFrame:
        """Per check, column and segment of ``monitor``: ``window_start``, the start of the latest
        window with an ok, warn or fail result, the windows starting at ``leaving_out`` left out."""
        results = self.table(RESULTS)
        judged = results.filter((results.monitor == monitor) & results.status.isin(["ok", "warn", "fail"]))
        skipped = [ibis.literal(start, "timestamp") for start in leaving_out]
        if skipped:
            judged = judged.filter(~judged.window_start.isin(skipped))
        series = ["monitor", "check_name", "column_name", "segment_key", "segment_value"]
        return judged.group_by(series).aggregate(window_start=judged.window_start.max()).execute()

    def save_alerts(self, rows: list[dict[str, Any]], removed: Iterable[str] = ()) -> None:
        """Insert episodes, replacing those with the same ``alert_id``, and delete the episodes
        ``removed`` (merged into another one by a rebuild), as one unit."""
        removed = list(removed)
        if not rows and not removed:
            return
        with self.writer() as write:
            write.delete(ALERTS, "alert_id", [row["alert_id"] for row in rows] + removed)
            write.insert(ALERTS, _frame(ALERTS, rows))

    # -------------------------------------------------------------------------------------------

    def _run_ids(self, monitor: str, window_start: datetime) -> list[str]:
        """Every run id recorded for this window, the one being written included."""
        runs = self.table(RUNS)
        found = runs.filter((runs.monitor == monitor) & (runs.window_start == ibis.literal(window_start, "timestamp")))
        return sorted(set(found.run_id.execute()))


_MIGRATION_LOCK = 0x64726966746C696E  # "driftlin": the advisory lock key of ensure_tables


def _frame(table: str, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame with exactly the table's columns, in order, with its types."""
    schema = TABLES[table]
    frame = pd.DataFrame(list(rows), columns=list(schema.names))
    for name, dtype in schema.items():
        if dtype.is_timestamp():
            frame[name] = pd.to_datetime(frame[name])
        elif dtype.is_int64():
            frame[name] = frame[name].astype("Int64")
        elif dtype.is_float64():
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        elif dtype.is_string():
            frame[name] = frame[name].astype("object").where(frame[name].notna(), None)
    return frame


def _alerts_at_window_starts(alerts: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The episodes of ``alerts`` whose times move from window ends to window starts, moved."""
    moved = []
    for monitor, episodes in alerts.groupby("monitor"):
        windows = runs[runs.monitor == monitor]
        if windows.empty:
            continue  # nothing says how long its windows were
        start_of = dict(zip(pd.to_datetime(windows.window_end), pd.to_datetime(windows.window_start)))
        usual = (pd.to_datetime(windows.window_end) - pd.to_datetime(windows.window_start)).mode().iloc[0]
        episodes = episodes.copy()
        for column in ("opened_at", "last_seen_at", "resolved_at", "notified_at"):
            episodes[column] = [t if pd.isna(t) else start_of.get(pd.Timestamp(t), pd.Timestamp(t) - usual) for t in episodes[column]]
        moved.append(episodes)
    return pd.concat(moved, ignore_index=True) if moved else alerts.iloc[0:0]


def _legacy_reason(details: Any) -> Any:
    """``details["reason"]`` of a row written before the ``reason`` column (a sentence then)."""
    try:
        parsed = json.loads(details) if isinstance(details, str) else None
    except ValueError:
        return None
    return parsed.get("reason") if isinstance(parsed, dict) else None


def _windows(frame: pd.DataFrame) -> list[Window]:
    """The windows of a frame with ``window_start`` and ``window_end`` columns."""
    return [Window(pd.Timestamp(r.window_start).to_pydatetime(), pd.Timestamp(r.window_end).to_pydatetime()) for r in frame.itertuples()]
