"""Fixtures shared by driftline's tests.

``make_project`` writes a whole driftline project into a temporary directory (the project file,
monitors, macros) and loads tables into its DuckDB warehouse file::

    def test_something(make_project):
        project = make_project(
            monitors={"leads": LEADS_YAML},            # monitors/leads.yml
            tables={"leads": frame},                   # a pandas DataFrame or a pyarrow Table
            sql=["create view v as select * from leads"],
            macros={"kpi": "macros:\\n  ..."},          # macros/kpi.yml
            settings={"results": {"schema": "mon"}},   # merged into driftline_project.yml
        )
        summary = driftline.api.run(project.root, at="2026-01-10")
        runs = project.query("select * from driftline_runs")

Every connection the helpers open is closed again before they return, so a CLI subprocess can
open the same DuckDB file right after.

``postgres_url`` gives the URL of a PostgreSQL database for tests, from the environment variable
``DRIFTLINE_TEST_POSTGRES_URL`` (e.g. ``postgres://postgres@127.0.0.1:5432/test``); tests that
use it are skipped when it is not set.
"""

from __future__ import annotations

import contextlib
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import ibis
import pandas as pd
import pyarrow as pa
import pytest
import yaml

POSTGRES_URL_ENV = "DRIFTLINE_TEST_POSTGRES_URL"
WAREHOUSE_FILE = "warehouse.duckdb"


@dataclass
class ProjectDir:
    """A driftline project on disk, with its DuckDB warehouse file."""

    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / WAREHOUSE_FILE

    @property
    def url(self) -> str:
        """An absolute DuckDB URL to the warehouse, e.g. for ``--connection``."""
        return f"duckdb://{self.warehouse}"

    @contextlib.contextmanager
    def connect(self) -> Iterator[ibis.BaseBackend]:
        """An ibis connection to the warehouse, closed on exit."""
        con = ibis.duckdb.connect(str(self.warehouse))
        try:
            yield con
        finally:
            con.disconnect()

    def query(self, sql: str) -> pd.DataFrame:
        """The result of one SELECT against the warehouse."""
        with self.connect() as con:
            return con.con.execute(sql).df()

    def execute(self, *statements: str) -> None:
        """Run SQL statements against the warehouse (create, drop, insert ...)."""
        with self.connect() as con:
            for statement in statements:
                con.raw_sql(statement)

    def load(self, name: str, data: pd.DataFrame | pa.Table) -> None:
        """Create (or replace) table ``name`` from a frame or an arrow table.

        Arrow keeps SQL null and NaN apart in float columns; a pandas frame turns both into NaN.
        """
        with self.connect() as con:
            con.create_table(name, data, overwrite=True)

    def write_monitor(self, name: str, text: str) -> Path:
        """Write ``monitors/<name>.yml`` (the text is dedented) and return its path."""
        return _write(self.root / "monitors" / f"{name}.yml", text)

    def write_macros(self, name: str, text: str) -> Path:
        return _write(self.root / "macros" / f"{name}.yml", text)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def write_project(
    root: Path,
    monitors: Mapping[str, str] | None = None,
    tables: Mapping[str, pd.DataFrame | pa.Table] | None = None,
    sql: Sequence[str] = (),
    macros: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> ProjectDir:
    """Write a project into ``root`` and fill its warehouse; see the module docstring."""
    root.mkdir(parents=True, exist_ok=True)
    project_file = {"name": "test_project", "connection": f"duckdb://{WAREHOUSE_FILE}"}
    project_file.update(settings or {})
    (root / "driftline_project.yml").write_text(yaml.safe_dump(project_file, sort_keys=False), encoding="utf-8")
    (root / "monitors").mkdir(exist_ok=True)
    project = ProjectDir(root)
    for name, text in (monitors or {}).items():
        project.write_monitor(name, text)
    for name, text in (macros or {}).items():
        project.write_macros(name, text)
    for name, data in (tables or {}).items():
        project.load(name, data)
    if sql:
        project.execute(*sql)
    return project


def _project_maker(directory: Path):
    made = 0

    def make(**kwargs: Any) -> ProjectDir:
        nonlocal made
        made += 1
        return write_project(directory / ("project" if made == 1 else f"project{made}"), **kwargs)

    return make


@pytest.fixture
def make_project(tmp_path: Path):
    """A function writing a project into a fresh temporary directory (``tmp_path/project``,
    then ``project2`` ... on further calls); arguments as :func:`write_project`."""
    return _project_maker(tmp_path)


@pytest.fixture(scope="module")
def make_module_project(tmp_path_factory: pytest.TempPathFactory):
    """As ``make_project``, for a project that every test of a module shares (a costly setup
    such as a backfill that several tests then read)."""
    return _project_maker(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL URL from DRIFTLINE_TEST_POSTGRES_URL; skips the test when unset."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_URL_ENV}, e.g. postgres://postgres@127.0.0.1:5432/test")
    return url


# -- Slack ------------------------------------------------------------------------------------------


@pytest.fixture
def no_proxy(monkeypatch):
    """slack-sdk routes through HTTP(S)_PROXY when set; the fake Slack is on loopback."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def slack(no_proxy):
    """A fake Slack Web API and webhook endpoint on 127.0.0.1 (tests/slack_server.py)."""
    from slack_server import FakeSlack

    with FakeSlack() as server:
        yield server
