"""The exact quantile edges DuckDB computes from a sample's brackets equal numpy's, bit for bit.

Small samples force every path: values fetched from buckets, values read off a tied bucket,
ranks outside the brackets (the quantile_cont fallback), columns without a finite value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline import backends
from driftline.plan.bracketed_quantiles import bracketed_edges
from driftline.plan.columns import Binning, DriftColumn

N = 5_000


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    messy = rng.lognormal(0, 2, N)
    messy[rng.random(N) < 0.05] = np.nan
    messy[rng.random(N) < 0.01] = np.inf
    messy[rng.random(N) < 0.01] = -np.inf
    nulls = pd.array(rng.normal(0, 1, N), dtype="Float64")
    nulls[rng.random(N) < 0.3] = pd.NA
    return pd.DataFrame(
        {
            "normal": rng.normal(50, 10, N),
            "ties": np.floor(rng.exponential(2.0, N)),  # a few values, each many times
            "messy": messy,  # NaN and ±inf are left out of the quantiles
            "nulls": nulls,
            "constant": np.full(N, 3.25),
            "empty": pd.array([pd.NA] * N, dtype="Float64"),
            "one": pd.array([7.5] + [pd.NA] * (N - 1), dtype="Float64"),
            "two": pd.array([1.0, 2.0] + [pd.NA] * (N - 2), dtype="Float64"),
            "wide": rng.uniform(-1e12, 1e12, N),
        }
    )


QUANTILE_COLUMNS = ["normal", "ties", "messy", "nulls", "constant", "empty", "one", "two", "wide"]


@pytest.fixture(scope="module")
def reference():
    con = backends.connect("duckdb://:memory:")
    return con.create_table("reference", _data())


def numeric(name: str, bins: int = 10, method: str = "quantile") -> DriftColumn:
    return DriftColumn(name, Binning("numeric", method, bins, 20))


def numpy_edges(values: pd.Series, bins: int) -> list[float | None]:
    finite = values.astype("float64").to_numpy()
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return [None] * (bins - 1)
    return [float(q) for q in np.quantile(finite, [k / bins for k in range(1, bins)])]


class Log:
    """``execute`` that counts the queries it runs."""

    def __init__(self):
        self.queries = 0

    def __call__(self, expr):
        self.queries += 1
        return expr.execute()


def test_edges_equal_numpys_exactly(reference):
    columns = [numeric(c) for c in QUANTILE_COLUMNS] + [numeric("normal", bins=7)]
    log = Log()
    row = bracketed_edges(reference, columns, log).figures  # the sample holds the whole reference
    assert log.queries == 3  # brackets, ranks, the values of the buckets holding the edges
    _assert_numpys(row, columns, exact=True)


@pytest.mark.parametrize("sample_size", [1_000, 50])
def test_a_sample_smaller_than_the_reference_brackets_it(reference, sample_size):
    columns = [numeric(c) for c in QUANTILE_COLUMNS]
    log = Log()
    row = bracketed_edges(reference, columns, log, sample_size=sample_size).figures
    # A rank outside its brackets (rare, four standard errors) costs a fourth query, whose
    # quantile_cont may differ from numpy in the last bit.
    assert log.queries in (3, 4)
    _assert_numpys(row, columns, exact=log.queries == 3)


def _assert_numpys(row: pd.Series, columns: list[DriftColumn], exact: bool) -> None:
    data = _data()
    for i, column in enumerate(columns):
        got = [row[f"e{i}_q{k}"] for k in range(column.binning.bins - 1)]
        got = [None if v is None or pd.isna(v) else float(v) for v in got]
        expected = numpy_edges(data[column.name], column.binning.bins)
        assert got == (expected if exact else pytest.approx(expected, rel=1e-12)), column.name


def test_ranks_outside_the_brackets_fall_back_to_quantile_cont(reference):
    log = Log()
    row = bracketed_edges(reference, [numeric("normal", bins=100)], log, sample_size=5).figures
    assert log.queries == 4  # a 5-value sample cannot bracket 99 percentiles
    expected = numpy_edges(_data()["normal"], 100)
    assert [float(row[f"e0_q{k}"]) for k in range(99)] == pytest.approx(expected, rel=1e-12)


def test_uniform_columns_get_min_and_max_from_the_first_query(reference):
    log = Log()
    row = bracketed_edges(reference, [numeric("messy", method="uniform"), numeric("normal")], log).figures
    finite = _data().messy.to_numpy()
    finite = finite[np.isfinite(finite)]
    assert (float(row["e0_min"]), float(row["e0_max"])) == (finite.min(), finite.max())
    assert [float(row[f"e1_q{k}"]) for k in range(9)] == numpy_edges(_data()["normal"], 10)
