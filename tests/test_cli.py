"""The command line as a user runs it: a subprocess, its exit code and what it prints (SPEC §4).

Exit codes: 0 every check ok, 1 some warn, 2 some fail, 3 driftline could not run (and for
``validate``: 0 valid, 3 invalid). Errors are one line per problem and never a traceback unless
``--debug``.

Every invocation spends most of its time starting Python and importing, so the ``ran`` fixture
runs them side by side, one per CPU, and the tests then read their results. An invocation that
opens a warehouse gets a project of its own: DuckDB lets one process at a time write a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from driftline import api, cli
from drift_model import small_monitor




MONITORS = {
    "calm": small_monitor("calm", "{method: tvd, warn: 0.9, fail: 0.95}"),
    "warned": small_monitor("warned", "{method: tvd, warn: {above: 0.0}, fail: 0.95}"),
    "failed": small_monitor("failed", "{method: psi}"),
    "broken": small_monitor("broken", "{method: psi}", where="cast(cat as integer) > 0"),
}
BROKEN_FILES = {  # two problems found against the warehouse, one per file
    "calm": MONITORS["calm"].replace("table: events", "table: event"),
    "other": MONITORS["failed"].replace("numeric: [x]", "numeric: [xx]"),
}
UNREACHABLE = "duckdb://missing_dir/warehouse.duckdb"
# Slack that refuses every connection: an attempt to send shows as "not delivered yet".
SLACK_DOWN = {"notify": {"slack": {"token": "xoxb-test", "channel": "#ml", "base_url": "http://127.0.0.1:9/api"}}}
SECRET_URL = "postgres://u:USERPW@127.0.0.1:1/db?sslmode=disable&password=QUERYPW&Access_Key=KEYVALUE"


@dataclass
class Invocation:
    args: list[str]
    project: dict[str, str] | None = None  # monitors of a project made for this invocation
    settings: dict = field(default_factory=dict)
    in_project: bool = False  # run in the project directory instead of passing --project
    env: dict[str, str] = field(default_factory=dict)
    reader_gone: bool = False  # stdout is a pipe whose reader has gone, as in `driftline run | head -1`


INVOCATIONS = {
    "schema": Invocation(["schema"]),
    "validate_problems": Invocation(["validate"], BROKEN_FILES, in_project=True),
    "validate_debug": Invocation(["--debug", "validate"], BROKEN_FILES),
    **{f"run_{name}": Invocation(["run", "--monitor", name, "--at", "2026-01-09T03:00", "--no-notify"], MONITORS) for name in MONITORS},
    "backfill": Invocation(["backfill", "--monitor", "calm", "--monitor", "failed", "--start", "2026-01-07", "--end", "2026-01-10",
                            "--at", "2026-01-12"], MONITORS),
    "compile": Invocation(["compile", "--monitor", "calm", "--dialect", "postgres", "--at", "2026-01-09"], MONITORS),
    "connection_env": Invocation(["validate"], {"calm": MONITORS["calm"]}, {"connection": UNREACHABLE},
                                 env={"DRIFTLINE_CONNECTION": "<warehouse>"}),
    "connection_flag": Invocation(["validate", "--connection", "<warehouse>"], {"calm": MONITORS["calm"]}, {"connection": UNREACHABLE},
                                  env={"DRIFTLINE_CONNECTION": "duckdb://missing_dir/other.duckdb"}),
    "help": Invocation(["--help"]),
    "usage_unknown_option": Invocation(["run", "--bogus"]),
    "usage_missing_start": Invocation(["backfill", "--end", "2026-01-10"]),
    "backfill_reversed": Invocation(["backfill", "--start", "2026-01-10", "--end", "2026-01-07", "--at", "2026-01-12"], MONITORS),
    "backfill_no_whole_window": Invocation(["backfill", "--start", "2026-01-08T05:00", "--end", "2026-01-08T20:00", "--at", "2026-01-12"],
                                           MONITORS),
    "backfill_no_notify": Invocation(["backfill", "--monitor", "failed", "--start", "2026-01-08", "--end", "2026-01-09", "--at", "2026-01-12",
                                      "--no-notify"], MONITORS, SLACK_DOWN),
    "backfill_notify": Invocation(["backfill", "--monitor", "failed", "--start", "2026-01-08", "--end", "2026-01-09", "--at", "2026-01-12",
                                   "--notify"], MONITORS, SLACK_DOWN),
    "report_in_new_directory": Invocation(["report", "--out", "site/monitoring/report.html"], {"calm": MONITORS["calm"]}, in_project=True),
    "init_on_a_file": Invocation(["init", "driftline_project.yml"], {"calm": MONITORS["calm"]}, in_project=True),
    "secret_in_url": Invocation(["validate", "--connection", SECRET_URL], {"calm": MONITORS["calm"]}),
    "run_reader_gone": Invocation(["run", "--monitor", "failed", "--at", "2026-01-09T03:00", "--no-notify"], MONITORS, reader_gone=True),
    "schema_reader_gone": Invocation(["schema"], reader_gone=True),  # more than a pipe buffer: gone while printing
}


@dataclass
class Ran:
    result: subprocess.CompletedProcess
    root: Path | None

    @property
    def code(self) -> int:
        return self.result.returncode

    @property
    def out(self) -> str:
        return self.result.stdout

    @property
    def err(self) -> str:
        return self.result.stderr


@pytest.fixture(scope="module")
def events() -> pa.Table:
    rng = np.random.default_rng(11)
    ts = [datetime(2026, 1, 1) + timedelta(minutes=20 * i) for i in range(10 * 72)]
    x = [float(rng.normal(1.0 if t >= datetime(2026, 1, 8) else 0.0)) for t in ts]
    return pa.table({"ts": pa.array(ts, pa.timestamp("us")), "x": x, "cat": [str(c) for c in rng.choice(["a", "b"], len(ts))]})


@pytest.fixture(scope="module")
def ran(make_module_project, events) -> dict[str, Ran]:
    base_env = {k: v for k, v in os.environ.items() if k != "DRIFTLINE_CONNECTION"}
    base_env.update({name: "" for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")})  # Slack tests use loopback
    prepared = {}
    for name, invocation in INVOCATIONS.items():
        args, cwd, root, env = list(invocation.args), None, None, dict(base_env)
        if invocation.project is not None:
            project = make_module_project(monitors=invocation.project, tables={"events": events}, settings=invocation.settings or None)
            root = project.root
            args = [a.replace("<warehouse>", project.url) for a in args]
            env.update({k: v.replace("<warehouse>", project.url) for k, v in invocation.env.items()})
            if invocation.in_project:
                cwd = root
            elif "--project" not in args:
                command = next(a for a in args if not a.startswith("--"))
                args[args.index(command) + 1:args.index(command) + 1] = ["--project", str(root)]
        prepared[name] = ([sys.executable, "-m", "driftline.cli", *args], cwd, env, root, invocation.reader_gone)

    def run(name: str) -> tuple[str, Ran]:
        command, cwd, env, root, reader_gone = prepared[name]
        if reader_gone:
            return name, Ran(_without_reader(command, cwd, env), root)
        return name, Ran(subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300), root)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(pool.map(run, prepared))


def _without_reader(command: list[str], cwd: Path | None, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``command`` with stdout a pipe whose reading end is already closed (stdout is None)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(command, cwd=cwd, env=env, stdout=write, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write)


def driftline_tables(root: Path) -> list[str]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return [row[0] for row in con.sql("select table_name from information_schema.tables where table_name like 'driftline%'").fetchall()]


def no_traceback(ran: Ran) -> None:
    assert "Traceback" not in ran.err and "Traceback" not in ran.out


def test_schema_prints_the_json_schema(ran):
    schema = ran["schema"]
    assert schema.code == 0, schema.err
    document = json.loads(schema.out)
    assert document["title"] == "driftline monitor" and "checks" in document["properties"]


def test_validate_problems_exit_3_one_line_each(ran):
    problems = ran["validate_problems"]  # run inside the project: --project defaults to "."
    assert problems.code == 3
    no_traceback(problems)
    monitors = problems.root / "monitors"
    assert problems.err.splitlines() == [
        f"{monitors / 'calm.yml'}:3:3: source.table: table 'event' not found (did you mean 'events'?)",
        f"{monitors / 'other.yml'}:8:22: column 'xx' not found in the source (did you mean 'x'?)",
    ]
    assert problems.out == ""


def test_debug_shows_the_traceback_and_keeps_the_exit_code(ran):
    debug = ran["validate_debug"]  # before: the error was raised again, and Python exits 1
    assert debug.code == 3 and debug.err.startswith("Traceback (most recent call last)")
    assert debug.err.splitlines()[-1].endswith("column 'xx' not found in the source (did you mean 'x'?)")


@pytest.mark.parametrize(("name", "code", "word"), [("calm", 0, "OK"), ("warned", 1, "WARN"), ("failed", 2, "FAIL"), ("broken", 3, "ERROR")])
def test_run_exit_codes(ran, name, code, word):
    run = ran[f"run_{name}"]
    assert run.code == code, run.out + run.err
    no_traceback(run)
    (line, *breaches) = run.out.strip().splitlines()
    assert line.startswith(f"{name} 2026-01-08 00:00 → 2026-01-09 00:00") and word in line
    if code in (1, 2):
        assert breaches and all(b.split()[0] in ("warn", "fail") for b in breaches)
    if code == 3:
        assert "query failed" in line and "\n" not in line


def test_backfill(ran):
    backfill = ran["backfill"]
    assert backfill.code == 2, backfill.err
    windows = [line for line in backfill.out.splitlines() if not line.startswith(" ")]
    assert len(windows) == 6  # 3 days × 2 monitors
    assert [w.split()[1] for w in windows if w.startswith("calm")] == ["2026-01-07", "2026-01-08", "2026-01-09"]


def test_compile(ran):
    compiled = ran["compile"]
    assert compiled.code == 0, compiled.err
    assert compiled.out.startswith("-- monitor calm: window [2026-01-08T00:00:00, 2026-01-09T00:00:00)")
    assert '"events"' in compiled.out and "SELECT" in compiled.out


def test_connection_flag_and_environment_override_the_project(ran, make_project, capsys, monkeypatch):
    monkeypatch.delenv("DRIFTLINE_CONNECTION", raising=False)
    unreachable = make_project(monitors={"calm": MONITORS["calm"]}, settings={"connection": UNREACHABLE})
    assert cli.main(["validate", "--project", str(unreachable.root)]) == 3  # in process: only the baseline
    err = capsys.readouterr().err
    assert err.startswith(f"cannot connect to {UNREACHABLE}") and err.count("\n") == 1
    assert ran["connection_env"].code == 0, ran["connection_env"].err  # DRIFTLINE_CONNECTION beats the project
    assert ran["connection_env"].out == "ok: 1 monitor valid (calm)\n"
    assert ran["connection_flag"].code == 0, ran["connection_flag"].err  # --connection beats both


def test_a_time_that_is_not_a_time(make_project, capsys):
    project = make_project(monitors=MONITORS)
    assert cli.main(["backfill", "--project", str(project.root), "--start", "last week", "--end", "2026-01-09"]) == 3
    assert capsys.readouterr().err == "--start: expected an ISO-8601 date or timestamp, got 'last week'\n"


OUT_OF_RANGE = "is outside the range driftline supports, from 1970-01-01 up to 2200-01-01; check the date"


@pytest.mark.parametrize(("args", "message"), [
    # before: a window of 1899 was evaluated and recorded, and every later run caught up from it
    (["run", "--at", "1900-01-01"], f"--at: 1900-01-01T00:00:00 {OUT_OF_RANGE}"),
    (["backfill", "--start", "1900-01-01", "--end", "1900-01-03", "--at", "2026-01-12"], f"--start: 1900-01-01T00:00:00 {OUT_OF_RANGE}"),
    # before: OverflowError, as an unexpected error
    (["run", "--at", "9999-12-31T23:59"], f"--at: 9999-12-31T23:59:00 {OUT_OF_RANGE}"),
    (["compile", "--at", "9999-12-31T23:59"], f"--at: 9999-12-31T23:59:00 {OUT_OF_RANGE}"),
    (["run", "--at", "9999-12-31T23:00-05:00"], "--at: '9999-12-31T23:00-05:00' is out of the range of dates"),  # year 10000 in UTC
    (["run", "--at", "0001-01-01T00:00+01:00"], "--at: '0001-01-01T00:00+01:00' is out of the range of dates"),
    # before: the backfill ran up to --at, as if --end had been left out
    (["backfill", "--start", "2026-01-07", "--end", "9999-12-31T23:59", "--at", "2026-01-12"], f"--end: 9999-12-31T23:59:00 {OUT_OF_RANGE}"),
])
def test_a_time_out_of_range_is_one_line_and_writes_nothing(make_project, events, capsys, args, message):
    project = make_project(monitors=MONITORS, tables={"events": events})
    command, *options = args
    assert cli.main([command, "--project", str(project.root), *options]) == 3
    assert capsys.readouterr() == ("", message + "\n")
    assert driftline_tables(project.root) == []


def test_help_exits_0(ran):
    assert ran["help"].code == 0 and ran["help"].out.startswith("usage: driftline")


@pytest.mark.parametrize(("name", "message"), [
    ("usage_unknown_option", "driftline run: error: unrecognized arguments: --bogus; see 'driftline run --help'"),
    ("usage_missing_start", "driftline backfill: error: the following arguments are required: --start; see 'driftline backfill --help'"),
])
def test_usage_errors_exit_3_not_2(ran, name, message):
    usage = ran[name]  # argparse's own 2 is SPEC §4's "some check is fail"
    assert usage.code == 3
    no_traceback(usage)
    assert usage.err.startswith("usage: ") and usage.err.splitlines()[-1] == message


def test_backfill_end_before_start_is_an_error_and_writes_nothing(ran):
    reversed_ = ran["backfill_reversed"]
    assert reversed_.code == 3
    assert reversed_.err == "--end: 2026-01-07 is not after --start 2026-01-10: backfill evaluates the whole windows in [start, end)\n"
    assert reversed_.out == "" and driftline_tables(reversed_.root) == []


def test_backfill_of_a_range_without_a_whole_window_says_so(ran):
    empty = ran["backfill_no_whole_window"]  # daily windows, 05:00 → 20:00 holds none
    assert empty.code == 0, empty.err
    assert empty.out == "nothing to evaluate: no whole window that is due lies between --start 2026-01-08T05:00 and --end 2026-01-08T20:00\n"


def test_backfill_no_notify_sends_nothing(ran):
    silent, notifying = ran["backfill_no_notify"], ran["backfill_notify"]
    assert silent.code == 2 and "alert" not in silent.err  # stderr has the progress lines and summary table only
    with duckdb.connect(str(silent.root / "warehouse.duckdb"), read_only=True) as con:
        assert {row[0] for row in con.sql("select notify_status from driftline_alerts").fetchall()} == {"suppressed"}
    assert notifying.code == 2 and "alert for failed" in notifying.err  # the same backfill with --notify tries Slack


def test_report_creates_the_directories_of_out(ran):
    report = ran["report_in_new_directory"]
    written = report.root / "site" / "monitoring" / "report.html"
    assert report.code == 0, report.err
    assert report.out == f"wrote {written}\n" and written.read_text(encoding="utf-8").startswith("<!")


def test_init_on_a_file_is_one_line(ran):
    init = ran["init_on_a_file"]
    assert init.code == 3
    no_traceback(init)
    assert init.err == "driftline_project.yml: is a file, not a directory; pick a new or existing directory for the project\n"


def test_secrets_in_a_connection_url_are_masked(ran):
    failed = ran["secret_in_url"]
    assert failed.code == 3 and failed.err.count("\n") == 1
    for secret in ("USERPW", "QUERYPW", "KEYVALUE"):
        assert secret not in failed.err
    assert "postgres://u:***@127.0.0.1:1/db?sslmode=disable&password=***&Access_Key=***" in failed.err


@pytest.mark.parametrize(("name", "code"), [("run_reader_gone", 2), ("schema_reader_gone", 0)])
def test_a_reader_that_goes_keeps_the_exit_code(ran, name, code):
    gone = ran[name]  # driftline run | head -1
    assert gone.code == code and "Error" not in gone.err  # stderr: the progress and summary table only


def test_an_unexpected_error_is_one_line_without_debug(make_project, capsys, monkeypatch):
    """A bug (here: validate raising ZeroDivisionError) still ends in one line and exit 3; the
    traceback is for --debug."""
    project = make_project()

    def broken(*args, **kwargs):
        raise ZeroDivisionError("integer division or modulo by zero")

    monkeypatch.setattr(api, "validate", broken)
    assert cli.main(["validate", "--project", str(project.root)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["driftline validate: unexpected error: ZeroDivisionError: integer division or modulo by zero (rerun with --debug for the traceback)"]
    assert cli.main(["validate", "--project", str(project.root), "--debug"]) == 3  # the traceback, and the same exit code
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "Traceback (most recent call last):"
    assert err[-1] == "driftline validate: unexpected error: ZeroDivisionError: integer division or modulo by zero"


def test_an_anomaly_breach_shows_its_band_not_a_missing_threshold():
    row = {"status": "fail", "check_name": "rows_anomaly", "column_name": None, "segment_key": None, "segment_value": None,
           "value": 350.0, "warn_threshold": None, "fail_threshold": None,
           "details": json.dumps({"band": {"lower": 400.0, "upper": 400.0}, "anomalous": True})}
    assert cli._breaches([row]) == ["fail rows_anomaly = 350 (threshold anomaly band [400, 400])"]


def test_a_breach_line_keeps_a_value_from_the_data_on_its_line():
    row = {"status": "warn", "check_name": "drift_psi", "column_name": "x", "segment_key": "region",
           "segment_value": "EU\nfail faked = 9 (threshold 1)", "value": 0.2, "warn_threshold": "0.1", "fail_threshold": "0.25",
           "details": "{}"}
    assert cli._breaches([row]) == ["warn drift_psi x [region=EU\\nfail faked = 9 (threshold 1)] = 0.2 (threshold 0.1)"]
