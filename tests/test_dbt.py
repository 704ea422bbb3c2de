"""dbt as a user has it: a dbt project (tests/dbt_project) built by dbt itself, whose manifest
names the relations monitors read (`source: {dbt: ...}`), whose profile is the connection
(`connection: dbt`), and which accepts the sources file `driftline dbt-sources` writes.

dbt runs as the user runs it, as a command; it is built once per session (it starts slowly). The
expected values are counted with pandas from the rows the test gave dbt to load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from driftline.cli import main

DBT_PROJECT = Path(__file__).parent / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
WINDOWS = pd.date_range("2026-09-05", "2026-09-09", freq="D")  # the days backfilled, each a window


def lead_rows() -> pd.DataFrame:
    """Nine days of scored leads, a different number each day, some visits unknown."""
    rng = np.random.default_rng(17)
    days = pd.date_range("2026-09-01", periods=9, freq="D")
    frames = []
    for i, day in enumerate(days):
        n = 120 + 15 * i
        frames.append(
            pd.DataFrame(
                {
                    "scored_at": day + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
                    "score": rng.beta(2, 5 + i % 3, n).round(4),
                    "visits": pd.array(rng.poisson(3 + i // 3, n), dtype="Int64"),
                    "region": rng.choice(["emea", "amer", "apac"], n),
                }
            )
        )
    leads = pd.concat(frames, ignore_index=True)
    leads.loc[rng.random(len(leads)) < 0.08, "visits"] = pd.NA
    leads.insert(0, "lead_id", np.arange(len(leads)))
    return leads


def dbt(project_dir: Path, *args: str, env: dict | None = None) -> None:
    environment = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1", **(env or {})}
    environment.pop("DBT_PROFILES_DIR", None)  # the test project's own profiles.yml
    done = subprocess.run([str(DBT), *args, "--project-dir", str(project_dir)], cwd=project_dir, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def build_dbt_project(directory: Path, leads: pd.DataFrame, *args: str, env: dict | None = None) -> Path:
    shutil.copytree(DBT_PROJECT, directory)
    (directory / "seeds").mkdir()
    leads.assign(scored_at=leads.scored_at.dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(directory / "seeds" / "crm_leads.csv", index=False)
    dbt(directory, "build", *args, env=env)
    return directory


@pytest.fixture(scope="session")
def leads() -> pd.DataFrame:
    return lead_rows()


@pytest.fixture(scope="session")
def built_dbt(tmp_path_factory, leads) -> Path:
    """The dbt project built on DuckDB (target dev), once; tests copy it."""
    return build_dbt_project(tmp_path_factory.mktemp("dbt") / "analytics", leads)


MONITOR = """\
name: {name}
source:
  dbt: "{reference}"
  timestamp: scored_at
schedule: {{every: 1d}}
reference: {{start: 2026-09-01, end: 2026-09-05}}
min_rows: 50
features:
  numeric: [visits]
checks:
  - quality: {{metric: null_rate, columns: [visits]}}
  - drift: {{columns: [visits], method: psi}}
"""


def driftline_project(directory: Path, dbt_dir: Path, connection: str, monitors: dict[str, str], dbt_block: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(dbt_dir, directory)
    block = dbt_block or f"dbt:\n  project_dir: {relative}\n"
    (directory / "driftline_project.yml").write_text(f"name: with_dbt\nconnection: {connection}\n{block}", encoding="utf-8")
    (directory / "monitors").mkdir(exist_ok=True)
    for name, reference in monitors.items():
        (directory / "monitors" / f"{name}.yml").write_text(MONITOR.format(name=name, reference=reference), encoding="utf-8")
    return directory


def expected_by_day(leads: pd.DataFrame) -> pd.DataFrame:
    day = leads.scored_at.dt.floor("D")
    grouped = leads.groupby(day)
    return pd.DataFrame({"rows": grouped.size(), "null_rate": grouped.visits.apply(lambda v: v.isna().mean())}).loc[WINDOWS]


def backfill(project: Path, capsys) -> None:
    code = main(["backfill", "--project", str(project), "--start", "2026-09-05", "--end", "2026-09-10", "--no-notify"])
    out = capsys.readouterr()
    assert code in (0, 1, 2), out.out + out.err


def check_results(query, monitor: str, leads: pd.DataFrame, schema: str | None = None) -> None:
    """Each backfilled day: one run that counted that day's rows, and their null rate of visits."""
    where = f"{schema}." if schema else ""
    runs = query(f"select window_start, rows_current from {where}driftline_runs where monitor = '{monitor}' order by window_start")
    nulls = query(f"select window_start, value from {where}driftline_results where monitor = '{monitor}' and metric = 'null_rate' order by window_start")
    expected = expected_by_day(leads)
    assert [pd.Timestamp(start) for start, _ in runs] == list(WINDOWS)
    assert [rows for _, rows in runs] == expected.rows.tolist()
    assert [value for _, value in nulls] == pytest.approx(expected.null_rate.tolist(), abs=1e-12)


def test_a_monitor_reads_the_relation_dbt_built_for_a_model_or_source(built_dbt, tmp_path, leads, capsys):
    """`lead_predictions` is built as main_ml.scored_leads (alias and custom schema); the
    source is the seed. Runs count the rows of each day, null_rate matches pandas."""
    import duckdb

    analytics = shutil.copytree(built_dbt, tmp_path / "analytics")
    project = driftline_project(
        tmp_path / "monitoring",
        analytics,
        "dbt",
        {"scored": "lead_predictions", "crm": "source('crm', 'leads')", "by_ref": "ref('driftline_test', 'lead_predictions')"},
    )
    assert main(["validate", "--project", str(project)]) == 0
    backfill(project, capsys)
    with duckdb.connect(str(analytics / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from main_ml.scored_leads").fetchone()[0] == len(leads)
        for monitor in ("scored", "crm", "by_ref"):
            check_results(lambda sql: con.execute(sql).fetchall(), monitor, leads)


def test_the_model_name_is_not_the_relation(built_dbt):
    """What resolution returns is the manifest's database.schema.alias, not the model's name."""
    from driftline.dbt_project import load_manifest, parse_dbt_name
    from driftline.errors import Location

    manifest = load_manifest(built_dbt, Location("x"))
    assert manifest.relation(parse_dbt_name("lead_predictions")) == "warehouse.main_ml.scored_leads"
    assert manifest.relation(parse_dbt_name("source('crm', 'leads')")) == "warehouse.main.crm_leads"


def test_an_unknown_model_is_a_located_error_with_a_close_match(built_dbt, tmp_path, capsys):
    project = driftline_project(tmp_path / "monitoring", built_dbt, f"duckdb://{built_dbt / 'warehouse.duckdb'}", {"scored": "lead_prediction"})
    assert main(["validate", "--project", str(project)]) == 3
    err = capsys.readouterr().err
    assert f"{project / 'monitors' / 'scored.yml'}:3:" in err
    assert "dbt model 'lead_prediction' is not in" in err and "(did you mean 'lead_predictions'?)" in err

    (project / "monitors" / "scored.yml").write_text(MONITOR.format(name="scored", reference="source('crm', 'lead')"), encoding="utf-8")
    assert main(["validate", "--project", str(project)]) == 3
    assert "(did you mean \"source('crm', 'leads')\"?)" in capsys.readouterr().err

    (project / "monitors" / "scored.yml").write_text(MONITOR.format(name="scored", reference="ref(lead_predictions)"), encoding="utf-8")
    assert main(["validate", "--project", str(project)]) == 3
    assert "is not a dbt model or source; write a model's name, ref('model') or source(" in capsys.readouterr().err


def test_a_model_dbt_has_not_built_in_the_warehouse_is_a_located_error(built_dbt, tmp_path, capsys):
    project = driftline_project(tmp_path / "monitoring", built_dbt, "duckdb://elsewhere.duckdb", {"scored": "lead_predictions"})
    assert main(["validate", "--project", str(project)]) == 3
    err = capsys.readouterr().err
    assert f"{project / 'monitors' / 'scored.yml'}:3:" in err
    assert "source.dbt: 'lead_predictions' is table 'warehouse.main_ml.scored_leads' not found" in err and "`dbt build`" in err


def test_a_missing_manifest_is_a_located_error(tmp_path, capsys):
    dbt_dir = tmp_path / "analytics"
    shutil.copytree(DBT_PROJECT, dbt_dir)  # never parsed: no target/
    project = driftline_project(tmp_path / "monitoring", dbt_dir, "duckdb://", {"scored": "lead_predictions"})
    assert main(["validate", "--project", str(project)]) == 3
    err = capsys.readouterr().err
    assert f"{project / 'driftline_project.yml'}:4:" in err  # dbt.project_dir
    assert "no dbt manifest at" in err and "run `dbt parse`" in err


def test_a_dbt_source_without_a_dbt_block_says_what_to_add(tmp_path, capsys):
    project = driftline_project(tmp_path / "monitoring", tmp_path, "duckdb://", {"scored": "lead_predictions"}, dbt_block="results: {schema: null}\n")
    assert main(["validate", "--project", str(project)]) == 3
    err = capsys.readouterr().err
    assert f"{project / 'monitors' / 'scored.yml'}:3:" in err and "add `dbt: {project_dir: ...}`" in err


def test_dbt_accepts_the_sources_file_and_builds_on_driftline_results(built_dbt, tmp_path, leads, capsys):
    """`dbt parse` reads the file; a model selecting from a driftline view runs on real results."""
    import duckdb

    analytics = shutil.copytree(built_dbt, tmp_path / "analytics")
    project = driftline_project(tmp_path / "monitoring", analytics, "dbt", {"scored": "lead_predictions"})
    backfill(project, capsys)
    out = analytics / "models" / "driftline_sources.yml"
    assert main(["dbt-sources", "--project", str(project), "--out", str(out)]) == 0
    (analytics / "models" / "latest_statuses.sql").write_text(
        "select monitor, check_name, status from {{ source('driftline', 'driftline_latest') }}\n", encoding="utf-8"
    )
    dbt(analytics, "run", "--select", "latest_statuses")

    manifest = json.loads((analytics / "target" / "manifest.json").read_text(encoding="utf-8"))
    results = manifest["sources"]["source.driftline_test.driftline.driftline_results"]
    assert results["schema"] == "main"
    assert results["columns"]["status"]["description"] == "ok | warn | fail | insufficient_data | error"
    assert all(column["description"] for source in manifest["sources"].values() if source["source_name"] == "driftline" for column in source["columns"].values())
    with duckdb.connect(str(analytics / "warehouse.duckdb"), read_only=True) as con:
        latest = con.execute("select count(*) from main.latest_statuses where monitor = 'scored'").fetchone()[0]
        direct = con.execute("select count(*) from main.driftline_latest where monitor = 'scored'").fetchone()[0]
    assert latest == direct > 0


def test_sources_go_to_stdout_by_default(built_dbt, tmp_path, capsys):
    import yaml

    project = driftline_project(tmp_path / "monitoring", built_dbt, "duckdb://", {}, dbt_block="results: {schema: monitoring}\n")
    assert main(["dbt-sources", "--project", str(project)]) == 0
    sources = yaml.safe_load(capsys.readouterr().out)["sources"]
    assert sources[0]["schema"] == "monitoring"
    assert {t["name"] for t in sources[0]["tables"]} >= {"driftline_runs", "driftline_results", "driftline_alerts", "driftline_latest"}


@pytest.mark.postgres
def test_postgres_through_the_dbt_profile(tmp_path_factory, leads, capsys):
    """The profile's pg target (its parts from env_var()) is both what dbt builds into and what
    `connection: dbt` connects to."""
    url = os.environ.get("DRIFTLINE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set DRIFTLINE_TEST_POSTGRES_URL to run the PostgreSQL dbt test")
    import psycopg

    parts = urlparse(url)
    schema = f"dbt_test_{os.getpid()}"
    env = {
        "DRIFTLINE_TEST_PG_HOST": parts.hostname or "localhost",
        "DRIFTLINE_TEST_PG_PORT": str(parts.port or 5432),
        "DRIFTLINE_TEST_PG_USER": parts.username or "postgres",
        "DRIFTLINE_TEST_PG_PASSWORD": parts.password or "",
        "DRIFTLINE_TEST_PG_DBNAME": parts.path.lstrip("/"),
        "DRIFTLINE_TEST_PG_SCHEMA": schema,
    }
    base = tmp_path_factory.mktemp("dbt_pg")
    try:
        analytics = build_dbt_project(base / "analytics", leads, "--target", "pg", env=env)
        project = driftline_project(
            base / "monitoring", analytics, "dbt", {"scored": "lead_predictions"},
            dbt_block=f"dbt:\n  project_dir: ../analytics\n  target: pg\nresults:\n  schema: {schema}\n",
        )
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            backfill(project, capsys)
        with psycopg.connect(url) as con:
            relation = con.execute(
                "select table_schema, table_name from information_schema.tables where table_name = 'scored_leads'"
                " and table_schema = %s", (f"{schema}_ml",)
            ).fetchall()
            assert relation == [(f"{schema}_ml", "scored_leads")]
            check_results(lambda sql: con.execute(sql).fetchall(), "scored", leads, schema=schema)
    finally:
        with psycopg.connect(url, autocommit=True) as con:
            for name in (f"{schema}_ml", schema):
                con.execute(f'drop schema if exists "{name}" cascade')


def test_dbt_is_not_imported_by_driftline():
    code = "import sys, driftline.dbt_project, driftline.project, driftline.cli; print(any(m == 'dbt' or m.startswith('dbt.') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_profile_env_vars_and_their_defaults(tmp_path):
    """env_var('NAME', 'default') as dbt reads it: set wins, unset takes the default, unset
    without one is an error naming it."""
    from driftline.dbt_project import profile_connection
    from driftline.project import ProjectFile
    from driftline.spec.yaml_source import Positions

    dbt_dir = shutil.copytree(DBT_PROJECT, tmp_path / "analytics")
    settings = ProjectFile.model_validate({"name": "x", "connection": "dbt", "dbt": {"project_dir": "analytics", "target": "pg"}})
    env = {"DRIFTLINE_TEST_PG_HOST": "db.internal", "DRIFTLINE_TEST_PG_USER": "monitor", "DRIFTLINE_TEST_PG_PASSWORD": "p@ss", "DRIFTLINE_TEST_PG_DBNAME": "prod", "DRIFTLINE_TEST_PG_SCHEMA": "s"}
    positions = Positions(str(tmp_path / "driftline_project.yml"), {})
    assert profile_connection(tmp_path, settings, env, positions) == "postgres://monitor:p%40ss@db.internal:5432/prod?sslmode=prefer"
    from driftline.errors import ConfigError

    with pytest.raises(ConfigError, match="env_var\\('DRIFTLINE_TEST_PG_HOST'\\) is not set") as raised:
        profile_connection(tmp_path, settings, {k: v for k, v in env.items() if k != "DRIFTLINE_TEST_PG_HOST"}, positions)
    host_line = next(i for i, line in enumerate((dbt_dir / "profiles.yml").read_text().splitlines(), 1) if "PG_HOST" in line)
    assert str(raised.value.location).startswith(f"{dbt_dir / 'profiles.yml'}:{host_line}:")
    dev = ProjectFile.model_validate({"name": "x", "connection": "dbt", "dbt": {"project_dir": "analytics"}})
    assert profile_connection(tmp_path, dev, env, positions) == f"duckdb://{(dbt_dir / 'warehouse.duckdb').resolve()}"
    (dbt_dir / "profiles.yml").rename(tmp_path / "profiles.yml")
    assert profile_connection(tmp_path, dev, {**env, "DBT_PROFILES_DIR": str(tmp_path)}, positions).startswith("duckdb://")
