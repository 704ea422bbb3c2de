"""Macro files and user SQL: loading, validation with file:line, expansion on the syntax tree."""

from __future__ import annotations

import textwrap
from pathlib import Path

import ibis
import pandas as pd
import pytest
from sqlglot import exp

from driftline.errors import ConfigError, ConfigErrors, Location
from driftline.macros import Macro, contains_aggregate, load_macros, parse_expression, parse_macro, referenced_columns
from driftline.sql_to_ibis import to_ibis

REPO = Path(__file__).resolve().parents[1]
HERE = Location("monitors/leads.yml", 7, 10)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> dict[str, Macro]:
    return load_macros([write(tmp_path, "macros.yml", text)])


def error_of(function, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        function(*args, **kwargs)
    return str(caught.value)


def parse(sql: str, macros: dict[str, Macro] | None = None) -> exp.Expression:
    return parse_expression(sql, macros=macros or {}, location=HERE, what="where")


@pytest.fixture
def kpi() -> dict[str, Macro]:
    return load_macros([REPO / "macros" / "kpi.yml"])


# ---------------------------------------------------------------------------------------------
# Loading macro files


def test_loads_args_body_and_location(tmp_path):
    macros = load(
        tmp_path,
        """
        # KPIs
        macros:
          conversion_rate:
            args: [flag]
            sql: avg(case when {flag} then 1.0 else 0.0 end)
        """,
    )
    macro = macros["conversion_rate"]
    assert macro.args == ("flag",)
    assert macro.location == Location(str(tmp_path / "macros.yml"), 3, 3)
    assert isinstance(macro.body, exp.Avg)


def test_shipped_kpi_file_loads(kpi):
    assert {"conversion_rate", "rate", "revenue_per_user", "share_above", "mean_abs_error"} <= set(kpi)
    assert kpi["revenue_per_user"].args == ("revenue", "user_id")
    for macro in kpi.values():
        assert contains_aggregate(macro.body), macro.name


def test_empty_file_and_empty_mapping_have_no_macros(tmp_path):
    assert load_macros([write(tmp_path, "a.yml", ""), write(tmp_path, "b.yml", "macros:\n")]) == {}


def test_block_scalar_body(tmp_path):
    macros = load(
        tmp_path,
        """
        macros:
          spread:
            args: [x]
            sql: |
              max({x})
                - min({x})
        """,
    )
    assert macros["spread"].body.sql() == "MAX(__driftline_arg_x) - MIN(__driftline_arg_x)"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("macros:\n  Bad-Name:\n    sql: '1'\n", "2:3", "bad macro name 'Bad-Name'"),
        ("macros:\n  avg:\n    args: [x]\n    sql: sum({x})\n", "2:3", "'avg' is already a SQL function"),
        ("macros:\n  m:\n    args: [x]\n    sq: avg({x})\n", "4:5", "unknown key 'sq' (did you mean 'sql'?)"),
        ("macro:\n  m:\n    sql: '1'\n", "1:1", "unknown key 'macro' (did you mean 'macros'?)"),
        ("macros:\n  m:\n    args: [x]\n", "2:3", "expected key 'sql'"),
        ("macros:\n  m:\n    args: x\n    sql: avg({x})\n", "3:11", "args: expected a list"),
        ("macros:\n  m:\n    args: [x, x]\n    sql: avg({x})\n", "4:10", "argument 'x' is listed twice"),
        ("macros:\n  m:\n    args: [x]\n    sql: avg({y})\n", "4:10", "sql uses {y}, which is not in args (x)"),
        ("macros:\n  m:\n    args: [x, y]\n    sql: avg({x})\n", "4:10", "argument 'y' is declared in args but sql never uses {y}"),
        ("macros:\n  m:\n    args: [x]\n    sql: \"'{x}'\"\n", "4:10", "{x} must stand where a value goes"),
        ("macros:\n  m:\n    args: [x]\n    sql: avg({x}); drop table t\n", "4:10", "found a statement ';' followed by 'drop'"),
        ("macros:\n  m:\n    args: [x]\n    sql: select {x}\n", "4:10", "found a SELECT statement"),
        ("macros:\n  m:\n    args: [x]\n    sql: avg({x}\n", "4:10", "invalid SQL: Expecting )"),
        ("macros:\n  m: [1, 2]\n", "2:3", "expected a mapping with keys args and sql"),
        ("- a\n- b\n", "1:1", "expected a mapping with a top-level 'macros:' key"),
        ("macros:\n  m: {sql: '1'\n", "3:1", "invalid YAML"),
    ],
)
def test_bad_macro_files_point_at_file_line_column(tmp_path, text, where, message):
    path = tmp_path / "macros.yml"
    path.write_text(text, encoding="utf-8")
    error = error_of(load_macros, [path])
    assert error.startswith(f"{path}:{where}: "), error
    assert message in error
    assert "\n" not in error


def test_a_keyword_as_macro_name_is_one_error_and_nothing_else(tmp_path, caplog):
    """``comment`` is a statement keyword: sqlglot logs a warning of its own while parsing it."""
    path = tmp_path / "macros.yml"
    path.write_text("macros:\n  comment:\n    args: [x]\n    sql: avg({x})\n", encoding="utf-8")
    assert "'comment' is already a SQL function or keyword" in error_of(load_macros, [path])
    assert caplog.records == []


def test_duplicate_names_across_files(tmp_path):
    first = write(tmp_path, "a.yml", "macros:\n  m:\n    sql: count(*)\n")
    second = write(tmp_path, "b.yml", "# other\nmacros:\n  m:\n    sql: count(*)\n")
    error = error_of(load_macros, [first, second])
    assert error == f"{second}:3:3: duplicate macro 'm' (first defined at {first}:2:3) — rename one"


def test_duplicate_names_within_a_file(tmp_path):
    path = write(tmp_path, "a.yml", "macros:\n  m:\n    sql: count(*)\n  m:\n    sql: count(*)\n")
    assert error_of(load_macros, [path]).startswith(f"{path}:4:3: duplicate macro 'm'")


def test_every_problem_is_reported_one_per_line(tmp_path):
    path = write(
        tmp_path,
        "a.yml",
        """
        macros:
          one:
            sql: avg(
          two:
            args: [x]
            sql: sum(1)
        """,
    )
    with pytest.raises(ConfigErrors) as caught:
        load_macros([path])
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:3:10: macro 'one': invalid SQL")
    assert lines[1].startswith(f"{path}:6:10: macro 'two': argument 'x' is declared")


# ---------------------------------------------------------------------------------------------
# Nested macros, arity and cycles


NESTED = """
macros:
  conversion_rate:
    args: [flag]
    sql: avg(case when {flag} then 1.0 else 0.0 end)
  pro_conversion:
    args: [flag]
    sql: conversion_rate(plan = 'pro' and {flag})
  lift:
    args: [flag, base]
    sql: pro_conversion({flag}) / {base}
"""


def test_nested_macros_expand_recursively(tmp_path):
    macros = load(tmp_path, NESTED)
    expanded = parse("lift(converted, 0.5)", macros)
    assert expanded.sql() == "AVG(CASE WHEN (plan = 'pro' AND converted) THEN 1.0 ELSE 0.0 END) / 0.5"
    assert not list(expanded.find_all(exp.Anonymous))


def test_macro_names_are_case_insensitive_in_calls(tmp_path):
    macros = load(tmp_path, NESTED)
    assert parse("Conversion_Rate(x)", macros) == parse("conversion_rate(x)", macros)


def test_arity_error_at_use(tmp_path):
    macros = load(tmp_path, NESTED)
    error = error_of(parse, "conversion_rate(a, b)", macros)
    assert error == "monitors/leads.yml:7:10: where: macro 'conversion_rate' takes 1 argument (flag), got 2"


def test_arity_error_inside_a_macro_is_found_at_load(tmp_path):
    path = write(
        tmp_path,
        "a.yml",
        "macros:\n  one:\n    args: [x]\n    sql: avg({x})\n  two:\n    args: [x]\n    sql: one({x}, {x})\n",
    )
    assert error_of(load_macros, [path]) == f"{path}:5:3: macro 'two': macro 'one' takes 1 argument (x), got 2"


def test_unknown_macro_inside_a_macro_is_found_at_load(tmp_path):
    path = write(tmp_path, "a.yml", "macros:\n  one:\n    args: [x]\n    sql: avg({x})\n  two:\n    sql: onne(y)\n")
    assert error_of(load_macros, [path]) == f"{path}:5:3: macro 'two': unknown macro 'onne' (did you mean 'one'?)"


def test_cycles_are_rejected_at_load(tmp_path):
    path = write(
        tmp_path,
        "a.yml",
        """
        macros:
          ping:
            args: [x]
            sql: pong({x}) + 1
          pong:
            args: [x]
            sql: ping({x}) * 2
          self:
            sql: self() + 1
        """,
    )
    with pytest.raises(ConfigErrors) as caught:
        load_macros([path])
    assert [str(error) for error in caught.value.errors] == [
        f"{path}:2:3: macro 'ping': macro cycle ping -> pong -> ping — a macro cannot call itself, directly or through others",
        f"{path}:5:3: macro 'pong': macro cycle pong -> ping -> pong — a macro cannot call itself, directly or through others",
        f"{path}:8:3: macro 'self': macro cycle self -> self — a macro cannot call itself, directly or through others",
    ]


def test_a_macro_may_be_called_twice_without_being_a_cycle(tmp_path):
    macros = load(tmp_path, NESTED)
    assert parse("conversion_rate(a) - conversion_rate(conversion_rate(b) > 0)", macros) is not None


def test_unknown_macro_suggests_a_close_name(tmp_path):
    macros = load(tmp_path, NESTED)
    error = error_of(parse, "conversion_rte(converted)", macros)
    assert error == "monitors/leads.yml:7:10: where: unknown macro 'conversion_rte' (did you mean 'conversion_rate'?)"


def test_unknown_function_without_close_name():
    error = error_of(parse, "frobnicate(x)")
    assert error.endswith("unknown macro or function 'frobnicate' — define it in macros/*.yml or use a supported SQL function")


# ---------------------------------------------------------------------------------------------
# Only a single expression is accepted


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("1=1; drop table x", "expected a single SQL expression, found a statement ';' followed by 'drop' — remove everything after the expression"),
        ("a = 1;", "found a trailing ';'"),
        ("select 1", "expected a single SQL expression, found a SELECT statement"),
        ("(select max(a) from t)", "subqueries are not allowed"),
        ("a > (select max(a) from t)", "subqueries are not allowed"),
        ("a in (select a from t)", "subqueries are not allowed"),
        ("exists (select 1)", "subqueries are not allowed"),
        ("drop table x", "found a DROP statement"),
        ("create table t (a int)", "found a CREATE statement"),
        ("insert into t values (1)", "found an INSERT statement"),
        ("delete from t", "found a DELETE statement"),
        ("update t set a = 1", "found an UPDATE statement"),
        ("row_number() over (order by a)", "window functions (OVER ...) are not allowed"),
        ("a as b", "unexpected alias 'b'"),
        ("a b", "unexpected alias 'b'"),
        ("a = (1", "invalid SQL: Expecting ) near '1'"),
        ("a = 'open", "invalid SQL"),
        ("   ", "expected a SQL expression, found an empty string"),
        ("-- nothing", "expected a SQL expression, found only a comment"),
    ],
)
def test_anything_but_one_expression_is_rejected(sql, message):
    error = error_of(parse, sql)
    assert error.startswith("monitors/leads.yml:7:10: where: ")
    assert message in error
    assert "\n" not in error


def test_a_semicolon_inside_a_string_is_just_text():
    assert parse("note = 'a;b'").expression.this == "a;b"


# ---------------------------------------------------------------------------------------------
# Arguments are substituted as trees, with their own precedence


def test_argument_keeps_its_precedence(kpi):
    expanded = parse("conversion_rate(a = 1 or b = 1)", kpi)
    condition = expanded.find(exp.If).this
    assert isinstance(condition.unnest(), exp.Or)
    assert expanded.sql() == "AVG(CASE WHEN (a = 1 OR b = 1) THEN 1.0 ELSE 0.0 END)"


def test_negated_argument_negates_all_of_it():
    negate = parse_macro("negate", ["x"], "not {x}", location=HERE)
    expanded = parse("negate(a or b)", {"negate": negate})
    assert expanded.sql() == "NOT (a OR b)"
    assert isinstance(expanded.this.unnest(), exp.Or)


def test_arithmetic_argument_keeps_its_precedence():
    double = parse_macro("double", ["x"], "{x} * 2", location=HERE)
    assert parse("double(a + 1)", {"double": double}).sql() == "(a + 1) * 2"


def test_conversion_rate_of_an_or_evaluates_like_pandas(kpi):
    frame = pd.DataFrame(
        {
            "a": pd.array([1, 2, None, 1, 3, None, 2, 4], dtype="Int64"),
            "b": pd.array([0, 1, 1, None, 0, None, 2, 1], dtype="Int64"),
        }
    )
    table = ibis.duckdb.connect().create_table("t", frame)
    value = to_ibis(parse("conversion_rate(a = 1 or b = 1)", kpi), table, location=HERE)
    either = ((frame["a"] == 1) | (frame["b"] == 1)).fillna(False).astype(float)
    assert value.execute() == pytest.approx(either.mean())
    # A text paste would give 'a = 1 or b = 1 then ...' inside NOT or AND: check one of those too.
    negated = to_ibis(parse("conversion_rate(not (a = 1 or b = 1))", kpi), table, location=HERE)
    neither = (~((frame["a"] == 1) | (frame["b"] == 1))).fillna(False).astype(float)
    assert negated.execute() == pytest.approx(neither.mean())


def test_shipped_macros_evaluate_like_pandas(kpi):
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3, 3, 3, 4, None],
            "revenue": [10.0, 5.0, None, 2.5, 0.0, 7.5, 1.0, 4.0],
            "y": [1.0, 2.0, 3.0, None, 5.0, 6.0, 7.0, 8.0],
            "yhat": [1.5, 1.0, 3.0, 4.0, None, 6.5, 9.0, 7.0],
            "converted": pd.array([True, False, None, True, False, True, None, False], dtype="boolean"),
        }
    )
    table = ibis.duckdb.connect().create_table("t", frame)

    def evaluate(sql: str) -> float:
        return to_ibis(parse(sql, kpi), table, location=HERE).execute()

    converted = frame["converted"]
    assert evaluate("conversion_rate(converted)") == pytest.approx(converted.fillna(False).astype(float).mean())
    assert evaluate("rate(converted)") == pytest.approx(converted.dropna().astype(float).mean())
    assert evaluate("revenue_per_user(revenue, user_id)") == pytest.approx(frame["revenue"].sum() / frame["user_id"].nunique())
    assert evaluate("share_above(revenue, 4)") == pytest.approx((frame["revenue"].dropna() > 4).mean())
    assert evaluate("mean_abs_error(y, yhat)") == pytest.approx((frame["y"] - frame["yhat"]).abs().mean())
    assert evaluate("ratio_of_sums(revenue, y)") == pytest.approx(frame["revenue"].sum() / frame["y"].sum())


# ---------------------------------------------------------------------------------------------
# Questions about an expression


def test_referenced_columns_after_expansion(kpi):
    expanded = parse("revenue_per_user(amount * fx_rate, user_id)", kpi)
    assert referenced_columns(expanded) == {"amount", "fx_rate", "user_id"}


@pytest.mark.parametrize(
    ("sql", "aggregates"),
    [
        ("count(*)", True),
        ("sum(x) / count(distinct y)", True),
        ("conversion_rate(x)", True),
        ("x > 1 and y is not null", False),
        ("coalesce(x, 0) + abs(y)", False),
    ],
)
def test_contains_aggregate(kpi, sql, aggregates):
    assert contains_aggregate(parse(sql, kpi)) is aggregates

