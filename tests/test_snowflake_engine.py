"""The same monitor on Snowflake and on DuckDB, end to end through the command line.

What answers here is fakesnow, a Snowflake emulator (DuckDB behind Snowflake's wire protocol and
SQL), run as a server; the real Snowflake is not reached. ``DRIFTLINE_TEST_SNOWFLAKE_URL`` names
it (``.ci/services/fakesnow.sh`` starts one), e.g.
``snowflake://fake:snow@fakesnow/driftline?host=127.0.0.1&port=8765&protocol=http``; each test
session works in a database of its own, created here.

The source rows are those of ``drift_model.py``, written to a table created with unquoted names,
so Snowflake stores it as EVENTS with upper-case columns, while the monitor says ``events`` and
``x``, as users write them. A psi + chi2 + ks monitor with segments runs over a drifted day and
an empty day with ``driftline backfill --notify`` on ``snowflake://...``, its results in a schema
of their own and its alerts sent to a local stand-in for Slack, and once more on DuckDB. The
Snowflake results must equal the numpy/scipy model and the DuckDB results to 1e-9, and its alerts
DuckDB's; running the window again must replace its rows, and the views must read. Key-pair
logins and a password from the environment are tried on the same server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse, urlunparse

import ibis
import pandas as pd
import pytest
import yaml
from slack_server import FakeSlack
from drift_model import DAY, DRIFTED, EMPTY, ONE_ROW, arrow_table, compare, generate_rows
from test_spark_engine import CHECKS, expected_results, monitor_yaml

from driftline import connect, snowflake_engine
from driftline.errors import WarehouseError

URL_VARIABLE = "DRIFTLINE_TEST_SNOWFLAKE_URL"
RESULTS_SCHEMA = "monitoring"
WINDOWS = (DRIFTED, EMPTY)
NOW = ONE_ROW + 2 * DAY
RESULT_KEY = ["window_start", "check_name", "column_name", "segment_key", "segment_value"]
TYPES = {"ts": "TIMESTAMP_NTZ", "x": "DOUBLE", "y": "DOUBLE", "visits": "BIGINT", "const": "DOUBLE",
         "cat": "TEXT", "code": "BIGINT", "region": "TEXT"}


def _with_database(url: str, database: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path=f"/{database}/public"))


def _load_events(con: ibis.BaseBackend, data: dict[str, list]) -> None:
    """EVENTS as a user's loader would create it: unquoted names, stored upper-case. NaN and
    ±infinity are bound as floats, null is NULL, so the three stay apart."""
    columns = ", ".join(f"{name} {TYPES[name]}" for name in data)
    cursor = con.con.cursor()
    cursor.execute(f"CREATE TABLE events ({columns})")
    rows = list(zip(*data.values()))
    for first in range(0, len(rows), 500):
        chunk = rows[first:first + 500]
        values = ", ".join("(" + ", ".join("NULL" if v is None else "?" for v in row) + ")" for row in chunk)
        cursor.execute(f"INSERT INTO events VALUES {values}", [v for row in chunk for v in row if v is not None])
    cursor.close()


@dataclass
class Engines:
    root: Path
    url: str  # the project's Snowflake connection, in a database of this session's
    data: dict[str, list]
    snowflake: ibis.BaseBackend
    first: subprocess.CompletedProcess
    duckdb_exit: int
    sent: dict[str, int]  # Slack messages delivered by each engine's backfill

    def snowflake_table(self, name: str) -> pd.DataFrame:
        return self.snowflake.table(name, database=RESULTS_SCHEMA).execute()

    def duckdb_table(self, name: str) -> pd.DataFrame:
        con = ibis.duckdb.connect(str(self.root / "warehouse.duckdb"))
        try:
            return con.table(name, database=RESULTS_SCHEMA).execute()
        finally:
            con.disconnect()

    def backfill(self, start, end, *options: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "driftline.cli", "backfill", "--project", str(self.root),
                   "--start", start.isoformat(), "--end", end.isoformat(), "--at", NOW.isoformat(), *options]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, env=_without_proxies())


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Engines:
    server = os.environ.get(URL_VARIABLE)
    if not server:
        pytest.skip(f"{URL_VARIABLE} is not set: no Snowflake emulator to run against (.ci/services/fakesnow.sh starts one)")
    pytest.importorskip("snowflake.connector", reason="snowflake-connector-python is not installed (pip install 'driftline[snowflake]')")
    database = f"driftline_test_{uuid.uuid4().hex[:12]}"
    admin = connect.connect(server)
    admin.raw_sql(f"CREATE DATABASE {database}").close()
    admin.raw_sql(f"CREATE SCHEMA IF NOT EXISTS {database}.public").close()  # the emulator makes none

    root = tmp_path_factory.mktemp("snowflake_project")
    url = _with_database(server, database)
    data = generate_rows()
    snowflake = connect.connect(url)
    _load_events(snowflake, data)
    duckdb = ibis.duckdb.connect(str(root / "warehouse.duckdb"))
    duckdb.create_table("events", arrow_table(data))
    duckdb.disconnect()

    engines = Engines(root, url, data, snowflake, None, 0, {})
    slack = FakeSlack().start()
    try:
        notify = {"slack": {"token": slack.token, "channel": "#ml", "base_url": slack.base_url}}
        project = {"name": "snowflake_parity", "connection": url, "results": {"schema": RESULTS_SCHEMA}, "notify": notify}
        (root / "driftline_project.yml").write_text(yaml.safe_dump(project), encoding="utf-8")
        (root / "monitors").mkdir()
        (root / "monitors" / "main.yml").write_text(monitor_yaml(), encoding="utf-8")
        engines.first = engines.backfill(WINDOWS[0], WINDOWS[-1] + DAY, "--notify")
        engines.sent["snowflake"] = len(slack.delivered)
        command = [sys.executable, "-m", "driftline.cli", "backfill", "--project", str(root), "--connection", "duckdb://warehouse.duckdb",
                   "--start", WINDOWS[0].isoformat(), "--end", (WINDOWS[-1] + DAY).isoformat(), "--at", NOW.isoformat(), "--notify"]
        engines.duckdb_exit = subprocess.run(command, capture_output=True, text=True, timeout=600, env=_without_proxies()).returncode
        engines.sent["duckdb"] = len(slack.delivered) - engines.sent["snowflake"]
    finally:
        slack.stop()
    return engines


# -- the tests -------------------------------------------------------------------------------------


def test_the_backfill_runs_on_snowflake(engines):
    assert engines.first.returncode == engines.duckdb_exit, engines.first.stderr
    runs = engines.snowflake_table("driftline_runs")
    assert sorted(zip(runs.window_start, runs.status)) == [(pd.Timestamp(start), "success") for start in WINDOWS]


def test_source_names_are_found_whatever_their_case(engines):
    """The monitor says `events` and `x`; Snowflake holds EVENTS and X."""
    assert "EVENTS" in engines.snowflake.list_tables()
    table = connect.find_table(engines.snowflake, "events")
    assert {"ts", "x", "cat", "region"} <= set(table.columns)


def test_snowflake_results_match_numpy_and_scipy(engines):
    results = engines.snowflake_table("driftline_results")
    assert set(results.check_name) == set(CHECKS)
    for start in WINDOWS:
        compare(results[results.window_start == start], expected_results(engines.data, start))


def test_snowflake_results_match_duckdb(engines):
    snowflake = _keyed(engines.snowflake_table("driftline_results"))
    duckdb = _keyed(engines.duckdb_table("driftline_results"))
    assert list(snowflake.index) == list(duckdb.index)
    for column in ("value", "p_value"):
        scale = duckdb[column].abs().clip(lower=1.0)
        gap = (snowflake[column] - duckdb[column]).abs()
        assert ((gap <= 1e-9 * scale) | (snowflake[column].isna() & duckdb[column].isna())).all(), column
    for column in ("status", "n_current", "n_reference", "warn_threshold", "fail_threshold"):
        assert _cells(snowflake[column]) == _cells(duckdb[column]), column


def test_alerts_and_profiles_are_written_and_alerts_sent(engines):
    alerts, duckdb_alerts = engines.snowflake_table("driftline_alerts"), engines.duckdb_table("driftline_alerts")
    assert sorted(zip(alerts.fingerprint, alerts.notify_status)) == sorted(zip(duckdb_alerts.fingerprint, duckdb_alerts.notify_status))
    assert engines.sent["snowflake"] == engines.sent["duckdb"] > 0  # through the outbox, as on DuckDB
    assert len(engines.snowflake_table("driftline_profiles")) == len(engines.duckdb_table("driftline_profiles")) > 0
    assert engines.snowflake_table("driftline_leases").empty  # released when the backfill ended


def test_views_read(engines):
    results = engines.snowflake_table("driftline_results")
    history = engines.snowflake.table("driftline_check_history", database=RESULTS_SCHEMA).execute()
    assert len(history) == len(results)
    latest = engines.snowflake.table("driftline_latest", database=RESULTS_SCHEMA).execute()
    assert len(latest) == len(results[results.window_start == pd.Timestamp(WINDOWS[-1])])
    engines.snowflake.table("driftline_open_alerts", database=RESULTS_SCHEMA).execute()


def test_rerunning_a_window_replaces_its_rows(engines):
    before = engines.snowflake_table("driftline_results")
    again = engines.backfill(DRIFTED, DRIFTED + DAY)
    assert again.returncode == engines.duckdb_exit, again.stderr
    after = engines.snowflake_table("driftline_results")
    assert len(after) == len(before)
    assert _keyed(after)[["value", "status"]].equals(_keyed(before)[["value", "status"]])
    runs = engines.snowflake_table("driftline_runs")
    assert len(runs[runs.window_start == pd.Timestamp(DRIFTED)]) == 1
    assert set(after.run_id) == set(runs.run_id)


def test_url_parameters_reach_the_connector(engines, tmp_path):
    query = {key: values[-1] for key, values in parse_qs(urlparse(engines.url).query).items()}
    arguments = snowflake_engine.connection_arguments(engines.url + "&warehouse=WH&role=ANALYST", tmp_path)
    assert (arguments["host"], arguments["port"], arguments["protocol"]) == (query["host"], int(query["port"]), query["protocol"])
    assert (arguments["warehouse"], arguments["role"]) == ("WH", "ANALYST")
    with pytest.raises(WarehouseError, match="private_key_file .* does not exist"):
        snowflake_engine.connection_arguments(engines.url + "&private_key_file=missing.p8&private_key_file_pwd=TOPSECRET", tmp_path)


def test_a_connection_error_is_one_line_without_the_password(engines, tmp_path):
    """A port nothing answers on (the emulator accepts any password, so a wrong one passes)."""
    port = parse_qs(urlparse(engines.url).query)["port"][-1]
    wrong = engines.url.replace(f"port={port}", "port=9").replace("fake:snow@", "fake:SECRETPW@")
    with pytest.raises(WarehouseError) as raised:
        connect.connect(wrong, tmp_path)
    assert "SECRETPW" not in str(raised.value) and "\n" not in str(raised.value)


def test_key_pair_authentication_reads_the_key_with_its_passphrase(engines, tmp_path):
    """The connector decrypts the key before it logs in (the emulator then takes any login): the
    right passphrase connects, a wrong one is one line naming neither passphrase nor key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = serialization.BestAvailableEncryption(b"RIGHTPHRASE")
    (tmp_path / "rsa_key.p8").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encrypted))
    without_password = engines.url.replace("fake:snow@", "fake@") + "&private_key_file=rsa_key.p8"

    con = connect.connect(without_password + "&private_key_file_pwd=RIGHTPHRASE", tmp_path)
    assert con.raw_sql("SELECT 1").fetchall() == [(1,)]
    with pytest.raises(WarehouseError) as raised:
        connect.connect(without_password + "&private_key_file_pwd=WRONGPHRASE", tmp_path)
    assert "WRONGPHRASE" not in str(raised.value) and "decrypt" in str(raised.value)


def test_the_password_comes_from_the_environment(engines, tmp_path):
    """``${VAR}`` in the project file's connection, as the README shows it."""
    project = {"name": "from_env", "connection": engines.url.replace("fake:snow@", "fake:${DRIFTLINE_TEST_SNOWFLAKE_PASSWORD}@")}
    (tmp_path / "driftline_project.yml").write_text(yaml.safe_dump(project), encoding="utf-8")
    (tmp_path / "monitors").mkdir()
    (tmp_path / "monitors" / "main.yml").write_text(monitor_yaml(), encoding="utf-8")
    command = [sys.executable, "-m", "driftline.cli", "validate", "--project", str(tmp_path)]
    unset = subprocess.run(command, capture_output=True, text=True, timeout=120,
                           env={k: v for k, v in os.environ.items() if k != "DRIFTLINE_TEST_SNOWFLAKE_PASSWORD"})
    assert unset.returncode == 3 and "DRIFTLINE_TEST_SNOWFLAKE_PASSWORD" in unset.stderr
    given = subprocess.run(command, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "DRIFTLINE_TEST_SNOWFLAKE_PASSWORD": "snow"})
    assert given.returncode == 0, given.stderr


# -- helpers ---------------------------------------------------------------------------------------


def _without_proxies() -> dict[str, str]:
    """slack-sdk would route through a proxy; the fake Slack is on loopback."""
    return {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.fillna({"segment_key": "", "segment_value": "", "column_name": ""})
    frame["window_start"] = pd.to_datetime(frame.window_start)
    return frame.set_index(RESULT_KEY).sort_index()


def _cells(column: pd.Series) -> list:
    return [None if pd.isna(value) else value for value in column]
