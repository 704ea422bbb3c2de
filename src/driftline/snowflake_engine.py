"""Snowflake: opening a connection from a ``snowflake://`` URL, and writing the result tables in
transactions.

``snowflake://USER[:PASSWORD]@ACCOUNT/DATABASE[/SCHEMA][?OPTIONS]``

The options go to snowflake-connector-python as they are named: ``warehouse``, ``role``,
``authenticator``, ``host``, ``port`` and ``protocol`` (a private endpoint or proxy, or an
emulator on ``http``), and for key-pair authentication ``private_key_file`` (a PEM file, relative
to the project directory) with ``private_key_file_pwd`` (its passphrase). A password is best
written as ``${SNOWFLAKE_PASSWORD}`` in ``driftline_project.yml``, which interpolates it.

driftline opens the connector's connection itself and hands it to ibis, rather than asking ibis
to connect: ibis's own URL parsing drops host, port and protocol, and the session settings ibis
needs (UTC, Arrow results) are given at login here, so they hold also where ``ALTER SESSION``
is not allowed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import ibis
import pandas as pd

from driftline.errors import WarehouseError

# The URL's query parameters, each passed to the connector under the same name.
OPTIONS = ("warehouse", "role", "authenticator", "host", "port", "protocol", "private_key_file", "private_key_file_pwd")

# Settings of every session, given at login: times in UTC (result timestamps are UTC without a
# zone), Arrow results (what ibis reads), and a tag that shows driftline's queries in the
# warehouse's query history.
SESSION_PARAMETERS = {
    "TIMEZONE": "UTC",
    "PYTHON_CONNECTOR_QUERY_RESULT_FORMAT": "arrow_force",
    "QUERY_TAG": "driftline",
}


def connect(url: str, root: Path | None) -> ibis.BaseBackend:
    """An ibis Snowflake backend over a connector connection made from ``url``."""
    import snowflake.connector

    raw = snowflake.connector.connect(**connection_arguments(url, root))
    # ibis's object UDFs are not used by driftline, and creating them needs CREATE DATABASE.
    return ibis.snowflake.from_connection(raw, create_object_udfs=False)


def connection_arguments(url: str, root: Path | None) -> dict[str, Any]:
    """The connector's keyword arguments for ``url``; raises WarehouseError naming a wrong part.

    >>> args = connection_arguments("snowflake://ml:s%40cret@acme-eu/ANALYTICS/monitoring?warehouse=WH&port=8080", None)
    >>> args["user"], args["password"], args["account"], args["database"], args["schema"], args["warehouse"], args["port"]
    ('ml', 's@cret', 'acme-eu', 'ANALYTICS', 'monitoring', 'WH', 8080)
    """
    from driftline.connect import redact

    parsed = urlparse(url)
    database, _, schema = parsed.path.lstrip("/").partition("/")
    if not parsed.hostname or not parsed.username or not database:
        raise WarehouseError(f"{redact(url)}: expected snowflake://USER[:PASSWORD]@ACCOUNT/DATABASE[/SCHEMA][?warehouse=..&role=..]")
    arguments: dict[str, Any] = {
        "user": unquote(parsed.username),
        "account": parsed.hostname,
        "database": unquote(database),
        "paramstyle": "qmark",  # the server binds the values: no quoting of ours in any statement
        "session_parameters": dict(SESSION_PARAMETERS),
        "login_timeout": 60,
    }
    if schema:
        arguments["schema"] = unquote(schema.strip("/"))
    if parsed.password:
        arguments["password"] = unquote(parsed.password)
    for key, values in parse_qs(parsed.query, keep_blank_values=True).items():
        if key not in OPTIONS:
            raise WarehouseError(f"{redact(url)}: unknown option {key!r}; snowflake URLs take {', '.join(OPTIONS)}")
        arguments[key] = values[-1]
    if "port" in arguments:
        if not arguments["port"].isdigit():
            raise WarehouseError(f"{redact(url)}: port must be a number, got {arguments['port']!r}")
        arguments["port"] = int(arguments["port"])
    if "private_key_file" in arguments:
        key_file = Path(arguments["private_key_file"])
        if not key_file.is_absolute() and root is not None:
            key_file = root / key_file
        if not key_file.is_file():
            raise WarehouseError(f"{redact(url)}: private_key_file {key_file} does not exist")
        arguments["private_key_file"] = str(key_file)
    return arguments


# -- writing ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def transaction(con: ibis.BaseBackend) -> Iterator[Any]:
    """A connector cursor inside ``BEGIN`` ... ``COMMIT``; ``ROLLBACK`` on any error.

    The connection autocommits each statement otherwise; an explicit ``BEGIN`` makes the
    statements up to ``COMMIT`` one unit, which readers see all at once or not at all.
    """
    cursor = con.con.cursor()
    try:
        cursor.execute("BEGIN")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
    finally:
        cursor.close()


# Rows per INSERT statement: a window writes hundreds of rows, a backfill's alerts a few thousand.
ROWS_PER_INSERT = 1_000


def insert_frame(cursor: Any, table_sql: str, frame: pd.DataFrame) -> None:
    """``INSERT`` the frame's rows, the values bound by the server, in statements of at most
    :data:`ROWS_PER_INSERT` rows, inside the caller's transaction.

    A missing value is written as the literal ``NULL`` rather than bound: a bound null carries
    no type, and a typed column (a timestamp) may take it for a zero. The connector's array
    binding (``executemany``) is not used for the same reason: one null makes it send a whole
    timestamp column untyped.
    """
    if frame.empty:
        return
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    rows = [_row(row) for row in frame.itertuples(index=False, name=None)]
    for first in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[first:first + ROWS_PER_INSERT]
        values = ", ".join("(" + ", ".join("NULL" if v is None else "?" for v in row) + ")" for row in chunk)
        cursor.execute(f"INSERT INTO {table_sql} ({columns}) VALUES {values}", [v for row in chunk for v in row if v is not None])


def _row(values: tuple) -> list[Any]:
    """Python values the connector binds: None for every kind of missing, plain numbers and
    datetimes instead of numpy's and pandas'."""
    row = []
    for value in values:
        if value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and value != value):
            row.append(None)
        elif isinstance(value, pd.Timestamp):
            row.append(value.to_pydatetime())
        elif hasattr(value, "item"):  # a numpy scalar
            row.append(value.item())
        else:
            row.append(value)
    return row
