"""Connecting to a warehouse by URL, and finding tables in it.

Connection URLs are ibis URLs, plus two forms of our own:

``duckdb://PATH[?memory_limit=1GB&threads=2]``
    A DuckDB file, relative to the project directory (``duckdb://`` or ``duckdb://:memory:``
    for an in-memory database), with DuckDB's own settings for the resources it may use.
``pyspark://local`` or ``pyspark://local?warehouse=DIR``
    A local Spark session started in this process (see :func:`local_spark_session`). ``DIR``
    holds the tables and their catalog; relative to the project directory, default
    ``spark-warehouse``.
``pyspark://``
    The Spark session already running in this process: a cluster job started by
    ``spark-submit``, a Databricks or Jupyter notebook.

A DuckDB connection compiles with driftline's DuckDB compiler (see ``dialects``).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import ibis
import ibis.expr.types as ir

from driftline.dialects import use_driftline_compiler
from driftline.errors import WarehouseError

SPARK_WAREHOUSE = "spark-warehouse"  # default local warehouse, inside the project directory


def connect(url: str, root: Path | None = None, read_only: bool = False) -> ibis.BaseBackend:
    """Open an ibis backend; relative paths in the URL are relative to the project directory.
    ``read_only`` opens a DuckDB file without write access (elsewhere the user's grants decide)."""
    try:
        if url.startswith("duckdb:"):
            path, settings = _duckdb_path(url, root), _duckdb_settings(url)
            con = ibis.duckdb.connect(path, read_only=read_only and path != ":memory:", **settings)
            # driftline reads tables only; a query that reaches for a file or URL (read_text,
            # read_csv, 'x.csv' in FROM) fails in DuckDB itself, beyond source.sql's allowlist.
            # The setting cannot be turned back on in this connection.
            con.raw_sql("SET enable_external_access = false")
            return use_driftline_compiler(con)
        if url.startswith("pyspark:"):
            return _connect_spark(url, root)
        return ibis.connect(url)
    except WarehouseError:
        raise
    except Exception as error:  # the driver's own error says what is wrong; keep it on one line
        raise WarehouseError(f"cannot connect to {redact(url)}: {_without_secrets_of(url, _one_line(error))}") from None


# DuckDB settings a duckdb:// URL may carry. memory_limit also bounds the blocks of the database
# file DuckDB keeps cached, which are most of a run's memory (DuckDB's default: 80 % of RAM).
DUCKDB_SETTINGS = ("memory_limit", "threads", "temp_directory")


def _duckdb_settings(url: str) -> dict[str, str]:
    options = {key: values[-1] for key, values in parse_qs(urlparse(url).query).items()}
    unknown = sorted(set(options) - set(DUCKDB_SETTINGS))
    if unknown:
        raise WarehouseError(f"{redact(url)}: unknown option {unknown[0]!r}; duckdb URLs take {', '.join(DUCKDB_SETTINGS)}")
    return options


def _duckdb_path(url: str, root: Path | None) -> str:
    path = url.split("://", 1)[1] if "://" in url else url.split(":", 1)[1]
    path = path.split("?", 1)[0]
    if path in ("", ":memory:", "memory"):
        return ":memory:"
    return str(_under(root, path))


def _under(root: Path | None, path: str) -> Path:
    candidate = Path(path)
    if not candidate.is_absolute() and root is not None:
        candidate = root / candidate
    return candidate


# A query parameter whose name says it holds a credential (``password``, ``pwd``, ``token``,
# ``secret``, ``key``, ``access_key``, ``private_key_passphrase`` ..., any case), and its value.
# Masking a harmless one by mistake costs little; printing a secret costs a rotation.
_SECRET_PARAMETER = re.compile(r"(?P<name>[?&;][^=&;#?]*(?:pass|pwd|token|secret|key|credential)[^=&;#?]*=)(?P<value>[^&;#]*)", re.I)


def redact(url: str) -> str:
    """The URL with its secrets masked as ``***``, for messages: the password of
    ``user:password@`` and the value of every password-like query parameter."""
    parsed = urlparse(url)
    if parsed.password:
        url = url.replace(f":{parsed.password}@", ":***@", 1)
    return _SECRET_PARAMETER.sub(r"\g<name>***", url)


def _without_secrets_of(url: str, message: str) -> str:
    """A driver's message with the URL's secrets masked, should the driver quote one."""
    secrets = [urlparse(url).password] + [m["value"] for m in _SECRET_PARAMETER.finditer(url)]
    for secret in filter(None, secrets):
        message = message.replace(secret, "***").replace(unquote(secret), "***")
    return message


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


# -- Spark ----------------------------------------------------------------------------------------


def _connect_spark(url: str, root: Path | None) -> ibis.BaseBackend:
    """``pyspark://local[?warehouse=DIR]`` starts (or reuses) a local session; ``pyspark://``
    attaches to the session already running in this process."""
    parsed = urlparse(url)
    options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    unknown = sorted(set(options) - {"warehouse"})
    if unknown:
        raise WarehouseError(f"{redact(url)}: unknown option {unknown[0]!r}; pyspark URLs take ?warehouse=DIR")
    if parsed.netloc == "local":
        warehouse = _under(root or Path.cwd(), options.get("warehouse", SPARK_WAREHOUSE))
        return ibis.pyspark.connect(local_spark_session(warehouse.resolve()))
    if parsed.netloc or options:
        raise WarehouseError(f"{redact(url)}: expected pyspark://local[?warehouse=DIR] or pyspark://")
    return ibis.pyspark.connect(_running_spark_session())


def local_spark_session(warehouse: Path) -> Any:
    """The process's local Spark session, started on first use and reused afterwards.

    A process runs one Spark context, whose warehouse and catalog are fixed when it starts, and
    starting one takes seconds: a second connection reuses the first session, provided it asks
    for the same warehouse. The session runs on two local threads, bound to the loopback
    interface, with the UI off and few shuffle partitions (driftline's queries return small
    aggregates). Its catalog is an embedded Derby metastore inside ``warehouse``, so the result
    tables outlive the process: Spark's default in-memory catalog would forget them, and the next
    run could not even recreate them over their leftover files. Embedded Derby admits one
    process at a time, so two driftline processes cannot share a local warehouse concurrently.
    Nothing is downloaded.
    """
    from pyspark.sql import SparkSession

    running = SparkSession.getActiveSession()
    if running is not None:
        _check_same_warehouse(running, warehouse)
        return running
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no lookup of the host's public address
    builder = SparkSession.builder
    for key, value in _local_spark_settings(warehouse).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    # Derby writes derby.log into its home directory (the working directory by default); the
    # metastore only starts on the first catalog access, so setting the home here is in time.
    session.sparkContext._jvm.java.lang.System.setProperty("derby.system.home", str(warehouse))
    return session


def _local_spark_settings(warehouse: Path) -> dict[str, str]:
    metastore = warehouse / "metastore_db"
    return {
        "spark.master": "local[2]",
        "spark.app.name": "driftline",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true",
        # Arrow converts pandas timestamps in the session time zone (UTC); without it PySpark
        # reads naive timestamps in the Python process's local time zone.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


def _check_same_warehouse(session: Any, warehouse: Path) -> None:
    current = Path(urlparse(session.conf.get("spark.sql.warehouse.dir")).path)
    if current != warehouse:
        raise WarehouseError(
            f"a Spark session with warehouse {current} is already running in this process, and Spark "
            f"cannot change it to {warehouse}; use the same warehouse, or pyspark:// to attach to it"
        )


def _running_spark_session() -> Any:
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is None:
        raise WarehouseError("pyspark:// attaches to a running Spark session and none is running; use pyspark://local to start one")
    return session


# -- tables -----------------------------------------------------------------------------------------


def find_table(con: ibis.BaseBackend, name: str) -> ir.Table:
    """The table ``[catalog.][schema.]table``; LookupError with close matches when missing."""
    from driftline.spec.errors import did_you_mean

    table, database = table_reference(name)
    try:
        return con.table(table, database=database)
    except Exception:
        pass
    try:
        known = con.list_tables(database=database)
    except Exception:
        known = []
    raise LookupError(f"table {name!r} not found{did_you_mean(table, known)}")


def table_reference(name: str) -> tuple[str, tuple[str, ...] | str | None]:
    """``[catalog.][schema.]table`` → (table, database) as ibis expects."""
    parts = name.split(".")
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 2:
        return parts[1], parts[0]
    return parts[-1], tuple(parts[:-1])


# -- bounded queries --------------------------------------------------------------------------------


@dataclass
class QueryWatch:
    """What :func:`bounded_query` saw: whether the timeout stopped the query."""

    timeout: timedelta | None
    expired: bool = False
    _done: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stop_with(self, cancel) -> None:
        """Called by the timer: cancel the query unless it has finished meanwhile."""
        with self._lock:
            if not self._done:
                self.expired = True
                cancel()

    def finish(self) -> None:
        with self._lock:
            self._done = True


@contextlib.contextmanager
def bounded_query(con: ibis.BaseBackend, timeout: timedelta | None) -> Iterator[QueryWatch]:
    """Run the query of the ``with`` block read-only where the backend allows, stopped after ``timeout``.

    - PostgreSQL: in a READ ONLY transaction with ``SET LOCAL statement_timeout``; the server
      cancels the query. Only this transaction is read-only: results are written on the same
      connection afterwards.
    - DuckDB: a timer calls the connection's ``interrupt()``. DuckDB has no read-only
      transaction on a connection that also writes; the allowlist and ``enable_external_access =
      false`` (see :func:`connect`) keep the query to the database's tables.
    - Spark: the query's jobs run in a job group of their own, which a timer cancels.
    - Other backends: the query runs unbounded.
    """
    watch = QueryWatch(timeout)
    if con.name == "postgres":
        with _postgres_read_only(con, timeout):
            yield watch
        return
    cancel = _canceller(con)
    timer = None
    if timeout is not None and cancel is not None:
        timer = threading.Timer(timeout.total_seconds(), watch.stop_with, args=(cancel,))
        timer.daemon = True
        timer.start()
    try:
        yield watch
    finally:
        watch.finish()
        if timer is not None:
            timer.cancel()


@contextlib.contextmanager
def _postgres_read_only(con: ibis.BaseBackend, timeout: timedelta | None) -> Iterator[None]:
    pg = con.con
    # ibis runs the query in a nested transaction (a savepoint) of this one.
    with pg.transaction():
        with pg.cursor() as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
            if timeout is not None:
                cursor.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout.total_seconds() * 1000))}")
        yield


def _canceller(con: ibis.BaseBackend):
    """A function that stops the query running on ``con`` from another thread, or None."""
    if con.name == "duckdb":
        return con.con.interrupt
    if con.name == "pyspark":
        context = con._session.sparkContext
        group = f"driftline-{uuid.uuid4().hex}"
        context.setJobGroup(group, "driftline query", interruptOnCancel=True)
        return lambda: context.cancelJobGroup(group)
    return None


def is_timeout(error: BaseException, watch: QueryWatch) -> bool:
    """Whether ``error`` is the query being stopped by its timeout."""
    if watch.expired:
        return True
    # PostgreSQL cancels on its own: 'canceling statement due to statement timeout'
    return type(error).__name__ == "QueryCanceled" and "statement timeout" in str(error)
