"""Guards against monitors that would flood the result tables or the warehouse, through the CLI:

- a segment column with more than ``max_segment_values`` distinct values in the reference
  window (a decimal amount, an id) is refused at ``validate``, naming the column and the count;
- a backfill of more than 1,000 windows (``every: 1m`` over a year is 525,600) needs
  ``--max-windows N``, and is refused before anything is written without it.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from driftline import api
from driftline.errors import ConfigError

DRIFTLINE = str(Path(sys.executable).with_name("driftline"))

MONITOR = """
name: orders
source:
  sql: "select ts, x, cast(x / 7 as decimal(10, 2)) as amount, case when x < 1500 then 'a' else 'b' end as half from t"
  timestamp: ts
schedule: {every: 1d}
reference: {start: 2026-01-01, end: 2026-01-02}
segments: [half, amount]
features: {numeric: [x]}
checks:
  - quality: {metric: null_rate, columns: [x]}
"""


@pytest.fixture
def orders() -> pd.DataFrame:
    """1,440 rows a day on 2026-01-01 and 2026-01-02, a minute apart."""
    start = datetime(2026, 1, 1)
    return pd.DataFrame({"ts": [start + timedelta(minutes=i) for i in range(2880)], "x": [float(i) for i in range(2880)]})


def driftline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DRIFTLINE, *args], capture_output=True, text=True, timeout=300)


def tables(project) -> list[str]:
    return sorted(project.query("select table_name from information_schema.tables").table_name)


def test_a_decimal_segment_column_with_too_many_values_fails_validate(make_project, orders):
    project = make_project(monitors={"orders": MONITOR}, tables={"t": orders})
    result = driftline("validate", "--project", str(project.root))
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    path = project.root / "monitors" / "orders.yml"
    number = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("segments:"))
    assert line.startswith(f"{path}:{number}:")
    assert "segment column 'amount' has 1,440 distinct values in the reference window" in line
    assert "more than max_segment_values (100)" in line
    assert "run" not in " ".join(tables(project))  # nothing written


def test_max_segment_values_admits_more(make_project, orders):
    project = make_project(monitors={"orders": MONITOR.replace("segments:", "max_segment_values: 1500\nsegments:")}, tables={"t": orders})
    result = driftline("validate", "--project", str(project.root))
    assert result.returncode == 0, result.stderr


def test_a_few_segment_values_pass(make_project, orders):
    project = make_project(monitors={"orders": MONITOR.replace("segments: [half, amount]", "segments: [half]")}, tables={"t": orders})
    result = driftline("validate", "--project", str(project.root))
    assert result.returncode == 0, result.stderr


MINUTELY = MONITOR.replace("every: 1d", "every: 1m").replace("segments: [half, amount]", "segments: [half]")


def test_a_backfill_of_more_than_1000_windows_needs_max_windows(make_project, orders):
    project = make_project(monitors={"orders": MINUTELY}, tables={"t": orders})
    result = driftline("backfill", "--project", str(project.root), "--start", "2026-01-01", "--end", "2026-01-02", "--at", "2026-01-03")
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("--max-windows: this backfill covers 1,440 windows")
    assert "more than 1,000; pass --max-windows 1440" in line
    assert tables(project) == ["t"]  # nothing written, not even the result tables


def test_max_windows_is_the_limit_either_way(make_project, orders):
    project = make_project(monitors={"orders": MINUTELY}, tables={"t": orders})
    window = ["--project", str(project.root), "--start", "2026-01-01T00:00", "--end", "2026-01-01T00:04", "--at", "2026-01-03", "--no-notify"]
    refused = driftline("backfill", *window, "--max-windows", "3")
    assert refused.returncode == 3 and "covers 4 windows" in refused.stderr and "more than 3" in refused.stderr
    assert tables(project) == ["t"]
    accepted = driftline("backfill", *window, "--max-windows", "4")
    assert accepted.returncode in (0, 1, 2), accepted.stderr
    assert project.query("select count(*) as n from driftline_runs").n.tolist() == [4]


def test_the_python_api_takes_max_windows(make_project, orders):
    project = make_project(monitors={"orders": MINUTELY}, tables={"t": orders})
    with pytest.raises(ConfigError, match="covers 1,440 windows"):
        api.backfill("2026-01-01", "2026-01-02", project.root, at="2026-01-03")
    with pytest.raises(ConfigError, match="covers 2 windows"):
        api.backfill("2026-01-01T00:00", "2026-01-01T00:02", project.root, at="2026-01-03", max_windows=1)
    summary = api.backfill("2026-01-01T00:00", "2026-01-01T00:02", project.root, at="2026-01-03", max_windows=2)
    assert len(summary.outcomes) == 2
