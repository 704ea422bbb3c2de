"""Float literals reach DuckDB exactly.

DuckDB reads ``62.79495413313312`` as a DECIMAL and rounds it on the way to DOUBLE, so about one
literal in forty lands one ulp away from the float that was meant. A bin edge is often a data
value itself (a quantile at an integral position), and a value equal to its edge then falls into
the wrong bin. The expected counts here come from numpy comparisons on the same floats.
"""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from driftline import connect, dialects
from driftline.plan.aggregates import count_where


@pytest.fixture(scope="module")
def values() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate([np.exp(rng.normal(0, 3, 400)), rng.normal(50, 10, 400), rng.normal(0, 1e-9, 100), rng.normal(0, 1e12, 100)])


@pytest.fixture(scope="module")
def table(values):
    con = connect.connect("duckdb://:memory:")
    return con.create_table("floats", pd.DataFrame({"x": values}))


@pytest.fixture
def postgres_table(postgres_url, values):
    con = connect.connect(postgres_url)
    yield con.create_table("driftline_test_floats", pd.DataFrame({"x": values}), overwrite=True)
    con.drop_table("driftline_test_floats")


def test_a_comparison_with_a_float_literal_is_exact(table, values):
    _assert_counts_at_or_above_every_value(table, values)


def test_postgres_compares_float_literals_exactly_too(postgres_table, values):
    _assert_counts_at_or_above_every_value(postgres_table, values)


def _assert_counts_at_or_above_every_value(table, values) -> None:
    edges = [float(e) for e in values[::3]]
    counts = table.aggregate(**{f"n{i}": count_where(table.x >= e) for i, e in enumerate(edges)}).execute().iloc[0]
    assert [int(counts[f"n{i}"]) for i in range(len(edges))] == [int((values >= e).sum()) for e in edges]


def test_an_array_of_float_literals_is_exact(table, values):
    boundaries = sorted(float(v) for v in values[::5])
    got = dict(table.aggregate(h=dialects.bounded_histogram(table.x, boundaries)).execute().h.iloc[0])
    lower = [-np.inf, *boundaries[:-1]]  # histogram() counts (previous boundary, boundary]
    expected = [int(((values > low) & (values <= high)).sum()) for low, high in zip(lower, boundaries)]
    assert [got.get(b, 0) for b in boundaries] == expected


def test_the_sql_spells_every_float_as_a_double():
    sql = dialects.to_sql(ibis.literal([62.79495413313312, -0.5, 1e300, -2.5e-12], "array<float64>").name("x"), "duckdb")
    assert "[62.79495413313312e0, -0.5e0, 1e+300, -2.5e-12]" in sql


def test_only_driftlines_own_connections_compile_so():
    """The compiler is set on driftline's connections, not patched into ibis for everyone."""
    assert "62.79495413313312e0" not in ibis.to_sql(ibis.literal(62.79495413313312, "float64").name("x"), dialect="duckdb")
    plain, ours = ibis.duckdb.connect(), connect.connect("duckdb://:memory:")
    assert type(plain.compiler) is not type(ours.compiler) and isinstance(ours.compiler, dialects.DuckDBCompiler)
