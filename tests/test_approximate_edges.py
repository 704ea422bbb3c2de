"""``edges: approximate`` (the default): the backend's approximate quantiles as bin edges, each
within ±1 percentage point of rank of its target (SPEC §6), on DuckDB and PostgreSQL (Spark: in
``test_spark_engine``), measured with numpy on 120,000 reference rows."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import ibis
import numpy as np
import pyarrow as pa
import pytest
from drift_model import stored_edges
from edge_ranks import BINS, COLUMNS, ROWS, TOLERANCE, edge_frame, quantile_values, rank_errors

from driftline import api
from driftline.plan.histograms import SAMPLE_ROWS

MONITOR = f"""
name: wide
source: {{table: reference_rows, timestamp: ts}}
schedule: {{every: 1d}}
reference: {{start: 2026-01-01, end: 2026-01-08}}
features: {{numeric: [{", ".join(COLUMNS)}]}}
checks:
  - drift: {{method: psi, bins: {BINS}}}
"""


@pytest.fixture(scope="module")
def frame():
    return edge_frame()


def with_timestamps(frame):
    """The rows spread over the reference week, and one more day to evaluate."""
    start, step = datetime(2026, 1, 1), timedelta(days=8) / ROWS
    return frame.assign(ts=[start + i * step for i in range(ROWS)])


def test_duckdb_quantiles_of_a_sample_are_within_one_point_of_rank():
    """A reference larger than the sample: its edges are a random sample's quantiles."""
    frame = edge_frame(3 * SAMPLE_ROWS)
    con = ibis.duckdb.connect()
    quantiles = quantile_values(con.create_table("t", frame), "duckdb")
    for column in COLUMNS:
        assert max(rank_errors(frame[column].to_numpy(), quantiles[column])) <= TOLERANCE, column


def test_a_reference_smaller_than_the_sample_gets_numpys_bins(frame):
    """DuckDB's approximate edges are exact quantiles of a sample of SAMPLE_ROWS rows; a smaller
    reference is the sample, so its edges are numpy's: to the last bit where numpy's quantile is
    a data value (inside a run of ties, which DuckDB's own interpolation misses by an ulp, see
    dialects._tie_exact), within rounding elsewhere, and cutting the data in the same places."""
    assert len(frame) <= SAMPLE_ROWS
    con = ibis.duckdb.connect()
    quantiles = quantile_values(con.create_table("t", frame), "duckdb")
    for column in COLUMNS:
        values = frame[column].to_numpy()
        finite = np.sort(values[np.isfinite(values)])
        expected = np.quantile(finite, [k / BINS for k in range(1, BINS)])
        got = np.array(quantiles[column])
        assert np.allclose(got, expected, rtol=1e-15, atol=0), column
        on_data = np.isin(expected, finite)
        assert (got[on_data] == expected[on_data]).all(), column
        assert (np.searchsorted(finite, got) == np.searchsorted(finite, expected)).all(), column


@pytest.mark.postgres
def test_postgres_quantiles_are_exact(frame, postgres_url):
    """PostgreSQL has no approximate quantile: its percentile_cont is exact, numpy's default."""
    schema = f"driftline_edges_{uuid.uuid4().hex[:8]}"
    con = ibis.connect(postgres_url)
    con.create_database(schema)
    try:
        quantiles = quantile_values(con.create_table("t", frame, database=schema), "postgres")
    finally:
        con.drop_database(schema, force=True, cascade=True)
        con.disconnect()
    for column in COLUMNS:
        values = frame[column].to_numpy()
        finite = values[np.isfinite(values)]
        assert np.allclose(quantiles[column], np.quantile(finite, [k / BINS for k in range(1, BINS)]), rtol=1e-12), column


def test_a_run_stores_edges_within_one_point_of_rank(make_project, frame):
    """End to end: the edges kept in driftline_profiles, after duplicates are merged, each lie
    within one point of rank of some target quantile, and the drift counts use exactly them."""
    project = make_project(monitors={"wide": MONITOR}, tables={"reference_rows": pa.Table.from_pandas(with_timestamps(frame))})
    summary = api.run(project.root, at="2026-01-09T01:00", notify=False)
    assert [o.status for o in summary.outcomes] == ["success"], [o.error for o in summary.outcomes]
    edges = stored_edges(project.query("select profile from driftline_profiles"))
    for column in COLUMNS:
        values = frame[column].to_numpy()[:ROWS * 7 // 8]  # the reference week's rows
        stored = edges[(column, f"quantile:{BINS}")]
        assert stored == sorted(set(stored)) and stored
        for edge in stored:
            assert min(_rank_distance(values, edge, k) for k in range(1, BINS)) <= TOLERANCE, (column, edge)


def _rank_distance(values: np.ndarray, edge: float, k: int) -> float:
    return rank_errors(values, [edge] * k)[k - 1]
