"""``driftline compile --dialect D``: the SQL of a monitor that uses every drift feature, for every
dialect driftline targets, parses back with sqlglot in that dialect."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
import sqlglot

from driftline import api, dialects

DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "snowflake": "snowflake", "bigquery": "bigquery",
            "trino": "trino", "databricks": "databricks", "clickhouse": "clickhouse", "pyspark": "spark"}

MONITOR = """
name: everything
source:
  table: events
  timestamp: ts
  where: "is_live(status) and score between 0 and 1"
schedule: {every: 1d}
reference: {start: 2026-01-01, end: 2026-01-08}
segments: [region, plan]
features:
  numeric: [score, visits]
  categorical: [industry, plan_code]
checks:
  - drift: {method: psi}
  - drift: {method: js, binning: uniform, bins: 7}
  - drift: {method: chi2, columns: [industry], max_categories: 3, p_value: 0.05, warn: 0.1}
  - drift: {method: ks, columns: [score, visits], warn: 0.1}
  - drift: {method: wasserstein, columns: [score], fail: 0.5}
"""

MACROS = """
macros:
  is_live:
    args: [s]
    sql: "{s} in ('active', 'trial')"
"""


@pytest.fixture(scope="module")
def project(make_module_project):
    rng = np.random.default_rng(2)
    n = 9 * 48
    table = pa.table({
        "ts": pa.array([datetime(2026, 1, 1) + timedelta(minutes=30 * i) for i in range(n)], pa.timestamp("us")),
        "status": rng.choice(["active", "trial", "churned"], n).tolist(),
        "score": rng.uniform(0, 1, n), "visits": rng.poisson(3, n),
        "industry": rng.choice(["saas", "retail", "bank", "gov"], n).tolist(),
        "plan_code": rng.integers(1, 4, n), "region": rng.choice(["eu", "us", None], n).tolist(),
        "plan": rng.choice(["free", "pro"], n).tolist(),
    })
    return make_module_project(monitors={"everything": MONITOR}, macros={"kpi": MACROS}, tables={"events": table})


def statements(sql: str, dialect: str) -> list:
    parsed = [s for s in sqlglot.parse(sql, read=DIALECTS[dialect]) if s is not None]
    assert parsed and all(isinstance(s, sqlglot.exp.Query) for s in parsed)
    return parsed


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sql_parses_back_in_its_dialect(project, dialect):
    sql = api.compile(project.root, dialect=dialect, at="2026-01-09T01:00")
    assert sql.startswith(f"-- monitor everything: window [2026-01-08T00:00:00, 2026-01-09T00:00:00), reference [2026-01-01T00:00:00, 2026-01-08T00:00:00), dialect {dialect}")
    titles = re.findall(r"^-- \[\d/\d\] (reference profile|histogram counts|exact distances)", sql, flags=re.M)
    # no profile is stored yet: (DuckDB, which samples its edges: the reference's size), edges,
    # categories, one counting query, and one exact query per (check, column)
    profile = 3 if dialect == "duckdb" else 2
    assert titles == ["reference profile"] * profile + ["histogram counts"] + ["exact distances"] * 3
    assert len(statements(sql, dialect)) == profile + 4
    lowered = sql.lower()
    assert "events" in lowered and "'active'" in lowered and "'trial'" in lowered  # the macro, expanded
    assert "region" in lowered and "plan_code" in lowered


def test_window_filters_are_plain_ranges_on_the_timestamp(project):
    sql = api.compile(project.root, dialect="postgres", at="2026-01-09T01:00")
    counting = sql.split("] histogram counts")[1].split("] exact distances")[0]
    assert re.search(r'"ts" >= .*2026-01-08', counting) and re.search(r'"ts" < .*2026-01-09', counting)
    assert not re.search(r"(date_trunc|cast)\([^)]*\"ts\"", counting, flags=re.I)


def test_duckdb_counts_bins_with_its_histogram_aggregate(project):
    """One HISTOGRAM per binned column on DuckDB; one conditional sum per bin elsewhere."""
    for dialect, native in (("duckdb", True), ("postgres", False)):
        sql = api.compile(project.root, dialect=dialect, at="2026-01-09T01:00")
        counting = sql.split("] histogram counts")[1].split("] exact distances")[0].upper()
        assert ("HISTOGRAM(" in counting) == native
        assert ("LIST_POSITION(" in counting) == native  # categorical bins
        assert ("SUM(CAST(" in counting) != native


def test_after_a_run_the_stored_profile_is_used(project):
    summary = api.run(project.root, at="2026-01-09T01:00", notify=False)
    assert [o.status for o in summary.outcomes] == ["success"], [o.error for o in summary.outcomes]
    edges = project.query("select lower from driftline_histograms where column_name = 'score' and segment_key is null "
                          "and lower is not null order by bin_index").lower.tolist()
    for dialect in ("duckdb", "snowflake"):
        sql = api.compile(project.root, dialect=dialect, at="2026-01-09T01:00")
        assert "placeholders" not in sql and "] reference profile" not in sql
        assert len(statements(sql, dialect)) == 4  # one counting query over the current window + 3 exact
        assert f"{edges[0]}"[:6] in sql  # real edges, not placeholders


def test_unknown_dialect(project):
    with pytest.raises(Exception) as caught:
        api.compile(project.root, dialect="oracle")
    assert "unknown dialect 'oracle'" in str(caught.value)


RECORDED = MONITOR.replace("name: everything", "name: recorded") + """
  - quality: {metric: null_rate, columns: [visits], warn: {rise: 0.1}}
  - quality: {metric: new_category_rate, columns: [status], warn: 0.2}
  - quality: {metric: schema_change}
"""


def _compiled_statements(sql: str) -> list[str]:
    """The statements of compile's output, comments dropped, as a run would send them."""
    parts = sql.split("\n\n-- [")[1:]
    return ["\n".join(line for line in part.splitlines()[1:] if not line.startswith("-- ")).rstrip(";") for part in parts]


def test_a_run_executes_exactly_the_queries_compile_prints(project, monkeypatch):
    """In order and to the letter; on a first run, before the profile exists, the edges' sample
    rate, the counting query's edges and new_category_rate's reference categories in the checks
    query are placeholders."""
    from driftline.measure import WindowMeasurer

    project.write_monitor("recorded", RECORDED)
    executed: list[str] = []
    execute = WindowMeasurer.execute

    def recording(measurer, expr):
        executed.append(dialects.to_sql(expr, "duckdb").strip())
        return execute(measurer, expr)

    monkeypatch.setattr(WindowMeasurer, "execute", recording)
    for at, first in (("2026-01-09T01:00", True), ("2026-01-10T01:00", False)):
        compiled = _compiled_statements(api.compile(project.root, monitor="recorded", dialect="duckdb", at=at))
        executed.clear()
        summary = api.run(project.root, at=at, monitors=["recorded"], notify=False)
        assert [o.status for o in summary.outcomes] == ["success"], [o.error for o in summary.outcomes]
        assert len(executed) == len(compiled) == summary.outcomes[0].queries
        differing = [i for i, (ran, printed) in enumerate(zip(executed, compiled)) if ran != printed]
        # first run: the edges' sample rate (compile shows one for 1,000,000 rows), the counts'
        # placeholder edges, the checks' placeholder categories
        assert differing == ([1, 3, len(compiled) - 1] if first else [])
