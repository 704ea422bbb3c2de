"""Exact KS and Wasserstein-1 in the warehouse, checked against scipy on generated data.

Every scenario is one table with a ``period`` column; the reference and current windows are
filters on it, as a monitor run builds them. The expected values come from scipy over the same
values with nulls and NaN dropped (and, for Wasserstein and the std, infinities too; the std
also leaves out values beyond ±1e150 and reads those below 1e-100 as 0).
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import uuid
import warnings
from dataclasses import dataclass, field

import ibis
import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as scipy_stats

from driftline.plan.exact import exact_distances
from driftline.stats import ks_pvalue

DIALECTS = ["duckdb", "postgres", "snowflake", "bigquery", "trino", "databricks", "clickhouse"]
OUTPUT_TYPES = {
    "segment_key": "string",
    "segment_value": "string",
    "n_reference": "int64",
    "n_current": "int64",
    "ks_statistic": "float64",
    "wasserstein": "float64",
    "reference_std": "float64",
}


# --- scenarios -------------------------------------------------------------------------------


@dataclass
class Window:
    """The rows of one window: a value and a region per row (None is SQL null)."""

    x: list = field(default_factory=list)
    region: list = field(default_factory=list)

    def __post_init__(self):
        if not self.region:
            self.region = ["north"] * len(self.x)


@dataclass
class Scenario:
    reference: Window
    current: Window

    def table(self) -> pa.Table:
        periods = ["reference"] * len(self.reference.x) + ["current"] * len(self.current.x)
        return pa.table(
            {
                "period": pa.array(periods, pa.string()),
                "x": pa.array(self.reference.x + self.current.x, pa.float64()),
                "region": pa.array(self.reference.region + self.current.region, pa.string()),
            }
        )


def messy_values(rng, n, *, loc=0.0, scale=1.0, decimals=1, dirt=True) -> list:
    """Rounded normal values (many ties), with some nulls, NaN and ±inf mixed in when dirty."""
    values = [float(v) for v in np.round(rng.normal(loc, scale, n), decimals)]
    if dirt:
        for position, special in zip(
            rng.choice(n, size=min(n, 12), replace=False),
            [None] * 5 + [math.nan] * 3 + [math.inf] * 2 + [-math.inf] * 2,
        ):
            values[position] = special
    return values


def regions(rng, n, *, tiny_every=200) -> list:
    """Two big regions and a tiny one (about one row in ``tiny_every``)."""
    picked = rng.choice(["north", "south"], size=n).tolist()
    for position in range(0, n, tiny_every):
        picked[position] = "tiny"
    return picked


def _segmented(seed, n_reference, n_current, *, shift=0.3, scale=1.0, decimals=1) -> Scenario:
    rng = np.random.default_rng(seed)
    return Scenario(
        Window(
            messy_values(rng, n_reference, scale=scale, decimals=decimals),
            regions(rng, n_reference),
        ),
        Window(
            messy_values(rng, n_current, loc=shift * scale, scale=scale, decimals=decimals),
            regions(rng, n_current, tiny_every=150),
        ),
    )


def _empty_current() -> Scenario:
    rng = np.random.default_rng(7)
    return Scenario(Window(messy_values(rng, 300), regions(rng, 300)), Window())


def _large_values() -> Scenario:
    # Values around 1e9 with few ties: checks the tolerance is relative and the std is two-pass.
    rng = np.random.default_rng(11)
    return Scenario(
        Window(messy_values(rng, 400, loc=1e9, scale=1e6, decimals=0, dirt=False)),
        Window(messy_values(rng, 350, loc=1e9 + 2e5, scale=1e6, decimals=0, dirt=False)),
    )


def _null_segment_value() -> Scenario:
    # Rows whose region is null form a segment of their own (segment_value null, key set).
    rng = np.random.default_rng(13)
    reference_regions = regions(rng, 250)
    current_regions = regions(rng, 180)
    for picked in (reference_regions, current_regions):
        picked[1:30:3] = [None] * len(picked[1:30:3])
    return Scenario(
        Window(messy_values(rng, 250), reference_regions),
        Window(messy_values(rng, 180, loc=0.5), current_regions),
    )


def _huge_and_tiny_values() -> Scenario:
    # Around 1e200 in north (with a tiny, an ordinary value and ones at and just past the ±1e150
    # limit among them) and in far, around 1e-200 in east, ordinary values in south, and in west a
    # subnormal value between -1 and 1, whose sum can round to it. σ leaves out the values beyond
    # ±1e150 and reads the tiny ones as 0 (SPEC §6); their squares, and the mean of west's values,
    # made PostgreSQL fail the whole query. D and W1 are exact over all of them.
    rng = np.random.default_rng(17)

    def window(n, loc, west):
        north = [float(v) for v in rng.normal(loc * 1e200, 3e199, n)]
        north[:5] = [1e-300, -5.0, 1e150, -1e150, 1.0000000000000002e150]
        far = [float(v) for v in rng.normal(loc * 1e200, 3e199, n // 10)]
        east = [float(v) for v in rng.normal(loc * 1e-200, 3e-201, n)]
        south = [float(v) for v in rng.normal(loc, 1.0, n)]
        regions = ["north"] * n + ["far"] * len(far) + ["east"] * n + ["south"] * n + ["west"] * len(west)
        return Window(north + far + east + south + west, regions)

    return Scenario(window(300, 1.0, [-1.0, 5e-324, 1.0]), window(200, 1.2, [-1.0, 0.5, 1.0]))


SCENARIOS = {
    "ties_nulls_nan_inf": lambda: _segmented(1, 600, 400),
    "different_sizes": lambda: _segmented(2, 3000, 45, shift=1.0, decimals=2),
    "continuous": lambda: _segmented(3, 500, 500, decimals=9),
    "coarse_ties": lambda: _segmented(4, 800, 700, scale=3.0, decimals=0),
    "same_distribution": lambda: _segmented(5, 500, 500, shift=0.0),
    "constant_column": lambda: Scenario(Window([5.0] * 20), Window([5.0] * 7)),
    "constant_shifted": lambda: Scenario(Window([5.0] * 20), Window([6.5] * 7)),
    "one_row_each": lambda: Scenario(Window([1.5]), Window([-2.0])),
    "one_row_same": lambda: Scenario(Window([3.0]), Window([3.0])),
    "empty_current": _empty_current,
    "current_all_null": lambda: Scenario(Window([1.0, 2.0, 2.0]), Window([None, math.nan])),
    "only_infinities": lambda: Scenario(
        Window([math.inf, -math.inf, math.inf]), Window([math.inf, 1.0, 2.0])
    ),
    "large_values": _large_values,
    "null_segment_value": _null_segment_value,
    "huge_and_tiny_values": _huge_and_tiny_values,
}


# --- expected values, from scipy -------------------------------------------------------------


def _present(values) -> np.ndarray:
    """Values that take part in the distributions: not null, not NaN."""
    array = np.array([math.nan if v is None else v for v in values], dtype=float)
    return array[~np.isnan(array)]


def expected_statistics(reference_values, current_values) -> dict:
    reference, current = _present(reference_values), _present(current_values)
    reference_finite = reference[np.isfinite(reference)]
    current_finite = current[np.isfinite(current)]
    both = len(reference) and len(current)
    both_finite = len(reference_finite) and len(current_finite)
    return {
        "n_reference": len(reference),
        "n_current": len(current),
        "ks_statistic": scipy_stats.ks_2samp(reference, current).statistic if both else None,
        "ks_asymp_pvalue": _asymp_pvalue(reference, current) if both else None,
        "wasserstein": (
            scipy_stats.wasserstein_distance(reference_finite, current_finite)
            if both_finite
            else None
        ),
        "reference_std": expected_reference_std(reference_finite),
    }


def expected_reference_std(reference_finite: np.ndarray) -> float | None:
    """σ by SPEC §6's rule: over the values within ±1e150, those below 1e-100 read as 0.

    (The rule reads deviations below 1e-100 as 0 too; none of these scenarios has one.)
    Exact, in fractions (``statistics``): numpy's own squares overflow from about 1e154."""
    kept = [0.0 if abs(v) < 1e-100 else v for v in reference_finite.tolist() if abs(v) <= 1e150]
    return statistics.pstdev(kept) if kept else None


def _asymp_pvalue(reference, current) -> float | None:
    """scipy's asymptotic p-value; None where it is NaN (one value a side: its effective size
    rounds to 0, and it warns about the division by zero it then makes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = scipy_stats.ks_2samp(reference, current, method="asymp").pvalue
    return None if np.isnan(p_value) else float(p_value)


def expected_rows(scenario: Scenario) -> dict:
    """Expected statistics keyed by (segment_key, segment_value), overall row included."""
    expected = {(None, None): expected_statistics(scenario.reference.x, scenario.current.x)}
    for value in {*scenario.reference.region, *scenario.current.region}:

        def pick(window: Window, value=value) -> list:
            return [x for x, r in zip(window.x, window.region) if r == value]

        expected[("region", value)] = expected_statistics(
            pick(scenario.reference), pick(scenario.current)
        )
    return expected


def _close(actual, expected, tolerance=1e-9) -> bool:
    if expected is None:
        return actual is None
    return actual is not None and abs(actual - expected) <= tolerance * max(1.0, abs(expected))


# --- backends --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def duckdb_loader():
    con = ibis.duckdb.connect()

    def load(table: pa.Table) -> ibis.Table:
        return con.create_table(f"exact_{uuid.uuid4().hex[:10]}", table)

    yield load
    con.disconnect()


@pytest.fixture(scope="module")
def postgres_loader():
    url = os.environ.get("DRIFTLINE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set DRIFTLINE_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1/test)")
    con = ibis.connect(url)
    created: list[str] = []

    def load(table: pa.Table) -> ibis.Table:
        name = f"driftline_test_exact_{uuid.uuid4().hex[:10]}"
        created.append(name)
        return con.create_table(name, table)

    yield load
    for name in created:
        con.drop_table(name, force=True)
    con.disconnect()


@pytest.fixture(scope="module")
def spark_loader():
    pytest.importorskip("pyspark", reason="pyspark is not installed")
    if shutil.which("java") is None:
        pytest.skip("Java is not installed")
    from pyspark.sql import SparkSession

    # Leave alone a session that other tests started; stop only our own.
    already_running = SparkSession.getActiveSession() is not None
    session = (
        SparkSession.builder.master("local[2]")
        .appName("driftline-test-exact")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    con = ibis.pyspark.connect(session)

    def load(table: pa.Table) -> ibis.Table:
        # A temporary view: nothing is written to a warehouse directory. Arrow keeps null and
        # NaN apart, which a pandas round trip would not.
        name = f"exact_{uuid.uuid4().hex[:10]}"
        session.createDataFrame(table).createOrReplaceTempView(name)
        return con.table(name)

    yield load
    if not already_running:
        session.stop()


@pytest.fixture(
    params=[
        "duckdb",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("spark", marks=pytest.mark.spark),
    ]
)
def load(request):
    """A function that puts an arrow table into the backend under test."""
    return request.getfixturevalue(f"{request.param}_loader")


def run_scenario(load, scenario: Scenario, segment_columns=("region",)) -> dict:
    table = load(scenario.table())
    expr = exact_distances(
        table.filter(table.period == "reference"),
        table.filter(table.period == "current"),
        "x",
        segment_columns,
    )
    # Through arrow, not pandas, so that a NaN statistic cannot pass for a null one.
    records = expr.to_pyarrow().to_pylist()
    return {(record["segment_key"], record["segment_value"]): record for record in records}


def assert_matches_scipy(rows: dict, expected: dict) -> None:
    assert set(rows) == set(expected)
    for key, want in expected.items():
        got = rows[key]
        assert got["n_reference"] == want["n_reference"], key
        assert got["n_current"] == want["n_current"], key
        for statistic in ("ks_statistic", "wasserstein", "reference_std"):
            assert _close(got[statistic], want[statistic]), (key, statistic, got, want)
        if want["reference_std"]:  # relative, also where the values are tiny
            assert got["reference_std"] == pytest.approx(want["reference_std"], rel=1e-9, abs=0), (key, got, want)
        if got["ks_statistic"] is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no RuntimeWarning where the p-value is undefined
                p_value = ks_pvalue(got["ks_statistic"], got["n_reference"], got["n_current"])
            assert _close(p_value, want["ks_asymp_pvalue"], tolerance=1e-6), (key, p_value, want)


# --- tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_matches_scipy(load, name):
    scenario = SCENARIOS[name]()
    assert_matches_scipy(run_scenario(load, scenario), expected_rows(scenario))


def test_empty_current_gives_rows_with_null_statistics(load):
    rows = run_scenario(load, _empty_current())
    assert set(rows) == {(None, None), ("region", "north"), ("region", "south"), ("region", "tiny")}
    for row in rows.values():
        assert row["n_current"] == 0 and row["n_reference"] > 0
        assert row["ks_statistic"] is None and row["wasserstein"] is None
        assert row["reference_std"] is not None


def test_both_windows_empty_gives_no_rows(load):
    table = load(Scenario(Window([1.0]), Window([2.0])).table())
    nothing = table.filter(table.period == "neither")
    assert exact_distances(nothing, nothing, "x", ["region"]).to_pyarrow().num_rows == 0

def test_without_segments_returns_only_the_overall_row(load):
    scenario = SCENARIOS["ties_nulls_nan_inf"]()
    rows = run_scenario(load, scenario, segment_columns=())
    assert list(rows) == [(None, None)]
    assert_matches_scipy(rows, {(None, None): expected_rows(scenario)[(None, None)]})


def test_integer_column(duckdb_loader):
    rng = np.random.default_rng(21)
    reference = rng.poisson(3, 300)
    current = rng.poisson(4, 200)
    table = duckdb_loader(
        pa.table(
            {
                "period": ["reference"] * 300 + ["current"] * 200,
                "visits": pa.array(np.concatenate([reference, current]), pa.int64()),
            }
        )
    )
    expr = exact_distances(
        table.filter(table.period == "reference"), table.filter(table.period == "current"), "visits"
    )
    row = expr.execute().iloc[0]
    expected_d = scipy_stats.ks_2samp(reference, current).statistic
    assert row.ks_statistic == pytest.approx(expected_d, abs=1e-12)
    assert row.wasserstein == pytest.approx(
        scipy_stats.wasserstein_distance(reference, current), rel=1e-9
    )


def test_output_schema():
    table = ibis.table({"x": "float64", "region": "string", "plan": "int32"}, name="events")
    expr = exact_distances(table, table, "x", ["region", "plan"])
    assert {name: str(dtype).lower().lstrip("!") for name, dtype in expr.schema().items()} == (
        OUTPUT_TYPES
    )


def test_rejects_a_non_numeric_column():
    table = ibis.table({"region": "string"}, name="events")
    with pytest.raises(TypeError, match="region"):
        exact_distances(table, table, "region")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_compiles_for_every_dialect(dialect):
    table = ibis.table(
        {"x": "float64", "region": "string", "plan": "int32", "ts": "timestamp"}, name="events"
    )
    expr = exact_distances(
        table.filter(table.ts < ibis.timestamp("2026-01-01")),
        table.filter(table.ts >= ibis.timestamp("2026-01-01")),
        "x",
        ["region", "plan"],
    )
    sql = ibis.to_sql(expr, dialect=dialect)
    assert "LEAD(" in sql.upper() or "LEADINFRAME(" in sql.upper()  # ClickHouse's LEAD over the whole frame
    # ibis compiles isinf() to a constant FALSE on Spark/Databricks; finiteness must not use it.
    assert "FALSE OR FALSE" not in sql.upper()

