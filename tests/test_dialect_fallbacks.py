"""The portable fallbacks ``dialects`` picks for dialects whose ibis compiler lacks an operation,
executed on DuckDB (which runs them as well as its own native form) and compared with numpy and
pandas: exact quantiles from the sorted array of values, CUME_DIST from a RANGE-framed count."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from driftline import dialects


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(8)
    n = 400
    score = rng.integers(0, 25, n) / 24  # many ties
    score[rng.uniform(size=n) < 0.05] = np.nan  # nulls are left out
    frame = pd.DataFrame({"score": score, "region": rng.choice(["eu", "us", "apac"], n)})
    con = ibis.duckdb.connect()
    return con.create_table("t", frame), frame


@pytest.mark.parametrize("dialect", ["duckdb", "bigquery", "trino", "clickhouse"])
def test_quantiles_equal_numpy(table, dialect):
    t, frame = table
    probabilities = [0.0, 0.1, 0.25, 0.5, 0.9, 0.999, 1.0]
    expr = t.aggregate(**{f"q{i}": q for i, q in enumerate(dialects.quantiles(t.score, probabilities, dialect))})
    got = expr.execute().iloc[0].tolist()
    expected = np.quantile(frame.score.dropna(), probabilities)
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("dialect", ["duckdb", "clickhouse"])
def test_cume_dist_equals_pandas_rank(table, dialect):
    t, frame = table
    scored = t.filter(t.score.notnull())
    expr = scored.mutate(overall=dialects.cume_dist(scored.score, None, dialect), by_region=dialects.cume_dist(scored.score, scored.region, dialect))
    got = expr.execute().sort_values(["region", "score"]).reset_index(drop=True)
    known = frame.dropna().sort_values(["region", "score"]).reset_index(drop=True)
    # CUME_DIST: the rank of the row's last tie over the partition's rows
    overall = known.score.rank(method="max") / len(known)
    by_region = known.groupby("region").score.rank(method="max") / known.groupby("region").score.transform("count")
    assert got.overall.to_numpy() == pytest.approx(overall.to_numpy(), abs=1e-12)
    assert got.by_region.to_numpy() == pytest.approx(by_region.to_numpy(), abs=1e-12)


def test_clickhouse_sql_uses_no_sampling_quantile(table):
    """ClickHouse's ``quantile`` and ``quantiles`` sample (8,192 values); driftline's edges are exact."""
    t, _ = table
    sql = dialects.to_sql(t.aggregate(q=dialects.quantiles(t.score, [0.5], "clickhouse")[0]), "clickhouse")
    assert "quantile" not in sql.lower() and "arraySort" in sql
