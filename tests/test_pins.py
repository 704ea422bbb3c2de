"""The dependency pins hold and work together.

ibis-framework 12.0.0 breaks with sqlglot 30 (DuckDB ``create_table`` issues ``DROP VIEW IF
EXISTS`` with an empty name) and with duckdb 2 (``fetch_arrow_table`` is gone); pyproject.toml pins
what works, and these tests fail as soon as an environment drifts from it.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import ibis
import pandas as pd
import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(text) for text in listed]


@pytest.mark.parametrize("requirement", requirements() + requirements("test"), ids=str)
def test_installed_versions_satisfy_pyproject(requirement):
    try:
        installed = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{requirement.name} is not installed; pyproject.toml asks for {requirement}")
    assert requirement.specifier.contains(installed, prereleases=True), f"{requirement.name} {installed} breaks {requirement}"


def test_the_known_bad_combinations_are_excluded():
    by_name = {r.name: r.specifier for r in requirements()}
    assert not by_name["sqlglot"].contains("30.0.0")
    assert not by_name["duckdb"].contains("2.0.0")
    assert by_name["ibis-framework"].contains("12.0.0")


def test_ibis_create_table_on_duckdb():
    con = ibis.duckdb.connect()
    try:
        empty = con.create_table("empty", schema=ibis.schema({"a": "int64", "b": "string", "t": "timestamp"}))
        assert empty.count().execute() == 0
        filled = con.create_table("filled", pd.DataFrame({"a": [1, 2, 3]}))
        assert filled.a.sum().execute() == 6
        replaced = con.create_table("filled", filled.mutate(b=filled.a * 2), overwrite=True)
        assert replaced.b.sum().execute() == 12
        temporary = con.create_table("from_expr", replaced.filter(replaced.a > 1), temp=True)
        assert temporary.count().execute() == 2
        assert sorted(con.list_tables()) == ["empty", "filled", "from_expr"]
    finally:
        con.disconnect()
