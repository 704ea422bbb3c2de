"""Connecting to a warehouse by URL, and finding tables in it.

Connection URLs are ibis URLs, plus two forms of our own:

``duckdb://PATH[?memory_limit=1GB&threads=2]``
    A DuckDB file, relative to the project directory (``duckdb://`` or ``duckdb://:memory:``
    for an in-memory database), with DuckDB's own settings for the resources it may use;
    the project's ``duckdb:`` block sets those the URL leaves out.
``pyspark://local[?warehouse=DIR]``
    A local Spark session started in this process (see :func:`spark_session`). ``DIR``
    holds the tables and their catalog; relative to the project directory, default
    ``spark-warehouse``.
``spark://HOST:PORT[?warehouse=DIR]``
    A session of this process on a standalone Spark cluster's master, with the same warehouse
    and catalog as ``pyspark://local``.
``sc://HOST:PORT``
    A Spark Connect server (which owns its warehouse and catalog).
``pyspark://``
    The Spark session already running in this process: a cluster job started by
    ``spark-submit`` (YARN, Kubernetes), a Databricks or Jupyter notebook.
``snowflake://USER[:PASSWORD]@ACCOUNT/DATABASE[/SCHEMA]?warehouse=..&role=..``
    Snowflake, through a connector connection opened by ``snowflake_engine`` (whose URL
    options, key-pair authentication among them, reach the connector).

The three Spark URLs that start a session also take Spark settings as ``conf.<setting>=VALUE``
query parameters, e.g. ``spark://10.0.0.5:7077?conf.spark.executor.memory=4g``.

DuckDB and Spark connections compile with driftline's compilers for them (see ``dialects``).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
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


def connect(
    url: str, root: Path | None = None, read_only: bool = False, duckdb: Mapping[str, str] | None = None, spark: Mapping | None = None
) -> ibis.BaseBackend:
    """Open an ibis backend; relative paths in the URL are relative to the project directory.
    ``read_only`` opens a DuckDB file without write access (elsewhere the user's grants decide).
    ``duckdb``: the project's DuckDB settings (its ``duckdb:`` block), which the URL's own
    options override; other backends ignore them. ``spark``: the project's ``spark:`` block
    (``warehouse`` and ``conf``), which the URL's own options override likewise."""
    try:
        if url.startswith("duckdb:"):
            path, settings = _duckdb_path(url, root), {**(duckdb or {}), **_duckdb_settings(url, root)}
            con = ibis.duckdb.connect(path, read_only=read_only and path != ":memory:", **settings)
            # driftline reads tables only; a query that reaches for a file or URL (read_text,
            # read_csv, 'x.csv' in FROM) fails in DuckDB itself, beyond source.sql's allowlist.
            # The setting cannot be turned back on in this connection.
            con.raw_sql("SET enable_external_access = false")
            return use_driftline_compiler(con)
        if url.startswith(("pyspark:", "spark:", "sc:")):
            return _connect_spark(url, root, spark or {})
        if url.startswith("snowflake:"):
            from driftline import snowflake_engine

            return use_driftline_compiler(snowflake_engine.connect(url, root))
        return use_driftline_compiler(ibis.connect(url))
    except WarehouseError:
        raise
    except Exception as error:  # the driver's own error says what is wrong; keep it on one line
        raise WarehouseError(f"cannot connect to {redact(url)}: {_without_secrets_of(url, _one_line(error))}") from None


# DuckDB settings a duckdb:// URL may carry. memory_limit also bounds the blocks of the database
# file DuckDB keeps cached, which are most of a run's memory (DuckDB's default: 80 % of RAM).
DUCKDB_SETTINGS = ("memory_limit", "threads", "temp_directory")


def _duckdb_settings(url: str, root: Path | None = None) -> dict[str, str]:
    options = {key: values[-1] for key, values in parse_qs(urlparse(url).query).items()}
    unknown = sorted(set(options) - set(DUCKDB_SETTINGS))
    if unknown:
        raise WarehouseError(f"{redact(url)}: unknown option {unknown[0]!r}; duckdb URLs take {', '.join(DUCKDB_SETTINGS)}")
    if "temp_directory" in options:  # like the file itself, relative to the project directory
        options["temp_directory"] = str(_under(root, options["temp_directory"]))
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

# The query parameters of a Spark URL: ``warehouse=DIR`` (not for sc://, whose server owns its
# warehouse) and ``conf.<Spark setting>=VALUE``, e.g. ``conf.spark.executor.memory=2g``.
SPARK_CONF_PREFIX = "conf."
_SPARK_URLS = "pyspark://local, spark://HOST:PORT (a standalone master) or sc://HOST:PORT (Spark Connect)"


@dataclass(frozen=True)
class SparkOptions:
    """What a Spark URL's query says: the warehouse folder (None: the default) and Spark settings."""

    warehouse: str | None
    conf: dict[str, str]


def _spark_options(url: str, *, takes_warehouse: bool) -> SparkOptions:
    conf, warehouse = {}, None
    for key, values in parse_qs(urlparse(url).query, keep_blank_values=True).items():
        if key == "warehouse" and takes_warehouse:
            warehouse = values[-1]
        elif key.startswith(SPARK_CONF_PREFIX) and len(key) > len(SPARK_CONF_PREFIX):
            conf[key[len(SPARK_CONF_PREFIX):]] = values[-1]
        else:
            accepted = "?warehouse=DIR and conf.<spark setting>=VALUE" if takes_warehouse else "conf.<spark setting>=VALUE (the server owns its warehouse)"
            raise WarehouseError(f"{redact(url)}: unknown option {key!r}; this Spark URL takes {accepted}")
    return SparkOptions(warehouse, conf)


def _connect_spark(url: str, root: Path | None, project: Mapping) -> ibis.BaseBackend:
    """``pyspark://local``, ``spark://HOST:PORT`` and ``sc://HOST:PORT`` start (or reuse) a
    session of this process; ``pyspark://`` attaches to the session already running in it."""
    target = spark_target(url, root, project)
    if target.address is None:
        session = _running_spark_session()
    elif target.address.startswith("sc:"):
        session = spark_connect_session(target.address, target.conf)
    else:
        session = spark_session(target.address, target.warehouse, target.conf)
    return use_driftline_compiler(ibis.pyspark.connect(session))


@dataclass(frozen=True)
class SparkTarget:
    """The session a Spark URL asks for: a master (``local[2]``, ``spark://HOST:PORT``) with its
    warehouse, a Spark Connect address (``sc://...``, no warehouse), or None: the running session.
    ``conf``: the project's ``spark.conf`` under the URL's ``conf.*`` options."""

    address: str | None
    warehouse: Path | None = None
    conf: dict[str, str] = field(default_factory=dict)


def spark_target(url: str, root: Path | None, project: Mapping | None = None) -> SparkTarget:
    """What a Spark URL and the project's ``spark:`` block (``warehouse``, ``conf``) ask for,
    without starting anything; a wrong URL is a one-line WarehouseError."""
    parsed, project = urlparse(url), project or {}
    if parsed.scheme == "sc":
        options = _spark_options(url, takes_warehouse=False)
        return SparkTarget(url.split("?", 1)[0], None, {**(project.get("conf") or {}), **options.conf})
    if parsed.scheme == "spark":
        if not parsed.hostname or parsed.port is None:
            raise WarehouseError(f"{redact(url)}: expected spark://HOST:PORT, the standalone master's address")
        master = url.split("?", 1)[0]
    elif parsed.netloc == "local":
        master = "local[2]"
    elif parsed.netloc:
        raise WarehouseError(f"{redact(url)}: expected {_SPARK_URLS}, or pyspark:// for the session of a spark-submit job")
    elif parsed.query:
        raise WarehouseError(f"{redact(url)}: pyspark:// takes no options; the running session has its own")
    else:
        return SparkTarget(None)
    options = _spark_options(url, takes_warehouse=True)
    warehouse = _under(root or Path.cwd(), options.warehouse or project.get("warehouse") or SPARK_WAREHOUSE).resolve()
    return SparkTarget(master, warehouse, {**(project.get("conf") or {}), **options.conf})


def local_spark_session(warehouse: Path) -> Any:
    """The process's local Spark session (``pyspark://local``); see :func:`spark_session`."""
    return spark_session("local[2]", warehouse)


def spark_session(master: str, warehouse: Path, conf: dict[str, str] | None = None) -> Any:
    """The process's Spark session on ``master`` (``local[2]`` or a standalone master's
    ``spark://HOST:PORT``), started on first use and reused afterwards.

    A process runs one Spark context, whose master, warehouse and catalog are fixed when it
    starts, and starting one takes seconds: a second connection reuses the first session,
    provided it asks for the same master and warehouse. The session runs with the UI off and few
    shuffle partitions (driftline's queries return small aggregates); with a local master or one
    on this machine it is bound to the loopback interface. Its catalog is an embedded Derby
    metastore inside ``warehouse``, so the result tables outlive the process: Spark's default
    in-memory catalog would forget them, and the next run could not even recreate them over
    their leftover files. Embedded Derby admits one process at a time, so two driftline
    processes cannot share a warehouse concurrently. The executors of a cluster write the tables'
    files into ``warehouse`` themselves: on a cluster of several hosts it must be storage every
    host sees at the same path. ``conf`` (the URL's ``conf.*`` options) comes last and wins.
    Nothing is downloaded.
    """
    from pyspark.sql import SparkSession

    running = SparkSession.getActiveSession()
    if running is not None:
        _check_same_session(running, master, warehouse)
        return running
    loopback = _is_loopback(master)
    if loopback:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no lookup of the host's public address
    builder = SparkSession.builder
    for key, value in {**_spark_settings(master, warehouse, loopback), **(conf or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    # Derby writes derby.log into its home directory (the working directory by default); the
    # metastore only starts on the first catalog access, so setting the home here is in time.
    session.sparkContext._jvm.java.lang.System.setProperty("derby.system.home", str(warehouse))
    return session


def _is_loopback(master: str) -> bool:
    return master.startswith("local") or urlparse(master).hostname in ("127.0.0.1", "localhost", "::1")


def _spark_settings(master: str, warehouse: Path, loopback: bool) -> dict[str, str]:
    metastore = warehouse / "metastore_db"
    settings = {
        "spark.master": master,
        "spark.app.name": "driftline",
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
    if loopback:  # a remote cluster's executors must reach the driver on an address they can see
        settings |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    return settings


def _check_same_session(session: Any, master: str, warehouse: Path) -> None:
    current = Path(urlparse(session.conf.get("spark.sql.warehouse.dir")).path)
    running_master = session.sparkContext.master
    if current != warehouse or running_master != master:
        raise WarehouseError(
            f"a Spark session on {running_master} with warehouse {current} is already running in this process, and "
            f"Spark cannot change it to {master} with {warehouse}; use the same URL, or pyspark:// to attach to it"
        )


def spark_connect_session(address: str, conf: dict[str, str] | None = None) -> Any:
    """A Spark Connect session on the server at ``address`` (``sc://HOST:PORT``, with Spark
    Connect's own ``/;token=...`` parameters if any). The server owns the warehouse and catalog:
    result tables outlive driftline's process as long as the server's catalog keeps them (an
    in-memory catalog forgets them when the server stops). Times are read in UTC, as elsewhere."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.remote(address).config("spark.sql.session.timeZone", "UTC")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _running_spark_session() -> Any:
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is None:
        raise WarehouseError(
            "pyspark:// is the Spark session of the Python process driftline runs in (a spark-submit job, a "
            f"notebook) and this process has none; from the command line use {_SPARK_URLS}"
        )
    return session


def _is_spark_connect(session: Any) -> bool:
    return type(session).__module__.startswith("pyspark.sql.connect")


# -- tables -----------------------------------------------------------------------------------------


def find_table(con: ibis.BaseBackend, name: str) -> ir.Table:
    """The table ``[catalog.][schema.]table``; LookupError with close matches when missing."""
    from driftline.spec.errors import did_you_mean

    table, database = table_reference(name)
    candidates = [(table, database)]
    if con.name == "snowflake":  # Snowflake stores an unquoted name upper-case: `leads` is LEADS
        upper = tuple(part.upper() for part in database) if isinstance(database, tuple) else database and database.upper()
        candidates.append((table.upper(), upper))
    for table_name, database_name in candidates:
        try:
            found = con.table(table_name, database=database_name)
        except Exception:
            continue
        if found.columns:  # a Snowflake emulator describes a missing table as one without columns
            return unquoted_names_lower_case(con, found)
    try:
        known = con.list_tables(database=database)
    except Exception:
        known = []
    raise LookupError(f"table {name!r} not found{did_you_mean(table, known)}")


def unquoted_names_lower_case(con: ibis.BaseBackend, table: ir.Table) -> ir.Table:
    """``table`` with the columns Snowflake stores upper-case named in lower case, as monitors
    name them (``score`` for SCORE): Snowflake upper-cases every name created unquoted, which is
    how most tables are created. A column created quoted in mixed or lower case keeps its name;
    elsewhere nothing changes."""
    if con.name != "snowflake":
        return table
    renamed = {c.lower(): c for c in table.columns if c.isupper() and c.lower() not in table.columns}
    return table.rename(renamed) if renamed else table


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
    if con.name == "pyspark" and _is_spark_connect(con._session):
        # Spark Connect has no job groups: the query's operations carry a tag of their own.
        session, tag = con._session, f"driftline-{uuid.uuid4().hex}"
        session.clearTags()
        session.addTag(tag)
        return lambda: session.interruptTag(tag)
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
