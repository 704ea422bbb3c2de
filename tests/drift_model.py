"""A numpy/scipy model of SPEC §6 drift over generated data, for end-to-end tests on any backend.

``generate_rows()`` makes the raw rows (nulls, NaN, ±infinity, values on bin edges, an integer
column with ties, a constant column, more categories than ``max_categories`` with tied counts,
unseen categories, a segment column with a tiny segment and null values) for a fixed reference
week and three days after it: a drifted day, an empty day and a day with one row. ``MAIN`` and
``SINGLE`` are monitors over that table; ``model_results`` and ``model_histograms`` compute what
their result rows must hold, from the raw rows, without driftline; ``compare`` and
``compare_histograms`` check result frames read back from the warehouse against them.

    data = generate_rows()
    project = make_project(monitors={"main": MAIN}, tables={"events": arrow_table(data)})
    summary = driftline.api.backfill(DRIFTED, ONE_ROW + DAY, project.root, at=ONE_ROW + 2 * DAY)
    compare(results_of_the_drifted_window, model_results(data, DRIFTED))
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon

REFERENCE = (datetime(2026, 1, 1), datetime(2026, 1, 8))
DRIFTED, EMPTY, ONE_ROW = datetime(2026, 1, 8), datetime(2026, 1, 9), datetime(2026, 1, 10)
DAY = timedelta(days=1)
EPS = 1e-4
MIN_ROWS = 20
# Quantile edges per (column, binning key), as stored in a profile; None: numpy's exact ones.
Edges = dict[tuple[str, str], list[float]] | None
MAX_CATEGORIES = 5
NULL_SEGMENT = "__null__"

# -- the data ------------------------------------------------------------------------------------


def reference_categories(rng: np.random.Generator) -> list[str]:
    """More categories than MAX_CATEGORIES; the 3rd to 6th most frequent tie, so which of them
    are kept is decided by value, not by the order rows arrive in."""
    counts = {"zulu": 900, "mike": 700, "echo": 500, "tango": 500, "alpha": 500, "kilo": 500, "bravo": 100, "yankee": 1}
    values = [name for name, n in counts.items() for _ in range(n)]
    rng.shuffle(values)
    return values


def generate_rows() -> dict[str, list]:
    rng = np.random.default_rng(20260108)
    columns: dict[str, list] = {name: [] for name in ("ts", "x", "y", "visits", "const", "cat", "code", "region")}

    def add(ts, x, y, visits, cat, code, region):
        for name, value in zip(columns, (ts, x, y, visits, 5.0, cat, code, region)):
            columns[name].append(value)

    # the reference week
    cats = reference_categories(rng)
    n = len(cats) + 4  # a few rows with a null category
    cats += [None] * 4
    seconds = rng.uniform(0, 7 * 86400, n)
    region = rng.choice(["north", "south", "tiny", "none"], size=n, p=[0.45, 0.40, 0.05, 0.10])
    x = np.round(rng.normal(0, 1, n), 2).tolist()
    for i, special in enumerate([None] * 15 + [math.nan] * 10 + [math.inf] * 3 + [-math.inf] * 2):
        x[i * 7] = special
    y = np.round(rng.uniform(0, 100, n), 1).tolist()
    visits = rng.poisson(3, n).tolist()
    for i in range(0, n, 97):
        visits[i] = None
    code = rng.choice([1, 2, 3, 4], size=n, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    for i in range(n):
        add(REFERENCE[0] + timedelta(seconds=float(seconds[i])), x[i], y[i], visits[i], cats[i], code[i],
            None if region[i] == "none" else str(region[i]))

    # drifted day: north shifts, south does not, tiny has 3 rows, 40 rows have no region
    plan = [("north", 400, 0.6), ("south", 300, 0.0), ("tiny", 3, 0.0), (None, 40, 0.3)]
    specials = [None] * 5 + [math.nan] * 5 + [math.inf] * 2 + [-math.inf] + [-10.0] * 5 + [10.0] * 5
    k = 0
    for name, size, shift in plan:
        for _ in range(size):
            ts = DRIFTED + timedelta(seconds=float(rng.uniform(0, 86400)))
            value = round(float(rng.normal(shift, 1)), 2)
            if name == "north" and k < len(specials):
                value, k = specials[k], k + 1
            category = str(rng.choice(["zulu", "mike", "echo", "tango", "alpha", "kilo", "brand_new", None],
                                      p=[0.3, 0.2, 0.1, 0.1, 0.1, 0.05, 0.1, 0.05]))
            add(ts, value, round(float(rng.uniform(10, 120)), 1), int(rng.poisson(3.5)),
                None if category == "None" else category, int(rng.choice([1, 2, 3, 4, 5])), name)

    # one row on the third day (the second day is empty)
    add(ONE_ROW + timedelta(hours=5), 0.37, 55.5, 2, "mike", 2, "north")
    return columns


def arrow_table(columns: dict[str, list]) -> pa.Table:
    types = {"ts": pa.timestamp("us"), "x": pa.float64(), "y": pa.float64(), "visits": pa.int64(),
             "const": pa.float64(), "cat": pa.string(), "code": pa.int64(), "region": pa.string()}
    return pa.table({name: pa.array(values, type=types[name]) for name, values in columns.items()})


MAIN = f"""
name: main
source: {{table: events, timestamp: ts}}
schedule: {{every: 1d}}
reference: {{start: {REFERENCE[0]:%Y-%m-%d}, end: {REFERENCE[1]:%Y-%m-%d}}}
segments: [region]
min_rows: {MIN_ROWS}
features:
  numeric: [x, visits, const]
  categorical: [cat, code]
checks:
  - drift: {{method: psi, max_categories: {MAX_CATEGORIES}}}
  - drift: {{method: kl, max_categories: {MAX_CATEGORIES}, warn: {{above: 0.05}}, fail: 0.5}}
  - drift: {{method: js, max_categories: {MAX_CATEGORIES}, warn: {{outside: [0, 0.05]}}}}
  - drift: {{method: hellinger, max_categories: {MAX_CATEGORIES}, fail: {{above: 0.08}}}}
  - drift: {{method: tvd, max_categories: {MAX_CATEGORIES}, warn: {{below: 0.02}}}}
  - drift: {{method: linf, max_categories: {MAX_CATEGORIES}, warn: 0.05, fail: 0.1}}
  - drift: {{method: chi2, max_categories: {MAX_CATEGORIES}, p_value: 0.01, warn: 0.0}}
  - drift: {{name: y_psi, method: psi, columns: [y], binning: uniform, bins: 8}}
  - drift: {{name: y_tvd, method: tvd, columns: [y], binning: uniform, bins: 8, fail: 0.2}}
  - drift: {{method: ks, columns: [x, visits], p_value: 0.05, warn: 0.05, fail: 0.2}}
  - drift: {{method: wasserstein, columns: [x, const], warn: 0.1}}
  - drift: {{name: x_wasserstein_raw, method: wasserstein, columns: [x], normalize: false}}
"""

SINGLE = f"""
name: single
source: {{table: events, timestamp: ts}}
schedule: {{every: 1d}}
reference: {{start: {REFERENCE[0]:%Y-%m-%d}, end: {REFERENCE[1]:%Y-%m-%d}}}
min_rows: 1
features:
  numeric: [x]
  categorical: [cat]
checks:
  - drift: {{method: psi, max_categories: {MAX_CATEGORIES}}}
  - drift: {{method: chi2, max_categories: {MAX_CATEGORIES}}}
  - drift: {{method: ks, columns: [x]}}
"""


@dataclass(frozen=True)
class CheckSpec:
    """What the numpy model needs to know about one check of MAIN."""

    method: str
    columns: tuple[str, ...]
    binning: str = "quantile"
    bins: int = 10
    warn: object = None
    fail: object = None
    p_value: float | None = None
    normalize: bool = True


FEATURES = ("x", "visits", "const", "cat", "code")
MAIN_CHECKS = {
    "drift_psi": CheckSpec("psi", FEATURES, warn=0.1, fail=0.25),
    "drift_kl": CheckSpec("kl", FEATURES, warn={"above": 0.05}, fail=0.5),
    "drift_js": CheckSpec("js", FEATURES, warn={"outside": (0, 0.05)}),
    "drift_hellinger": CheckSpec("hellinger", FEATURES, fail={"above": 0.08}),
    "drift_tvd": CheckSpec("tvd", FEATURES, warn={"below": 0.02}),
    "drift_linf": CheckSpec("linf", FEATURES, warn=0.05, fail=0.1),
    "drift_chi2": CheckSpec("chi2", FEATURES, warn=0.0, p_value=0.01),
    "y_psi": CheckSpec("psi", ("y",), binning="uniform", bins=8, warn=0.1, fail=0.25),
    "y_tvd": CheckSpec("tvd", ("y",), binning="uniform", bins=8, fail=0.2),
    "drift_ks": CheckSpec("ks", ("x", "visits"), warn=0.05, fail=0.2, p_value=0.05),
    "drift_wasserstein": CheckSpec("wasserstein", ("x", "const"), warn=0.1),
    "x_wasserstein_raw": CheckSpec("wasserstein", ("x",), normalize=False),
}
CATEGORICAL = {"cat", "code"}

# -- the numpy model of SPEC §6 -------------------------------------------------------------------


def as_float(values: list) -> np.ndarray:
    """Nulls become NaN: both are left out of every distribution."""
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)


def numeric_edges(reference: np.ndarray, binning: str, bins: int) -> list[float]:
    finite = reference[np.isfinite(reference)]
    if binning == "quantile":
        return sorted(set(np.quantile(finite, [k / bins for k in range(1, bins)]).tolist()))
    low, high = finite.min(), finite.max()
    if high <= low:
        return [float(low)]
    return sorted({float(low + (high - low) / bins * k) for k in range(1, bins)})


def stored_edges(profiles) -> dict[tuple[str, str], list[float]]:
    """The numeric edges of stored reference profiles (a frame of ``driftline_profiles`` rows), per
    (column, binning key such as ``quantile:10``). SPEC §6: approximate quantile edges are the
    backend's; every drift value is exact given them, so the model takes them as they are."""
    edges = {}
    for text in profiles.profile:
        for bins in json.loads(text)["bins"]:
            if bins["kind"] == "numeric":
                edges[(bins["column"], bins["binning"])] = list(bins["edges"])
    return edges


def numeric_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    present = values[~np.isnan(values)]
    # searchsorted(side="right") = how many edges are <= v: bin i is [e(i-1), e(i))
    return np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)


def as_text(values: list) -> list[str | None]:
    return [None if v is None else str(v) for v in values]


def top_categories(reference: list) -> list[str]:
    counts = Counter(v for v in as_text(reference) if v is not None)
    return [value for value, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_CATEGORIES]]


def categorical_counts(values: list, categories: list[str]) -> np.ndarray:
    present = [v for v in as_text(values) if v is not None]
    kept = [sum(1 for v in present if v == c) for c in categories]
    return np.array([*kept, len(present) - sum(kept)])


def binned_value(method: str, reference: np.ndarray, current: np.ndarray) -> tuple[float, float | None]:
    p, q = reference / reference.sum(), current / current.sum()
    pf, qf = np.maximum(p, EPS), np.maximum(q, EPS)
    if method == "psi":
        return float(np.sum((qf - pf) * np.log(qf / pf))), None
    if method == "kl":
        return float(np.sum(qf * np.log(qf / pf))), None
    if method == "js":
        return float(jensenshannon(p, q, base=2)), None
    if method == "hellinger":
        return float(np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2))), None
    if method == "tvd":
        return float(0.5 * np.abs(p - q).sum()), None
    if method == "linf":
        return float(np.abs(p - q).max()), None
    assert method == "chi2"
    expected = current.sum() * pf
    statistic = float(np.sum((current - expected) ** 2 / expected))
    return math.sqrt(statistic / current.sum()), float(scipy_stats.chi2.sf(statistic, len(current) - 1))


def exact_value(check: CheckSpec, reference: np.ndarray, current: np.ndarray) -> tuple[float, float | None]:
    reference, current = reference[~np.isnan(reference)], current[~np.isnan(current)]
    if check.method == "ks":
        d = scipy_stats.ks_2samp(reference, current).statistic
        return float(d), float(scipy_stats.ks_2samp(reference, current, method="asymp").pvalue)
    reference, current = reference[np.isfinite(reference)], current[np.isfinite(current)]
    w = float(scipy_stats.wasserstein_distance(reference, current))
    return (w / max(float(np.std(reference)), 1e-3) if check.normalize else w), None


def breaches(value: float, threshold) -> bool:
    if isinstance(threshold, dict):
        (kind, bound), = threshold.items()
        return {"above": lambda: value > bound, "below": lambda: value < bound,
                "outside": lambda: value < bound[0] or value > bound[1]}[kind]()
    return value > threshold  # a plain number: drift breaches above it


def expected_status(check: CheckSpec, value: float | None, p_value: float | None) -> str:
    if value is None:
        return "insufficient_data"
    if check.p_value is not None and not (p_value is not None and p_value <= check.p_value):
        return "ok"
    for status, threshold in (("fail", check.fail), ("warn", check.warn)):
        if threshold is not None and breaches(value, threshold):
            return status
    return "ok"


@dataclass
class Expected:
    value: float | None
    p_value: float | None
    n_current: int | None
    n_reference: int | None
    status: str


def rows_in(data: dict[str, list], start: datetime, end: datetime, region=...) -> list[int]:
    """Indices of the rows in [start, end), in one region (... = any; None = null region)."""
    return [i for i, ts in enumerate(data["ts"]) if start <= ts < end and (region is ... or data["region"][i] == region)]


def pick(values: list, rows: list[int]) -> list:
    return [values[i] for i in rows]


def segments(data: dict[str, list], window_start: datetime, by_region: bool = True) -> dict[tuple, tuple[list[int], list[int]]]:
    """(segment_key, segment_value) → (reference rows, current rows), overall first."""
    window_end = window_start + DAY
    found = {(None, None): (rows_in(data, *REFERENCE), rows_in(data, window_start, window_end))}
    if not by_region:
        return found
    regions = {data["region"][i] for i in rows_in(data, *REFERENCE) + rows_in(data, window_start, window_end)}
    for region in regions:
        key = ("region", NULL_SEGMENT if region is None else region)
        found[key] = (rows_in(data, *REFERENCE, region=region), rows_in(data, window_start, window_end, region=region))
    return found


def model_histograms(data: dict[str, list], window_start: datetime, edges: Edges = None) -> dict[tuple, tuple[list, np.ndarray, np.ndarray]]:
    """(column, binning, bins, segment) → (bounds, reference counts, current counts); quantile
    edges from ``edges`` (see :func:`stored_edges`) when given, else numpy's exact ones."""
    everything = rows_in(data, *REFERENCE)
    found = {}
    for column, binning, bins in {(c, s.binning, s.bins) for s in MAIN_CHECKS.values() if s.method not in ("ks", "wasserstein") for c in s.columns}:
        if column in CATEGORICAL:
            categories = top_categories(pick(data[column], everything))
            count = lambda rows: categorical_counts(pick(data[column], rows), categories)  # noqa: E731
            bounds = [(None, None)] * (len(categories) + 1)
        else:
            cut = _edges(data, column, binning, bins, edges)
            count = lambda rows, cut=cut: numeric_counts(as_float(pick(data[column], rows)), cut)  # noqa: E731
            cuts = [None, *cut, None]
            bounds = list(zip(cuts[:-1], cuts[1:]))
        for segment, (reference, current) in segments(data, window_start).items():
            found[(column, binning, bins, segment)] = (bounds, count(reference), count(current))
    return found


def _edges(data: dict[str, list], column: str, binning: str, bins: int, edges: Edges) -> list[float]:
    if binning == "quantile" and edges is not None:
        return edges[(column, f"quantile:{bins}")]
    return numeric_edges(as_float(pick(data[column], rows_in(data, *REFERENCE))), binning, bins)


def model_results(data: dict[str, list], window_start: datetime, checks=MAIN_CHECKS, min_rows=MIN_ROWS, edges: Edges = None) -> dict[tuple, Expected]:
    """(check, column, segment_key, segment_value) → the expected result row; ``edges`` as for
    :func:`model_histograms`."""
    histograms = model_histograms(data, window_start, edges) if checks is MAIN_CHECKS else None
    expected = {}
    for name, check in checks.items():
        for column in check.columns:
            for segment, (reference_rows, current_rows) in segments(data, window_start, histograms is not None).items():
                enough = len(current_rows) >= min_rows
                if check.method in ("ks", "wasserstein"):
                    reference, current = as_float(pick(data[column], reference_rows)), as_float(pick(data[column], current_rows))
                    n_ref, n_cur = int((~np.isnan(reference)).sum()), int((~np.isnan(current)).sum())
                    value, p_value = exact_value(check, reference, current) if enough and n_ref and n_cur else (None, None)
                else:
                    if histograms is not None:
                        _, ref_counts, cur_counts = histograms[(column, check.binning, check.bins, segment)]
                    else:
                        ref_counts, cur_counts = single_histogram(data, column, reference_rows, current_rows, edges)
                    n_ref, n_cur = int(ref_counts.sum()), int(cur_counts.sum())
                    value, p_value = binned_value(check.method, ref_counts, cur_counts) if enough and n_ref and n_cur else (None, None)
                expected[(name, column, *segment)] = Expected(value, p_value, n_cur, n_ref, expected_status(check, value, p_value))
    return expected


def single_histogram(data, column, reference_rows, current_rows, edges: Edges = None):
    everything = rows_in(data, *REFERENCE)
    if column in CATEGORICAL:
        categories = top_categories(pick(data[column], everything))
        return categorical_counts(pick(data[column], reference_rows), categories), categorical_counts(pick(data[column], current_rows), categories)
    cut = _edges(data, column, "quantile", 10, edges)
    return numeric_counts(as_float(pick(data[column], reference_rows)), cut), numeric_counts(as_float(pick(data[column], current_rows)), cut)


def close(actual, expected, tolerance=1e-9) -> bool:
    if expected is None or actual is None or (isinstance(actual, float) and math.isnan(actual)):
        return expected is None and (actual is None or math.isnan(actual))
    return abs(actual - expected) <= tolerance * max(1.0, abs(expected))


def text(value) -> str | None:
    """A text cell as read back: SQL null arrives as None or NaN."""
    return value if isinstance(value, str) else None


def compare(frame, expected: dict[tuple, Expected]) -> None:
    rows = {}
    for row in frame.itertuples(index=False):
        key = (row.check_name, row.column_name, text(row.segment_key), text(row.segment_value))
        assert key not in rows, f"duplicate result row {key}"
        rows[key] = row
    assert set(rows) == set(expected)
    mismatches = []
    for key, want in expected.items():
        got = rows[key]
        value = None if got.value is None or math.isnan(got.value) else got.value
        p_value = None if got.p_value is None or math.isnan(got.p_value) else got.p_value
        if not (close(value, want.value) and close(p_value, want.p_value, 1e-6) and got.status == want.status
                and got.n_current == want.n_current and got.n_reference == want.n_reference):
            mismatches.append((key, (value, p_value, got.status, got.n_current, got.n_reference), want))
    assert mismatches == []


def compare_histograms(stored, data: dict[str, list], window_start: datetime, columns: set[str] | None = None, edges: Edges = None) -> None:
    """The driftline_histograms rows of one run against the model's bins and counts (of MAIN's
    binned ``columns``, default all); ``edges`` as for :func:`model_histograms`."""
    expected = {k: v for k, v in model_histograms(data, window_start, edges).items() if columns is None or k[0] in columns}
    by_column = {(column, segment): value for (column, _, _, segment), value in expected.items()}
    assert len(by_column) == len(expected)  # one binning per column in MAIN
    found = set()
    for (column, segment_key, segment_value), group in stored.groupby(["column_name", "segment_key", "segment_value"], dropna=False):
        segment = (text(segment_key), text(segment_value))
        bounds, reference, current = by_column[(column, segment)]
        group = group.sort_values("bin_index")
        assert list(group.bin_index) == list(range(len(bounds)))
        assert list(group.reference_count) == reference.tolist(), (column, segment)
        assert list(group.current_count) == current.tolist(), (column, segment)
        for (lower, upper), got_lower, got_upper in zip(bounds, group.lower, group.upper):
            assert close(None if got_lower != got_lower else got_lower, lower)
            assert close(None if got_upper != got_upper else got_upper, upper)
        found.add((column, segment))
    assert found == set(by_column)


def small_monitor(name: str, check: str, where: str | None = None) -> str:
    """A one-check monitor over table `events` (ts, x numeric, cat categorical), daily windows."""
    where_line = f"\n  where: \"{where}\"" if where else ""
    return f"""
name: {name}
source:
  table: events
  timestamp: ts{where_line}
schedule: {{every: 1d}}
reference: {{start: 2026-01-01, end: 2026-01-08}}
min_rows: 5
features: {{numeric: [x], categorical: [cat]}}
checks:
  - drift: {check}
"""
