"""The command line's output for people and for machines (SPEC §4): ``--json`` on run, backfill,
validate and compile (one JSON document on stdout, nothing else there), the progress lines and
summary table on stderr off a terminal, ``--fail-on``, ``--version``, and a start that does not
import the engine.

As in test_cli, every invocation is a subprocess run side by side with the others, each with a
project of its own (DuckDB lets one process at a time write a file).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

import driftline
from driftline import api, cli
from drift_model import small_monitor

MONITORS = {
    "calm": small_monitor("calm", "{method: tvd, warn: 0.9, fail: 0.95}"),
    "warned": small_monitor("warned", "{method: tvd, warn: {above: 0.0}, fail: 0.95}"),
    "failed": small_monitor("failed", "{method: psi}"),
    "broken": small_monitor("broken", "{method: psi}", where="cast(cat as integer) > 0"),
}
BROKEN_FILES = {"calm": MONITORS["calm"].replace("table: events", "table: event")}
BACKFILL = ["backfill", "--monitor", "calm", "--monitor", "warned", "--monitor", "failed",
            "--start", "2026-01-07", "--end", "2026-01-10", "--at", "2026-01-12"]


def one_window(monitor: str, fail_on: str) -> list[str]:
    return ["backfill", "--monitor", monitor, "--start", "2026-01-08", "--end", "2026-01-09", "--at", "2026-01-12", "--fail-on", fail_on]


INVOCATIONS = {
    "version": (["--version"], None),
    "backfill": (BACKFILL, MONITORS),
    "backfill_json": ([*BACKFILL, "--json"], MONITORS),
    "run_json": (["run", "--monitor", "warned", "--at", "2026-01-09T03:00", "--no-notify", "--json"], MONITORS),
    "validate_json": (["validate", "--json"], {"calm": MONITORS["calm"]}),
    "validate_problems_json": (["validate", "--json"], BROKEN_FILES),
    "compile_json": (["compile", "--monitor", "calm", "--dialect", "postgres", "--at", "2026-01-09", "--json"], MONITORS),
    **{f"{monitor}_{fail_on}": (one_window(monitor, fail_on), MONITORS)
       for monitor in ("warned", "failed", "broken") for fail_on in cli.FAIL_ON},
}


@pytest.fixture(scope="module")
def events() -> pa.Table:
    rng = np.random.default_rng(11)
    ts = [datetime(2026, 1, 1) + timedelta(minutes=20 * i) for i in range(10 * 72)]
    x = [float(rng.normal(1.0 if t >= datetime(2026, 1, 8) else 0.0)) for t in ts]
    return pa.table({"ts": pa.array(ts, pa.timestamp("us")), "x": x, "cat": [str(c) for c in rng.choice(["a", "b"], len(ts))]})


@pytest.fixture(scope="module")
def ran(make_module_project, events) -> dict[str, subprocess.CompletedProcess]:
    env = {k: v for k, v in os.environ.items() if k not in ("DRIFTLINE_CONNECTION", "NO_COLOR", "FORCE_COLOR")}
    commands = {}
    for name, (args, monitors) in INVOCATIONS.items():
        if monitors is not None:
            project = make_module_project(monitors=monitors, tables={"events": events})
            args = [*args, "--project", str(project.root)]
        commands[name] = [sys.executable, "-m", "driftline.cli", *args]

    def run(name: str):
        return name, subprocess.run(commands[name], env=env, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(pool.map(run, commands))


def document(result: subprocess.CompletedProcess) -> dict:
    """stdout as one JSON document: json.loads fails if anything else is printed there."""
    return json.loads(result.stdout)


# -- --json ---------------------------------------------------------------------------------------


def test_backfill_json_is_one_document_with_every_window(ran):
    result = ran["backfill_json"]
    doc = document(result)
    assert set(doc) == {"exit_code", "windows", "skipped"}
    assert doc["exit_code"] == result.returncode == 2
    assert len(doc["windows"]) == 9  # 3 monitors x 3 daily windows
    for window in doc["windows"]:
        assert set(window) == {"monitor", "window_start", "window_end", "status", "error", "results"}
        assert datetime.fromisoformat(window["window_end"]) - datetime.fromisoformat(window["window_start"]) == timedelta(days=1)
        assert window["error"] is None
        assert window["results"] and {"check_name", "column_name", "value", "status"} <= set(window["results"][0])
    assert {w["monitor"]: w["status"] for w in doc["windows"] if w["window_start"].startswith("2026-01-08")} == {
        "calm": "ok", "warned": "warn", "failed": "fail"}
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout  # strict JSON
    assert result.stdout.count("\n") == 1  # one line: Airflow pushes the last line to XCom
    assert "FAIL" in result.stderr  # the lines for people went to stderr


def test_run_json(ran):
    result = ran["run_json"]
    doc = document(result)
    assert doc["exit_code"] == result.returncode == 1
    assert [(w["monitor"], w["window_start"], w["status"]) for w in doc["windows"]] == [("warned", "2026-01-08T00:00:00Z", "warn")]


def test_validate_json(ran):
    result = ran["validate_json"]
    assert result.returncode == 0
    assert document(result) == {"valid": True, "monitors": ["calm"]}
    assert "ok: 1 monitor valid" in result.stderr


def test_validate_json_with_problems(ran):
    result = ran["validate_problems_json"]
    doc = document(result)
    assert result.returncode == doc["exit_code"] == 3
    assert doc["valid"] is False
    [error] = doc["errors"]
    assert set(error) == {"path", "line", "column", "message"}
    assert error["path"].endswith("calm.yml") and error["line"] > 0 and error["column"] > 0
    assert "event" in error["message"]
    assert f"{error['path']}:{error['line']}:{error['column']}: {error['message']}" in result.stderr


def test_compile_json(ran):
    result = ran["compile_json"]
    assert result.returncode == 0
    [monitor] = document(result)["monitors"]
    assert monitor["monitor"] == "calm" and monitor["dialect"] == "postgres"
    assert monitor["queries"] and all({"title", "sql"} <= set(q) for q in monitor["queries"])
    assert any("histogram counts" in q["title"] for q in monitor["queries"])
    assert all(q["sql"].lstrip().upper().startswith(("SELECT", "WITH")) for q in monitor["queries"])


def test_json_values_nan_and_times():
    value = {"value": float("nan"), "upper": math.inf, "at": datetime(2026, 1, 8), "n": np.int64(3), "x": np.float64(0.5)}
    assert cli._jsonable(value) == {"value": None, "upper": None, "at": "2026-01-08T00:00:00Z", "n": 3, "x": 0.5}


# -- progress and the summary table ---------------------------------------------------------------

PROGRESS = re.compile(r"^(\w+) \[(\S+) → (\S+)\) (ok|warn|fail|insufficient_data|error)  .*  \(\d+\.\d s\)$")


def test_off_a_terminal_progress_is_one_line_per_window(ran):
    result = ran["backfill"]
    lines = [m.groups() for m in map(PROGRESS.match, result.stderr.splitlines()) if m]
    evaluated = document(ran["backfill_json"])["windows"]  # the same backfill in a project of its own
    assert len(lines) == len(evaluated) == 9
    assert sorted((m, s, status) for m, s, _, status in lines) == sorted(
        (w["monitor"], w["window_start"][:10], w["status"]) for w in evaluated)


def test_the_summary_table_counts_the_windows(ran):
    result = ran["backfill"]
    rows = {}
    for line in result.stderr.splitlines():
        cells = line.split()
        if len(cells) == 7 and cells[0] in MONITORS:
            rows[cells[0]] = [int(c) for c in cells[1:]]
    lines = [m.groups() for m in map(PROGRESS.match, result.stderr.splitlines()) if m]
    for monitor, counts in rows.items():
        statuses = Counter(status for m, _, _, status in lines if m == monitor)
        expected = [sum(statuses.values()), *(statuses[s] for s in ("ok", "warn", "fail", "insufficient_data", "error"))]
        assert counts == expected, monitor
    assert set(rows) == {"calm", "warned", "failed"}
    assert "\x1b[" not in result.stderr  # no colour off a terminal


def test_progress_is_told_every_window(make_project, events):
    """The API calls ``progress`` with each monitor's planned windows, then each outcome."""
    project = make_project(monitors={"calm": MONITORS["calm"]}, tables={"events": events})
    events_seen = []
    summary = api.backfill("2026-01-07", "2026-01-10", project.root, at="2026-01-12", progress=events_seen.append)
    assert isinstance(events_seen[0], api.Planned) and len(events_seen[0].windows) == 3
    assert events_seen[1:] == summary.outcomes


# -- exit codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("monitor", "fail_on", "code"), [
    ("warned", "warn", 1), ("warned", "fail", 0), ("warned", "never", 0),
    ("failed", "warn", 2), ("failed", "fail", 2), ("failed", "never", 0),
    ("broken", "warn", 3), ("broken", "fail", 3), ("broken", "never", 3),  # could not run: 3 whatever --fail-on says
])
def test_fail_on(ran, monitor, fail_on, code):
    assert ran[f"{monitor}_{fail_on}"].returncode == code


def test_exit_codes_agree_with_the_api():
    assert (cli.EXIT_OK, cli.EXIT_WARN, cli.EXIT_FAIL, cli.EXIT_ERROR) == (api.EXIT_OK, api.EXIT_WARN, api.EXIT_FAIL, api.EXIT_ERROR)


# -- start ----------------------------------------------------------------------------------------


def test_version(ran):
    result = ran["version"]
    assert result.returncode == 0
    assert result.stdout == f"driftline {driftline.__version__}\n"


def test_importing_the_cli_leaves_the_engine_unimported():
    code = "import sys, driftline.cli; print([m for m in ('ibis', 'pandas', 'driftline.api', 'rich') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
