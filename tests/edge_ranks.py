"""The rank-error guarantee of approximate quantile edges (SPEC §6), checked against numpy.

The data is made to be hard for a sketch: a normal, a heavy-tailed log-normal, integer counts
with ties, values rounded to a coarse grid (long runs of equal values), and a uniform column
with nulls, NaN and ±infinity among its values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftline.plan.columns import Binning, DriftColumn
from driftline.plan.histograms import edges_query

ROWS = 120_000
BINS = 10
TOLERANCE = 0.01  # SPEC §6: within ±1 percentage point of the target quantile
COLUMNS = ("normal", "lognormal", "counts", "rounded", "messy")


def edge_frame(rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(13)
    messy = rng.uniform(-5, 5, rows)
    messy[::97] = np.nan
    messy[::211] = np.inf
    messy[::223] = -np.inf
    return pd.DataFrame({
        "normal": rng.normal(10, 3, rows),
        "lognormal": rng.lognormal(0, 2, rows),
        "counts": rng.poisson(3, rows).astype("float64"),
        "rounded": np.round(rng.exponential(1.0, rows), 1),
        "messy": messy,
    })


def approximate_columns() -> list[DriftColumn]:
    return [DriftColumn(name, Binning("numeric", "quantile", BINS, 20)) for name in COLUMNS]


def quantile_values(table, dialect: str) -> dict[str, list[float]]:
    """Per column, the k/BINS quantiles the edges query of a run returns (before duplicates
    are merged into edges)."""
    row = edges_query(table, approximate_columns(), dialect).execute().iloc[0]
    return {name: [float(row[f"e{i}_q{k}"]) for k in range(BINS - 1)] for i, name in enumerate(COLUMNS)}


def rank_errors(values: np.ndarray, quantiles: list[float]) -> list[float]:
    """How far each quantile's cut lies from its target k/BINS, in shares. An edge's cut is the
    share of finite values below it: the values it sends to the bins below. Where ties make
    the target unreachable (a run of equal values straddles it), the exact quantile's own cut
    counts as on target too."""
    finite = np.sort(values[np.isfinite(values)])
    errors = []
    for k, q in enumerate(quantiles, start=1):
        target = k / BINS
        exact = np.quantile(finite, target)
        cut = np.searchsorted(finite, q, side="left") / len(finite)
        exact_cut = np.searchsorted(finite, exact, side="left") / len(finite)
        errors.append(min(abs(cut - target), abs(cut - exact_cut)))
    return errors
