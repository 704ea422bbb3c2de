"""``driftline report`` only reads (issue 14): it runs without the Slack secrets the project's
``notify`` section names, and against a warehouse it may not write to.

The warehouse is made read-only twice over: ``chmod a-w`` (which does not stop root), and a
read-only DuckDB connection this test process holds while the report runs, which makes DuckDB
refuse any other process that opens the file for writing, whoever runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from drift_model import small_monitor

from driftline import cli
from driftline.result_schema import RESULTS, TABLES

SECRET_SETTINGS = {"notify": {"slack": {"token": "${SLACK_BOT_TOKEN}", "channel": "#ml"}}}


@pytest.fixture
def events() -> pa.Table:
    rng = np.random.default_rng(3)
    ts = [datetime(2026, 1, 1) + timedelta(hours=i) for i in range(10 * 24)]
    return pa.table({"ts": pa.array(ts, pa.timestamp("us")), "x": rng.normal(size=len(ts)), "cat": rng.choice(["a", "b"], len(ts))})


@pytest.fixture
def project(make_project, events):
    return make_project(monitors={"shifted": small_monitor("shifted", "{method: psi}")}, tables={"events": events}, settings=SECRET_SETTINGS)


def evaluate(project, monkeypatch) -> None:
    """One run, with the token set as a run needs it."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-used")
    assert cli.main(["run", "--project", str(project.root), "--at", "2026-01-09T03:00", "--no-notify"]) in (0, 1, 2)
    monkeypatch.delenv("SLACK_BOT_TOKEN")


@contextlib.contextmanager
def read_only(warehouse: Path) -> Iterator[None]:
    mode = warehouse.stat().st_mode
    warehouse.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        with duckdb.connect(str(warehouse), read_only=True):
            yield
    finally:
        warehouse.chmod(mode)


def report(project, out: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL", "DRIFTLINE_CONNECTION")}
    command = [sys.executable, "-m", "driftline.cli", "report", "--project", str(project.root), "--out", str(out)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def fingerprint(warehouse: Path) -> tuple[str, list[str]]:
    """The file's bytes, and its tables and views."""
    digest = hashlib.sha256(warehouse.read_bytes()).hexdigest()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return digest, sorted(row[0] for row in con.sql("select table_name from information_schema.tables").fetchall())


def test_a_report_of_results_without_secrets_nor_write_access(project, monkeypatch, tmp_path):
    evaluate(project, monkeypatch)
    before = fingerprint(project.warehouse)
    assert "driftline_results" in before[1]
    out = tmp_path / "site" / "report.html"

    with read_only(project.warehouse):
        ran = report(project, out)

    assert ran.returncode == 0, ran.stderr  # before: SLACK_BOT_TOKEN is not set, exit 3
    assert ran.stdout == f"wrote {out}\n" and ran.stderr == ""
    assert 'id="shifted"' in out.read_text(encoding="utf-8")
    assert fingerprint(project.warehouse) == before


def test_a_report_before_any_run_creates_nothing(project, tmp_path):
    before = fingerprint(project.warehouse)
    assert before[1] == ["events"]
    out = tmp_path / "report.html"

    with read_only(project.warehouse):
        ran = report(project, out)

    assert ran.returncode == 0, ran.stderr  # before: the tables and views were created first
    assert out.read_text(encoding="utf-8").startswith("<!")
    assert fingerprint(project.warehouse) == before


def test_result_tables_of_an_older_version_are_one_line(project, monkeypatch, capsys, tmp_path):
    """A report cannot migrate the tables (add columns) as a run does: it says so."""
    evaluate(project, monkeypatch)
    newest = TABLES[RESULTS].names[-1]
    project.execute(f"alter table {RESULTS} drop column {newest}")
    capsys.readouterr()

    assert cli.main(["report", "--project", str(project.root), "--out", str(tmp_path / "r.html")]) == 3

    assert capsys.readouterr().err == (f"{RESULTS} has no column {newest!r}: it was written by an older driftline; "
                                       "run `driftline run` once (it adds the column), then `driftline report`\n")
    assert not (tmp_path / "r.html").exists()
