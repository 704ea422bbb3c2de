"""SQL → ibis translation: evaluated on DuckDB against pandas, and compiled for every SQL dialect.

pyspark is left out of the compile tests: ``ibis.to_sql(..., dialect="pyspark")`` needs a Spark
session.
"""

from __future__ import annotations

import doctest
import math

import ibis
import numpy as np
import pandas as pd
import pytest
import sqlglot

import driftline.sql_to_ibis
from driftline.errors import ConfigError, Location
from driftline.macros import parse_expression
from driftline.sql_to_ibis import SUPPORTED, to_ibis

HERE = Location("monitors/leads.yml", 9, 12)
DIALECTS = ["duckdb", "postgres", "snowflake", "bigquery", "trino", "databricks", "clickhouse"]

FRAME = pd.DataFrame(
    {
        "id": range(10),
        "region": ["eu", "us", None, "eu", "apac", "us", "eu", None, "us", "eu"],
        "amount": [10.0, 0.0, 5.5, None, -3.0, 100.0, 7.25, 2.0, None, 1.0],
        "qty": pd.array([1, 0, 2, 3, None, 4, 0, 5, 1, 2], dtype="Int64"),
        "converted": pd.array([True, False, None, True, False, True, None, False, True, False], dtype="boolean"),
        "score": [0.9, 0.1, 0.4, 0.8, 0.3, 0.7, 0.6, 0.2, 0.95, 0.05],
        "name": [" Ann ", "bob", None, "Cid", "dee ", "EVE", "fay", "Gus", None, "hal"],
    }
)

# Nullable pandas columns, whose operators follow SQL's three-valued logic.
region = FRAME["region"].astype("string[python]")
amount = FRAME["amount"].astype("Float64")
qty = FRAME["qty"]
converted = FRAME["converted"]
score = FRAME["score"]
name = FRAME["name"].astype("string[python]")


def sql_null_where(values: pd.Series, missing: pd.Series) -> pd.Series:
    """``values`` with NULL wherever ``missing`` is true (pandas' isin and str.* treat NA as False)."""
    return values.astype("object").where(~missing, None)


ROW_CASES = {
    "amount + qty": amount + qty,
    "amount - 1": amount - 1,
    "amount * 2": amount * 2,
    "-amount": -amount,
    "qty % 2": qty % 2,
    "qty / 4": qty / 4,  # true division: 1 / 4 is 0.25, not 0
    "amount / qty": amount / qty.replace(0, pd.NA),  # dividing by zero gives NULL
    "amount > 5 and region = 'eu'": (amount > 5) & (region == "eu"),
    "amount > 5 or converted": (amount > 5) | converted,
    "not converted": ~converted,
    "region <> 'eu'": region != "eu",
    "score >= 0.5": score >= 0.5,
    "region in ('eu', 'us')": sql_null_where(region.isin(["eu", "us"]), region.isna()),
    "region not in ('eu')": sql_null_where(~region.isin(["eu"]), region.isna()),
    "amount between 0 and 10": (amount >= 0) & (amount <= 10),
    "amount not between 0 and 10": ~((amount >= 0) & (amount <= 10)),
    "amount is null": amount.isna(),
    "region is not null": region.notna(),
    "converted is true": converted.fillna(False),
    "converted is not false": ~(~converted).fillna(False),
    "amount is distinct from 0": ~(amount == 0).fillna(False) & ~amount.isna() | amount.isna(),
    "name like 'E%'": sql_null_where(name.str.startswith("E"), name.isna()),
    "name ilike 'e%'": sql_null_where(name.str.lower().str.startswith("e"), name.isna()),
    "name not like '%e%'": sql_null_where(~name.str.contains("e"), name.isna()),
    "case when amount > 5 then 'big' when amount > 0 then 'small' else 'other' end": pd.Series(
        np.select([(amount > 5).fillna(False), (amount > 0).fillna(False)], ["big", "small"], "other")
    ),
    "case region when 'eu' then 1 when 'us' then 2 end": region.map({"eu": 1, "us": 2}),
    "if(converted, 1, 0)": converted.map({True: 1, False: 0}).where(converted.notna(), 0),
    "cast(qty as double)": qty.astype("Float64"),
    "cast(qty as varchar)": sql_null_where(qty.astype("string"), qty.isna()),
    "try_cast(region as int)": pd.Series([None] * 10),
    "qty::bigint + 1": qty + 1,
    "coalesce(amount, qty, 0)": amount.fillna(qty.astype("Float64")).fillna(0),
    "nullif(qty, 0)": qty.replace(0, pd.NA),
    "abs(amount)": amount.abs(),
    "round(score, 1)": np.sign(score) * np.floor(score.abs() * 10 + 0.5) / 10,  # SQL: ties away from zero
    "round(amount)": amount.round(0),
    "ln(score)": np.log(score),
    "log(score)": np.log10(score),
    "log(2, score)": np.log2(score),
    "exp(score)": np.exp(score),
    "sqrt(score)": np.sqrt(score),
    "power(score, 2)": score**2,
    "mod(qty, 3)": qty % 3,
    "least(score, 0.5)": np.minimum(score, 0.5),
    "greatest(score, 0.5, 0.25)": np.maximum(score, 0.5),
    "lower(name)": name.str.lower(),
    "upper(name)": name.str.upper(),
    "length(name)": name.str.len(),
    "trim(name)": name.str.strip(),
    "ltrim(name)": name.str.lstrip(),
    "rtrim(name)": name.str.rstrip(),
    "REGION = 'eu'": region == "eu",  # unquoted names match columns case-insensitively
}

AGGREGATE_CASES = {
    "count(*)": len(FRAME),
    "count(1)": len(FRAME),
    "count(amount)": amount.count(),
    "count(distinct region)": region.nunique(),
    "sum(amount)": amount.sum(),
    "avg(amount)": amount.mean(),
    "min(amount)": amount.min(),
    "max(amount)": amount.max(),
    "stddev(amount)": amount.std(ddof=1),
    "stddev_samp(amount)": amount.std(ddof=1),
    "stddev_pop(amount)": amount.std(ddof=0),
    "variance(amount)": amount.var(ddof=1),
    "var_samp(amount)": amount.var(ddof=1),
    "var_pop(amount)": amount.var(ddof=0),
    "avg(case when converted then 1.0 else 0.0 end)": converted.fillna(False).astype(float).mean(),
    "avg(case when converted then true else false end)": converted.fillna(False).astype(float).mean(),
    "avg(converted)": converted.dropna().astype(float).mean(),
    "sum(converted)": converted.sum(),
    "sum(amount) / count(distinct region)": amount.sum() / region.nunique(),
    "count(*) - count(amount)": amount.isna().sum(),
    "avg(amount / qty)": (amount / qty.replace(0, pd.NA)).mean(),
    "sum(qty) / sum(case when qty > 100 then qty else 0 end)": None,  # 0 denominator: NULL
    "min(region)": region.min(),
    "max(score) - min(score)": score.max() - score.min(),
}


@pytest.fixture(scope="module")
def table() -> ibis.Table:
    return ibis.duckdb.connect().create_table("leads", FRAME)


def translate(sql: str, table: ibis.Table) -> ibis.Value:
    tree = parse_expression(sql, macros={}, location=HERE, what="sql")
    return to_ibis(tree, table, location=HERE, what="sql")


def plain(value):
    """A Python value for comparison, with every kind of missing value as None."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, np.floating, int, float)):
        return float(value)
    return value


def same(actual, expected) -> bool:
    actual, expected = plain(actual), plain(expected)
    if isinstance(expected, float) and isinstance(actual, float):
        return actual == pytest.approx(expected, rel=1e-9, abs=1e-12)
    return actual == expected


def query(table: ibis.Table, sql: str) -> ibis.Table:
    value = translate(sql, table)
    if sql in AGGREGATE_CASES:
        return table.aggregate(value=value)
    return table.select("id", value=value).order_by("id")


# ---------------------------------------------------------------------------------------------
# Values agree with pandas


@pytest.mark.parametrize("sql", ROW_CASES)
def test_row_expression_matches_pandas(table, sql):
    actual = query(table, sql).execute()["value"].tolist()
    expected = ROW_CASES[sql].tolist()
    mismatches = [(i, a, e) for i, (a, e) in enumerate(zip(actual, expected)) if not same(a, e)]
    assert not mismatches, mismatches


@pytest.mark.parametrize("sql", AGGREGATE_CASES)
def test_aggregate_matches_pandas(table, sql):
    actual = query(table, sql).execute()["value"].iloc[0]
    assert same(actual, AGGREGATE_CASES[sql]), (actual, AGGREGATE_CASES[sql])


def test_where_predicate_filters_like_pandas(table):
    predicate = translate("region in ('eu', 'us') and coalesce(amount, 0) > 1", table)
    expected = FRAME[region.isin(["eu", "us"]).fillna(False) & (amount.fillna(0) > 1)]
    assert table.filter(predicate).execute()["id"].tolist() == expected["id"].tolist()


def test_division_is_float_even_for_integers(table):
    assert translate("qty / 4", table).type() == ibis.dtype("float64")
    assert translate("count(*) / 4", table).type() == ibis.dtype("float64")


# ---------------------------------------------------------------------------------------------
# Every expression compiles for every dialect


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_case_compiles(table, dialect):
    for sql in [*ROW_CASES, *AGGREGATE_CASES]:
        compiled = ibis.to_sql(query(table, sql), dialect=dialect)
        assert sqlglot.parse_one(compiled, read=dialect), sql


@pytest.mark.parametrize("dialect", DIALECTS)
def test_division_by_zero_is_null_in_the_sql(table, dialect):
    compiled = ibis.to_sql(query(table, "amount / qty"), dialect=dialect)
    assert "NULLIF" in compiled.upper()


def test_division_by_a_non_zero_literal_needs_no_nullif(table):
    assert "NULLIF" not in ibis.to_sql(query(table, "amount / 2"), dialect="postgres").upper()


# ---------------------------------------------------------------------------------------------
# Errors name the problem and what to do


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("regoin = 'eu'", "unknown column 'regoin' (did you mean 'region'?)"),
        ("nothing_like_it > 1", "unknown column 'nothing_like_it' (columns: id, region, amount, qty, converted, score, name)"),
        ('"REGION" = \'eu\'', "unknown column 'REGION' (did you mean 'region'?)"),
        ("leads.region = 'eu'", "qualified column 'leads.region' — refer to the source's columns by name only"),
        ("date_trunc('day', amount) > 1", "unsupported SQL function DATE_TRUNC in 'DATE_TRUNC('DAY', amount)'; supported: columns,"),
        ("region + 1", "+ expects a numeric value, got string from 'region'"),
        ("lower(amount)", "LOWER expects a string value, got float64 from 'amount'"),
        ("amount and converted", "AND expects a boolean value, got float64 from 'amount'"),
        ("amount is true", "IS expects a boolean value, got float64 from 'amount'"),
        ("case when amount > 1 then 1 else 'x' end", "cannot translate 'CASE WHEN amount > 1 THEN 1 ELSE 'x' END': Cannot compute precedence"),
        ("sum(amount) + qty", "column 'qty' is used outside an aggregate function — wrap it in one, e.g. avg(qty)"),
        ("sum(avg(amount))", "aggregate functions cannot be nested: 'SUM(AVG(amount))'"),
        ("sum(distinct amount)", "DISTINCT is supported in COUNT(DISTINCT x) only, not in SUM"),
        ("sum(1)", "SUM needs a column to aggregate, got the constant '1' — use COUNT(*) to count rows"),
        ("cast(amount as interval)", "cannot cast to INTERVAL; use one of:"),
        ("trim('x' from name)", "TRIM removes whitespace only"),
        ("name like 'a!%' escape '!'", "unsupported SQL construct ESCAPE"),
    ],
)
def test_errors(table, sql, message):
    with pytest.raises(ConfigError) as caught:
        translate(sql, table)
    error = str(caught.value)
    assert error.startswith("monitors/leads.yml:9:12: sql: ")
    assert message in error, error
    assert "\n" not in error


def test_supported_list_names_every_required_construct():
    for construct in ["CASE", "COALESCE", "COUNT(DISTINCT x)", "STDDEV_POP", "VAR_POP", "ILIKE", "BETWEEN", "TRY_CAST"]:
        assert construct in SUPPORTED


def test_to_ibis_without_what_has_no_prefix(table):
    tree = parse_expression("regoin = 1", macros={}, location=HERE, what="where")
    with pytest.raises(ConfigError) as caught:
        to_ibis(tree, table, location=HERE)
    assert str(caught.value) == "monitors/leads.yml:9:12: unknown column 'regoin' (did you mean 'region'?)"


def test_docstring_examples():
    assert doctest.testmod(driftline.sql_to_ibis).failed == 0
