"""Data quality, latency and custom KPI metrics computed in the warehouse, checked against
numpy/pandas on generated data (NaN and nulls mixed in, new categories, a schema that changes);
then validation errors and SQL compilation for every dialect."""

from __future__ import annotations

import math
import re
import uuid

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from driftline import api, dialects
from driftline.errors import ConfigErrors
from model_projects import DAY, START, assert_value, make_project, result, results, sql, value_of

HOUR = pd.Timedelta(hours=1)

MONITOR = """
name: events
source: {table: events, timestamp: ts}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-03}
segments: [region]
min_rows: 1
features:
  numeric: [amount]
  categorical: [country]
checks:
  - drift: {columns: [country, amount]}  # null_rate and row_count read the drift counts
  - quality: {metric: row_count}
  - quality: {metric: null_rate, columns: [amount, country]}
  - quality: {metric: distinct_count, columns: [country]}
  - quality: {metric: mean, columns: [amount]}
  - quality: {metric: stddev, columns: [amount]}
  - quality: {metric: min, columns: [amount]}
  - quality: {metric: max, columns: [amount]}
  - quality: {metric: out_of_range_rate, columns: [amount], min: 0, max: 100}
  - quality: {metric: new_category_rate, columns: [country, plan]}
  - quality: {name: new_top_plans, metric: new_category_rate, columns: [plan], max_categories: 2}
  - quality: {metric: freshness_hours, fail: {above: 6}}
  - quality: {metric: schema_change, fail: 0}
  - latency: {column: latency_ms}
  - latency: {column: latency_ms, quantile: 0.99}
  - metric: {name: conversion_rate, sql: conversion_rate(converted)}
  - metric: {name: revenue_per_user, sql: "revenue_per_user(revenue, user_id)"}
  - metric: {name: big_orders, sql: "share_above(revenue, 20) * 100"}
"""
NAN_MARKER = -999.0


def events_day(rng, day: int, n: int, countries: list[str]) -> pd.DataFrame:
    amount = np.round(rng.normal(50, 30, n), 1)
    amount[rng.uniform(size=n) < 0.05] = np.nan  # null
    amount[rng.uniform(size=n) < 0.05] = NAN_MARKER  # becomes NaN in the table
    country = rng.choice(countries, n).astype(object)
    country[rng.uniform(size=n) < 0.05] = None
    return pd.DataFrame({
        "ts": START + day * DAY + pd.to_timedelta(rng.uniform(0, 86399, n).round(), unit="s"),
        "region": rng.choice(["east", "west"], n),
        "amount": amount,
        "country": country,
        "plan": rng.choice(["free", "pro", "team", "enterprise"], n, p=[0.5, 0.3, 0.15, 0.05]),
        "latency_ms": np.round(rng.gamma(2.0, 40.0, n), 2),
        "converted": rng.uniform(size=n) < 0.2,
        "revenue": np.round(rng.uniform(0, 30, n), 2),
        "user_id": rng.integers(0, n // 3, n),
        "note": ["x"] * n,
    })


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    rng = np.random.default_rng(13)
    data = pd.concat([
        events_day(rng, 0, 300, ["DE", "FR", "US"]),
        events_day(rng, 1, 300, ["DE", "FR", "US", "NL"]),
        events_day(rng, 2, 400, ["DE", "FR", "US", "BR", "JP"]),  # BR and JP are new
        events_day(rng, 3, 200, ["DE", "US"]),
    ], ignore_index=True)
    root = make_project(tmp_path_factory.mktemp("quality"), MONITOR, {"events": data}, kpi_macros=True)
    sql(root, f"UPDATE events SET amount = 'NaN'::DOUBLE WHERE amount = {NAN_MARKER}")
    data.loc[data.amount == NAN_MARKER, "amount"] = np.nan  # NaN counts as null
    first = api.run(root, at=START + 3 * DAY + HOUR)
    # the table changes between runs: a column added, one removed, one retyped
    sql(root, "ALTER TABLE events ADD COLUMN channel VARCHAR")
    sql(root, "ALTER TABLE events DROP COLUMN note")
    sql(root, "ALTER TABLE events ALTER latency_ms TYPE BIGINT USING round(latency_ms)")
    second = api.run(root, at=START + 4 * DAY + HOUR)
    assert [o.status for o in first.outcomes + second.outcomes] == ["success"] * 2, [o.error for o in first.outcomes + second.outcomes]
    return results(root), data


def window_rows(data: pd.DataFrame, window_start, segment: str | None) -> pd.DataFrame:
    rows = data[(data.ts >= window_start) & (data.ts < window_start + DAY)]
    return rows if segment is None else rows[rows.region == segment]


def each_row(frame: pd.DataFrame, check: str, window_start=START + 2 * DAY):
    rows = frame[(frame.check_name == check) & (frame.window_start == window_start)]
    assert len(rows) >= 3, f"{check}: {len(rows)} rows"
    for row in rows.itertuples():
        yield pd.Series(row._asdict()), None if pd.isna(row.segment_value) else row.segment_value


def top_categories(values: pd.Series, size: int) -> set[str]:
    counts = values.dropna().value_counts().reset_index()
    counts.columns = ["value", "n"]
    return set(counts.sort_values(["n", "value"], ascending=[False, True]).value.head(size))


# -- quality ------------------------------------------------------------------------------------------


EXPECTED = {
    "quality_null_rate": lambda x: float(x.isna().mean()),
    "quality_distinct_count": lambda x: float(x.dropna().nunique()),
    "quality_mean": lambda x: float(x.dropna().mean()),
    "quality_stddev": lambda x: float(np.std(x.dropna().to_numpy(), ddof=1)),  # the sample standard deviation
    "quality_min": lambda x: float(x.dropna().min()),
    "quality_max": lambda x: float(x.dropna().max()),
    "quality_out_of_range_rate": lambda x: float(((x.dropna() < 0) | (x.dropna() > 100)).mean()),
}


@pytest.mark.parametrize("check", sorted(EXPECTED))
def test_column_metric_equals_numpy(case, check):
    frame, data = case
    for row, segment in each_row(frame, check):
        values = window_rows(data, row.window_start, segment)[row.column_name]
        assert_value(row, EXPECTED[check](values))


def test_row_count_per_segment(case):
    frame, data = case
    for row, segment in each_row(frame, "quality_row_count"):
        assert_value(row, float(len(window_rows(data, row.window_start, segment))))


def test_new_category_rate_against_the_reference_categories(case):
    frame, data = case
    reference = data[data.ts < START + 2 * DAY]
    known = {
        ("quality_new_category_rate", "country"): set(reference.country.dropna()),  # from the drift bins
        ("quality_new_category_rate", "plan"): set(reference.plan),  # from its own reference query
        ("new_top_plans", "plan"): top_categories(reference.plan, 2),  # bounded to the top 2
    }
    for (check, column), categories in known.items():
        for row, segment in each_row(frame[frame.column_name == column], check):
            values = window_rows(data, row.window_start, segment)[column].dropna()
            assert_value(row, float((~values.isin(categories)).mean()))
    overall = result(frame[(frame.check_name == "quality_new_category_rate") & (frame.column_name == "country")], START + 2 * DAY)
    assert value_of(overall) > 0  # BR and JP


def test_freshness_is_measured_on_the_whole_source(case):
    frame, data = case
    for window, now in ((START + 2 * DAY, START + 3 * DAY + HOUR), (START + 3 * DAY, START + 4 * DAY + HOUR)):
        row = result(frame[frame.check_name == "quality_freshness_hours"], window)
        newest = data.ts[data.ts <= now].max()
        assert_value(row, (now - newest).total_seconds() / 3600)
        assert row.status == ("fail" if value_of(row) > 6 else "ok")
    assert frame[frame.check_name == "quality_freshness_hours"].segment_value.isna().all()  # overall only


def test_schema_change_lists_what_changed_since_the_previous_run(case):
    frame, _ = case
    first = result(frame[frame.check_name == "quality_schema_change"], START + 2 * DAY)
    assert first.status == "insufficient_data" and first.reason == "no_previous_run"
    second = result(frame[frame.check_name == "quality_schema_change"], START + 3 * DAY)
    assert value_of(second) == 3.0 and second.status == "fail"
    assert second.details["added"] == ["channel"]
    assert second.details["removed"] == ["note"]
    assert second.details["retyped"] == {"latency_ms": ["float64", "int64"]}


# -- infinities and NaN ------------------------------------------------------------------------------------

INF, NAN = math.inf, math.nan

SENSORS = """
name: sensors
source: {table: %s, timestamp: ts}
schedule: {every: 1d}
reference: {start: 2024-03-01, end: 2024-03-02}
segments: [region]
min_rows: 1
checks:
  - quality: {metric: mean, columns: [reading, huge, tiny]}
  - quality: {metric: stddev, columns: [reading, huge, tiny]}
  - quality: {metric: min, columns: [reading, huge]}
  - quality: {metric: max, columns: [reading, huge]}
  - quality: {metric: out_of_range_rate, columns: [reading], min: -100, max: 100}
"""
# per region: how many ordinary values, and the special ones mixed in (None is SQL null)
SENSOR_REGIONS = {
    "east": (200, [INF, INF, INF, -INF, -INF, NAN, NAN, NAN, NAN, None, None, None]),
    "west": (150, [INF, NAN, NAN, 1e-200, -5e-300]),  # tiny values must not underflow an error either
    "polar": (1, [INF, -INF]),  # one finite value: a mean, no stddev
    "void": (0, [INF, NAN, None]),  # no finite value: no mean either
}
# Finite, but beyond ±1e150 (their squares, and PostgreSQL's sums, overflow): left out of mean and
# stddev like infinities. 1e150 itself is the limit, still in.
HUGE_VALUES = [1e200, -1e250, 1.7e308, 1.0000000000000002e150, 1e150]
SUMMABLE_LIMIT = 1e150
TINY = 1e-250  # ``tiny`` is ``reading`` times this: the squares of its deviations underflow to 0


def sensor_rows(rng, day: int) -> pa.Table:
    """Readings with ±inf, NaN and nulls per region; ``huge`` is the same times 1000, with some of
    east's ordinary values replaced by ``HUGE_VALUES``; ``tiny`` the same times ``TINY``. Arrow
    keeps NaN and null apart."""
    columns = {"ts": [], "region": [], "reading": [], "huge": [], "tiny": []}
    for region, (n, specials) in SENSOR_REGIONS.items():
        values = [float(v) for v in np.round(rng.normal(20, 40, n), 2)] + specials
        order = rng.permutation(len(values))
        reading = [values[i] for i in order]
        huge = [v if v is None else v * 1000 for v in reading]
        if region == "east":
            ordinary = [i for i, v in enumerate(huge) if v is not None and math.isfinite(v)]
            for position, value in zip(ordinary, HUGE_VALUES):
                huge[position] = value
        columns["ts"] += list(START + day * DAY + pd.to_timedelta(rng.uniform(0, 86399, len(values)).round(), unit="s"))
        columns["region"] += [region] * len(values)
        columns["reading"] += reading
        columns["huge"] += huge
        columns["tiny"] += [v if v is None else v * TINY for v in reading]
    return pa.table({
        "ts": pa.array(columns["ts"], pa.timestamp("us")),
        "region": pa.array(columns["region"], pa.string()),
        "reading": pa.array(columns["reading"], pa.float64()),
        "huge": pa.array(columns["huge"], pa.float64()),
        "tiny": pa.array(columns["tiny"], pa.float64()),
    })


def sensor_data() -> pa.Table:
    rng = np.random.default_rng(17)
    return pa.concat_tables([sensor_rows(rng, 0), sensor_rows(rng, 1)])


def present(values: pd.Series) -> np.ndarray:
    """The values that count: not null, not NaN; ±inf included."""
    array = values.to_numpy(dtype=float)
    return array[~np.isnan(array)]


def summable(values: np.ndarray) -> np.ndarray:
    """What mean and stddev read (SPEC §6): the values within ±1e150, so neither ±inf nor huge ones."""
    return values[np.abs(values) <= SUMMABLE_LIMIT]


def expected_sensor(metric: str, column: str, values: pd.Series) -> float | None:
    """numpy over the values within ±1e150 for mean and stddev (ddof=1: the sample standard
    deviation). For ``tiny`` numpy's squares of the deviations underflow to 0 as the warehouse's
    do, so its stddev is 0: the documented limit."""
    values = present(values)
    kept = summable(values)
    if metric in ("mean", "stddev"):
        if len(kept) < (1 if metric == "mean" else 2):
            return None
        return float(np.mean(kept) if metric == "mean" else np.std(kept, ddof=1))
    if metric == "out_of_range_rate":
        return float(((values < -100) | (values > 100)).mean())
    return float(values.min() if metric == "min" else values.max())  # ±inf are the true extremes


def assert_sensor_results(frame: pd.DataFrame, data: pd.DataFrame) -> None:
    window = START + DAY
    compared = 0
    for row in frame[frame.window_start == window].itertuples():
        row = pd.Series(row._asdict())
        segment = None if pd.isna(row.segment_value) else row.segment_value
        rows = window_rows(data, window, segment)
        metric, values = row.metric, rows[row.column_name]
        expected = expected_sensor(metric, row.column_name, values)
        assert_value(row, expected)
        if row.column_name == "tiny" and expected is not None:  # relative: 0 is within 1e-9 of 1e-248
            assert math.isclose(value_of(row), expected, rel_tol=1e-9), (row.check_name, row.segment_value)
        infinite = int(np.isinf(present(values)).sum())
        if metric in ("mean", "stddev"):
            kept = len(summable(present(values)))
            assert row.n_current == kept
            assert row.details["infinite_values"] == infinite and row.details["non_null"] == len(present(values))
            assert row.details["huge_values"] == len(present(values)) - infinite - kept
        else:
            assert row.n_current == len(present(values)) and "infinite_values" not in row.details
        compared += 1
    assert compared == 11 * 5  # eleven checked columns, overall + four regions
    by_key = {(r.metric, r.column_name, r.segment_value): r for r in frame[frame.window_start == window].itertuples()}
    assert by_key[("mean", "reading", "void")].reason == "no_values"
    assert by_key[("mean", "reading", "void")].details["explanation"] == "no finite values within ±1e150"
    assert by_key[("stddev", "reading", "polar")].details["explanation"] == "fewer than two finite values within ±1e150"
    assert by_key[("mean", "reading", "polar")].details["infinite_values"] == 2
    assert by_key[("stddev", "huge", "east")].details["huge_values"] == 4  # 1e150 itself is in
    assert by_key[("stddev", "tiny", "east")].value == 0.0  # the squares underflow, without an error
    assert by_key[("min", "reading", "polar")].value == -INF and by_key[("max", "huge", "void")].value == INF


def sensor_frame(table: pa.Table) -> pd.DataFrame:
    """The rows as pandas, NaN and null both NaN (both are left out alike)."""
    data = table.to_pandas()
    data["ts"] = data.ts.astype("datetime64[ns]")
    return data


def test_infinities_and_nan_on_duckdb(tmp_path):
    """A ±inf in a column failed the window's one query on DuckDB (STDDEV_SAMP out of range);
    mean and stddev are now over the finite values, min and max keep ±inf."""
    table = sensor_data()
    root = make_project(tmp_path, SENSORS % "sensors", {"sensors": table})
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:  # NaN really is NaN in the table
        assert con.execute("SELECT count(*) FROM sensors WHERE isnan(reading)").fetchone()[0] > 0
    summary = api.run(root, at=START + 2 * DAY + HOUR)
    assert [o.status for o in summary.outcomes] == ["success"], [o.error for o in summary.outcomes]
    assert_sensor_results(results(root), sensor_frame(table))


@pytest.mark.postgres
def test_infinities_and_nan_on_postgres(tmp_path, postgres_url):
    import ibis

    suffix = uuid.uuid4().hex[:8]
    name, schema = f"sensors_{suffix}", f"driftline_{suffix}"
    table = sensor_data()
    con = ibis.connect(postgres_url)
    try:
        loaded = con.create_table(name, table)
        assert loaded.reading.isnan().sum().execute() > 0  # NaN, not null, reached PostgreSQL
        root = make_project(tmp_path, SENSORS % name, connection=postgres_url, results_schema=schema)
        summary = api.run(root, at=START + 2 * DAY + HOUR)
        assert [o.status for o in summary.outcomes] == ["success"], [o.error for o in summary.outcomes]
        assert_sensor_results(results(root), sensor_frame(table))
    finally:
        con.drop_table(name, force=True)
        con.raw_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        con.disconnect()


# -- latency and custom metrics ---------------------------------------------------------------------


@pytest.mark.parametrize("check, quantile", [("latency_latency_ms_p95", 0.95), ("latency_latency_ms_p99", 0.99)])
def test_latency_quantile_is_linear_interpolation(case, check, quantile):
    frame, data = case
    for row, segment in each_row(frame, check):
        values = window_rows(data, row.window_start, segment).latency_ms.to_numpy()
        assert_value(row, float(np.quantile(values, quantile)))
        assert row.metric == "latency" and row.column_name == "latency_ms"


KPIS = {
    "conversion_rate": lambda rows: float(rows.converted.mean()),
    "revenue_per_user": lambda rows: float(rows.revenue.sum() / rows.user_id.nunique()),
    "big_orders": lambda rows: float((rows.revenue > 20).mean() * 100),
}


@pytest.mark.parametrize("name", sorted(KPIS))
def test_custom_metric_with_shipped_macros(case, name):
    frame, data = case
    for row, segment in each_row(frame, name):
        assert_value(row, KPIS[name](window_rows(data, row.window_start, segment)))
        assert row.check_type == "metric" and row.metric == name


# -- validation ----------------------------------------------------------------------------------------


BROKEN = {
    "wrong_task": """
        name: wrong_task
        source: {table: events, timestamp: ts}
        model: {task: regression, prediction: amount, label: revenue}
        schedule: {every: 1d}
        reference: {trailing: 7d}
        checks:
          - performance:
              metric: roc_auc
        """,
    "no_model": """
        name: no_model
        source: {table: events, timestamp: ts}
        schedule: {every: 1d}
        reference: {trailing: 7d}
        checks:
          - performance: {metric: accuracy}
          - fairness: {metric: demographic_parity_difference, group: region}
        """,
    "columns": """
        name: columns
        source: {table: events, timestamp: ts}
        model: {task: binary_classification, score: latency_ms, label: converted}
        schedule: {every: 1d}
        reference: {trailing: 7d}
        checks:
          - quality:
              metric: null_rate
              columns: [amout]
          - fairness:
              metric: disparate_impact
              group: regoin
          - latency:
              column: plan
          - quality:
              metric: freshness_hours
              warn: {rise: 2}
        """,
    "labels": """
        name: labels
        source: {table: events, timestamp: ts}
        model:
          task: binary_classification
          score: latency_ms
          labels:
            table: outcomez
            key: user_id
            column: converted
        schedule: {every: 1d}
        reference: {trailing: 7d}
        checks:
          - performance: {metric: recall}
        """,
    "label_columns": """
        name: label_columns
        source: {table: events, timestamp: ts}
        model:
          task: binary_classification
          score: latency_ms
          labels:
            table: outcomes
            key: user_idx
            column: convertd
        schedule: {every: 1d}
        reference: {trailing: 7d}
        checks:
          - performance: {metric: recall}
        """,
    "metric_sql": """
        name: metric_sql
        source: {table: events, timestamp: ts}
        schedule: {every: 1d}
        reference: {trailing: 7d}
        checks:
          - metric:
              name: not_aggregate
              sql: revenue + 1
          - metric:
              name: misspelled
              sql: avg(revenu)
          - metric:
              name: two_statements
              sql: "sum(revenue); drop table events"
          - metric:
              name: unknown_macro
              sql: conversion_rat(converted)
          - metric:
              name: text
              sql: max(plan)
        """,
}


@pytest.fixture(scope="module")
def validation_errors(tmp_path_factory) -> str:
    rng = np.random.default_rng(1)
    events = events_day(rng, 0, 30, ["DE"])
    outcomes = pd.DataFrame({"user_id": [1, 2], "converted": [True, False]})
    root = make_project(tmp_path_factory.mktemp("broken"), list(BROKEN.values()), {"events": events, "outcomes": outcomes}, kpi_macros=True)
    with pytest.raises(ConfigErrors) as caught:
        api.validate(root)
    return str(caught.value)


def line_of(monitor: str, needle: str) -> int:
    """The 1-based line of ``needle`` in a monitor's YAML as written to its file."""
    import textwrap

    lines = textwrap.dedent(BROKEN[monitor]).lstrip("\n").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


@pytest.mark.parametrize("monitor, needle, message", [
    ("wrong_task", "metric: roc_auc", "metric roc_auc is not a regression metric; expected one of: mae, rmse, mape, r2, mean_error"),
    ("no_model", "- performance", "a performance check needs a `model` block"),
    ("no_model", "- fairness", "a fairness check needs a `model` block"),
    ("columns", "columns: [amout]", "column 'amout' not found in the source (did you mean 'amount'?)"),
    ("columns", "group: regoin", "column 'regoin' not found in the source (did you mean 'region'?)"),
    ("columns", "column: plan", "column 'plan' is string, not numeric"),
    ("columns", "warn: {rise: 2}", "warn: drop/rise compare with the reference window, but freshness_hours has no reference value"),
    ("labels", "table: outcomez", "model.labels.table: table 'outcomez' not found (did you mean 'outcomes'?)"),
    ("label_columns", "key: user_idx", "column 'user_idx' not found in the source (did you mean 'user_id'?)"),
    ("label_columns", "column: convertd", "column 'convertd' not found in labels table 'outcomes' (did you mean 'converted'?)"),
    ("metric_sql", "sql: revenue + 1", "metric not_aggregate: expected an aggregate expression"),
    ("metric_sql", "sql: avg(revenu)", "metric misspelled: unknown column 'revenu' (did you mean 'revenue'?)"),
    ("metric_sql", "sql: \"sum(revenue); drop", "metric two_statements: expected a single SQL expression"),
    ("metric_sql", "sql: conversion_rat(", "metric unknown_macro: unknown macro 'conversion_rat' (did you mean 'conversion_rate'?)"),
    ("metric_sql", "sql: max(plan)", "metric text: expected a number, got a string value"),
])
def test_validation_error_is_located_at_its_key(validation_errors, monitor, needle, message):
    file = f"m{list(BROKEN).index(monitor)}.yml"
    located = [line for line in validation_errors.splitlines() if f"{file}:{line_of(monitor, needle)}:" in line]
    assert any(message in line for line in located), f"{message!r} not at {file}:{line_of(monitor, needle)} in:\n{validation_errors}"


# -- SQL for every dialect ---------------------------------------------------------------------------------


EVERYTHING = [
    """
    name: binary
    source: {table: events, timestamp: ts, where: "plan <> 'free'"}
    model:
      task: binary_classification
      score: latency_ms
      threshold: 60
      labels: {table: outcomes, key: user_id, column: converted, delay: 1d}
    schedule: {every: 1d}
    reference: {trailing: 7d}
    segments: [region, plan]
    features: {numeric: [amount], categorical: [country]}
    checks:
      - drift: {columns: features}
      - performance: {metric: roc_auc, warn: {drop: 0.05}}
      - performance: {metric: log_loss}
      - performance: {metric: f1}
      - fairness: {metric: equalized_odds_difference, group: country}
      - fairness: {metric: disparate_impact, group: plan}
      - quality: {metric: null_rate}
      - quality: {metric: stddev, columns: [amount]}
      - quality: {metric: distinct_count, columns: [country]}
      - quality: {metric: out_of_range_rate, columns: [amount], min: 0}
      - quality: {metric: new_category_rate, columns: [country]}
      - quality: {metric: freshness_hours}
      - quality: {metric: schema_change}
      - latency: {column: latency_ms, quantile: 0.99}
      - metric: {name: conversion_rate, sql: conversion_rate(converted)}
      - metric: {name: revenue_per_user, sql: "revenue_per_user(revenue, user_id)"}
    """,
    """
    name: multiclass
    source: {table: events, timestamp: ts}
    model: {task: multiclass_classification, prediction: plan, label: country}
    schedule: {every: 1h}
    reference: {start: 2024-03-01, end: 2024-03-02}
    segments: [region]
    checks:
      - performance: {metric: macro_f1}
      - performance: {metric: accuracy}
    """,
    """
    name: regression
    source: {table: events, timestamp: ts}
    model: {task: regression, prediction: amount, label: revenue}
    schedule: {every: 1d}
    reference: {trailing: 7d}
    checks:
      - performance: {metric: r2}
      - performance: {metric: mape, fail: {rise: 0.1}}
    """,
]


@pytest.fixture(scope="module")
def compile_project(tmp_path_factory):
    rng = np.random.default_rng(4)
    events = events_day(rng, 0, 30, ["DE", "FR"])
    outcomes = pd.DataFrame({"user_id": [1, 2], "converted": [True, False]})
    return make_project(tmp_path_factory.mktemp("compile"), EVERYTHING, {"events": events, "outcomes": outcomes}, kpi_macros=True)


@pytest.mark.parametrize("dialect", dialects.DIALECTS)
def test_every_model_and_data_check_compiles(compile_project, dialect):
    text = api.compile(compile_project, dialect=dialect, at=START + 10 * DAY)
    sections = re.split(r"\n\n(?=-- )", text)
    model_sections = [s for s in sections if re.match(r"-- \[\d+/\d+\] model and data checks", s)]
    assert len(model_sections) == 3  # ONE query per monitor window, however many checks
    binary = model_sections[0]
    assert "outcomes" in binary and binary.count("UNION ALL") >= 4
