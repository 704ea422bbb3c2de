"""One evaluator per monitor at a time: a lease per monitor in the ``driftline_leases`` table.

A process evaluates a monitor only while it holds the monitor's lease. The lease row names its
holder (a token of this acquisition), host and PID, when it was acquired and when it expires.
Another process finds the row and skips the monitor (or waits for it, see :func:`acquire_waiting`).
A lease can be taken over when it has expired (``lease_ttl`` after its last renewal) or, at once,
when its holder ran on this host and that PID is gone: a killed run must not block the next one.

Guarantees per backend (SPEC §5):

- DuckDB and PostgreSQL: acquiring is one transaction whose write is conditional (``INSERT ..
  ON CONFLICT DO NOTHING`` on the primary key, or an ``UPDATE`` of exactly the holder that was
  seen); the affected row count says who won, so two processes never both acquire. Every window
  written checks and renews the lease in the write's own transaction (:func:`fence`): a process
  whose lease was taken over cannot write, and on PostgreSQL the row lock serialises two writers
  of one monitor.
- Snowflake: as DuckDB and PostgreSQL, but a free lease is claimed by an ``INSERT`` only where
  no row exists (Snowflake has no ``ON CONFLICT`` and enforces no key), which two processes in
  the same instant could both pass; see :func:`_insert_if_absent`.
- Spark has no transactions: acquiring is read, write, read back, serialised by a lock inside
  the process. Across processes that is not atomic; a local Spark warehouse admits one process
  anyway (its embedded Derby metastore), and on a shared cluster catalog two processes starting
  within the same instant could both believe they hold a lease.

Times are the processes' own UTC clocks: hosts sharing a warehouse need clocks that agree within
a small part of ``lease_ttl``.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Callable

import ibis
import pandas as pd

from driftline import writers
from driftline.errors import DriftlineError
from driftline.plan.profile import now_utc
from driftline.result_schema import LEASE_SCHEMA, LEASES

HOST = socket.gethostname()
POLL_SECONDS = 0.5  # how often a waiting process looks again

# Spark has no transactions: acquisitions within this process take turns.
_SPARK_TURN = threading.Lock()


class LeaseLost(DriftlineError):
    """This process's lease on a monitor was taken over: it must not write that monitor."""


@dataclass(frozen=True)
class Lease:
    monitor: str
    holder: str  # a token per acquisition: tells apart two holders within one process
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {self.acquired_at:%Y-%m-%d %H:%M:%S} UTC"

    def takeable(self, now: datetime) -> bool:
        """Expired, or held by a process of this host that no longer exists."""
        return self.expires_at <= now or not _alive(self)


def _alive(lease: Lease) -> bool:
    """Whether the holder may still run. Only a process on this host can be looked up; one on
    another host is presumed alive until its lease expires."""
    if lease.host != HOST or lease.pid == os.getpid():
        return True
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, run by another user
        return True
    return True


# -- the table --------------------------------------------------------------------------------


def ensure_table(con: ibis.BaseBackend, schema: str | None) -> None:
    """Create ``driftline_leases`` if missing: with its primary key where there are keys."""
    if con.name == "pyspark":
        writers.finish_interrupted_writes(con, schema, [LEASES])
        if LEASES not in con.list_tables(database=schema):
            con.create_table(LEASES, schema=LEASE_SCHEMA, database=schema)
        return
    types = {"string": "TEXT", "int64": "BIGINT", "timestamp": "TIMESTAMP"}
    columns = ", ".join(f'"{name}" {types[_kind(dtype)]}' for name, dtype in LEASE_SCHEMA.items())
    table = writers.qualified_name(con, LEASES, schema)
    con.raw_sql(f'CREATE TABLE IF NOT EXISTS {table} ({columns}, PRIMARY KEY ("monitor"))')


def _kind(dtype: Any) -> str:
    return "string" if dtype.is_string() else "int64" if dtype.is_integer() else "timestamp"


# -- acquire, renew, release ------------------------------------------------------------------


def acquire(con: ibis.BaseBackend, schema: str | None, monitor: str, ttl: timedelta) -> tuple[Lease | None, Lease | None]:
    """Try once: ``(my lease, None)``, or ``(None, the holder)`` when another process holds it."""
    now = now_utc()
    mine = Lease(monitor, uuid.uuid4().hex, HOST, os.getpid(), now, now + ttl)
    if con.name == "pyspark":
        with _SPARK_TURN:
            return _acquire_spark(con, schema, mine, now)
    holder = None
    for _ in range(3):  # a holder seen, then gone before our write: look again
        try:
            with writers.transaction(con) as cursor:
                won = _claim(con, cursor, schema, mine, now)
        except Exception as error:
            if not _is_conflict(error):
                raise
            won = False  # a concurrent claim committed first (DuckDB's optimistic transactions)
        if isinstance(won, Lease):
            return None, won
        if won:
            return mine, None
        with writers.transaction(con) as cursor:
            holder = _read(con, cursor, schema, monitor)
        if holder is not None:
            return None, holder
    return None, holder


def _claim(con, cursor, schema, mine: Lease, now: datetime) -> bool | Lease:
    """True when ``mine`` was written; the live holder when there is one; False when another
    claim won between the read and the write."""
    current = _read(con, cursor, schema, mine.monitor)
    if current is None and con.name == "snowflake":
        return _insert_if_absent(con, cursor, schema, mine)
    if current is None:
        sql = f"INSERT INTO {_table(con, schema)} VALUES ({_marks(con, 6)}) ON CONFLICT (\"monitor\") DO NOTHING"
        return _affected(con, cursor.execute(sql, _values(mine)) or cursor) == 1
    if not current.takeable(now):
        return current
    # Compare and swap: only the holder that was seen is replaced.
    sql = (
        f'UPDATE {_table(con, schema)} SET "holder" = {_mark(con)}, "host" = {_mark(con)}, "pid" = {_mark(con)}, '
        f'"acquired_at" = {_mark(con)}, "expires_at" = {_mark(con)} WHERE "monitor" = {_mark(con)} AND "holder" = {_mark(con)}'
    )
    values = [mine.holder, mine.host, mine.pid, mine.acquired_at, mine.expires_at, mine.monitor, current.holder]
    return _affected(con, cursor.execute(sql, values) or cursor) == 1


def _insert_if_absent(con, cursor, schema, mine: Lease) -> bool:
    """Snowflake has no ``ON CONFLICT`` and enforces no primary key: the row is inserted only if
    the monitor has none, and read back to see whether it is ours. Snowflake does not lock a
    table for an ``INSERT``: two claims of a free lease in transactions that overlap can both
    succeed, so on Snowflake two processes started on the same monitor in the same instant are
    not kept apart (a lease already held is, and so is a takeover, an ``UPDATE``)."""
    names = ", ".join(f'"{c}"' for c in LEASE_SCHEMA.names)
    sql = (
        f"INSERT INTO {_table(con, schema)} ({names}) SELECT {_marks(con, 6)} "
        f'WHERE NOT EXISTS (SELECT 1 FROM {_table(con, schema)} WHERE "monitor" = {_mark(con)})'
    )
    cursor.execute(sql, [*_values(mine), mine.monitor])
    found = _read(con, cursor, schema, mine.monitor)
    return found is not None and found.holder == mine.holder


def renew(con: ibis.BaseBackend, schema: str | None, lease: Lease, ttl: timedelta) -> Lease:
    """Push the expiry ``ttl`` ahead; LeaseLost when another process has taken the lease over."""
    if con.name == "pyspark":
        with _SPARK_TURN:
            return _renew_spark(con, schema, lease, ttl)
    with writers.transaction(con) as cursor:
        return fence(con, cursor, schema, lease, ttl)


def fence(con: ibis.BaseBackend, cursor: Any, schema: str | None, lease: Lease, ttl: timedelta) -> Lease:
    """Inside the caller's transaction: renew the lease, or raise LeaseLost so that nothing of
    the transaction is written. On PostgreSQL the updated row stays locked until the commit, so
    a second writer of the monitor waits for the first and then sees its rows (READ COMMITTED
    reads afresh at each statement; REPEATABLE READ and SERIALIZABLE make it fail instead)."""
    renewed = replace(lease, expires_at=now_utc() + ttl)
    sql = f'UPDATE {_table(con, schema)} SET "expires_at" = {_mark(con)} WHERE "monitor" = {_mark(con)} AND "holder" = {_mark(con)}'
    if _affected(con, cursor.execute(sql, [renewed.expires_at, lease.monitor, lease.holder]) or cursor) != 1:
        raise LeaseLost(f"monitor {lease.monitor!r}: its lease expired and another driftline took it over; lease_ttl is too short for one window")
    return renewed


def release(con: ibis.BaseBackend, schema: str | None, lease: Lease) -> None:
    """Give the lease up; a lease already taken over is left to its new holder."""
    if con.name == "pyspark":
        with _SPARK_TURN:
            if _read_spark(con, schema, lease.monitor) == lease:
                _write_spark(con, schema, lease.monitor, None)
        return
    with writers.transaction(con) as cursor:
        sql = f'DELETE FROM {_table(con, schema)} WHERE "monitor" = {_mark(con)} AND "holder" = {_mark(con)}'
        cursor.execute(sql, [lease.monitor, lease.holder])


def acquire_waiting(
    con: ibis.BaseBackend, schema: str | None, monitor: str, ttl: timedelta, deadline: float
) -> tuple[Lease | None, Lease | None]:
    """:func:`acquire`, trying again until ``deadline`` (``time.monotonic()``) has passed."""
    return retry_until(deadline, lambda: acquire(con, schema, monitor, ttl), lambda got: got[0] is not None)


def retry_until(deadline: float, attempt: Callable[[], Any], succeeded: Callable[[Any], bool]) -> Any:
    """Call ``attempt`` until it succeeds or ``deadline`` has passed; the last answer."""
    while True:
        got = attempt()
        if succeeded(got) or time.monotonic() >= deadline:
            return got
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


# -- SQL helpers --------------------------------------------------------------------------------


def _read(con, cursor, schema, monitor: str) -> Lease | None:
    names = ", ".join(f'"{c}"' for c in LEASE_SCHEMA.names)
    cursor.execute(f'SELECT {names} FROM {_table(con, schema)} WHERE "monitor" = {_mark(con)}', [monitor])
    row = cursor.fetchone()
    return None if row is None else _lease(row)


def _lease(row) -> Lease:
    monitor, holder, host, pid, acquired_at, expires_at = row
    return Lease(monitor, holder, host, int(pid), _naive(acquired_at), _naive(expires_at))


def _naive(value: Any) -> datetime:
    return pd.Timestamp(value).to_pydatetime().replace(tzinfo=None)


def _values(lease: Lease) -> list[Any]:
    return [lease.monitor, lease.holder, lease.host, lease.pid, lease.acquired_at, lease.expires_at]


def _affected(con, cursor) -> int:
    """Rows changed by the last statement: DuckDB returns them as a result, psycopg counts."""
    if con.name == "duckdb":
        row = cursor.fetchone()
        return int(row[0]) if row else 0
    return cursor.rowcount


def _is_conflict(error: Exception) -> bool:
    """A write that lost to a concurrent transaction (DuckDB), or a serialisation failure
    (PostgreSQL at REPEATABLE READ or SERIALIZABLE): someone else claimed the lease."""
    name = type(error).__name__
    return name in ("TransactionException", "SerializationFailure", "UniqueViolation") or "Conflict" in str(error)


def _table(con, schema) -> str:
    return writers.qualified_name(con, LEASES, schema)


def _mark(con) -> str:
    return writers.placeholder(con)


def _marks(con, n: int) -> str:
    return ", ".join([_mark(con)] * n)


# -- Spark ----------------------------------------------------------------------------------------


def _acquire_spark(con, schema, mine: Lease, now: datetime) -> tuple[Lease | None, Lease | None]:
    current = _read_spark(con, schema, mine.monitor)
    if current is not None and not current.takeable(now):
        return None, current
    _write_spark(con, schema, mine.monitor, mine)
    found = _read_spark(con, schema, mine.monitor)  # another process may have written after us
    return (mine, None) if found == mine else (None, found)


def _renew_spark(con, schema, lease: Lease, ttl: timedelta) -> Lease:
    if _read_spark(con, schema, lease.monitor) != lease:
        raise LeaseLost(f"monitor {lease.monitor!r}: its lease expired and another driftline took it over; lease_ttl is too short for one window")
    renewed = replace(lease, expires_at=now_utc() + ttl)
    _write_spark(con, schema, lease.monitor, renewed)
    return renewed


def _read_spark(con, schema, monitor: str) -> Lease | None:
    table = con.table(LEASES, database=schema)
    rows = table.filter(table.monitor == monitor).execute()
    return None if rows.empty else _lease(tuple(rows.iloc[0][list(LEASE_SCHEMA.names)]))


def _write_spark(con, schema, monitor: str, lease: Lease | None) -> None:
    rows = [] if lease is None else [dict(zip(LEASE_SCHEMA.names, _values(lease)))]
    frame = pd.DataFrame(rows, columns=list(LEASE_SCHEMA.names))
    for name, dtype in LEASE_SCHEMA.items():
        if dtype.is_timestamp():
            frame[name] = pd.to_datetime(frame[name])
    frame["pid"] = frame["pid"].astype("int64")
    with writers.writer(con, schema) as write:
        write.delete(LEASES, "monitor", [monitor])
        write.insert(LEASES, frame)


# -- what a process that did not get a lease reports ------------------------------------------------


@dataclass(frozen=True)
class Skip:
    """A monitor left to the process that holds its lease (``monitor`` None: every monitor,
    the warehouse itself being held, as a DuckDB file is by the process that opened it)."""

    monitor: str | None
    holder: Lease | None = None
    pid: int | None = None  # the process holding a DuckDB file

    def message(self) -> str:
        if self.monitor is None:
            return (
                f"skipped: the DuckDB file is open in another process (pid {self.pid} on host {HOST}), "
                "and DuckDB admits one writing process per file; --wait SECONDS waits for it"
            )
        who = self.holder.describe() if self.holder else "a process that has just released it"
        return f"skipped monitor {self.monitor!r}: another driftline is evaluating it ({who}); --wait SECONDS waits for it"


_DUCKDB_LOCK = re.compile(r"Could not set lock on file .*Conflicting lock is held in .*\(PID (\d+)\)")


def file_lock_holder(error: Exception) -> int | None:
    """The PID in DuckDB's error for a file another process has open, else None."""
    found = _DUCKDB_LOCK.search(str(error))
    return int(found.group(1)) if found else None
