"""Connection URLs: DuckDB's resource settings travel in the URL, and nothing else does."""

from __future__ import annotations

import pytest

from driftline import connect
from driftline.errors import WarehouseError


def test_duckdb_settings_come_from_the_url(tmp_path):
    con = connect.connect("duckdb://w.duckdb?memory_limit=300MB&threads=1", tmp_path)
    limit, threads = con.con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone()
    assert (limit, threads) == ("286.1 MiB", 1)  # 300 MB, as DuckDB spells it back
    assert (tmp_path / "w.duckdb").exists()


def test_an_unknown_duckdb_option_is_one_line(tmp_path):
    with pytest.raises(WarehouseError) as caught:
        connect.connect("duckdb://w.duckdb?memory=1GB", tmp_path)
    assert "unknown option 'memory'; duckdb URLs take memory_limit, threads, temp_directory" in str(caught.value)
    assert not (tmp_path / "w.duckdb").exists()


def _settings_of(con) -> tuple[str, int, str]:
    return con.con.execute("SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('temp_directory')").fetchone()


def test_the_project_file_sets_duckdb_resources(make_project):
    from driftline.api import Workspace

    project = make_project(settings={"duckdb": {"memory_limit": "300MB", "threads": 1, "temp_directory": "spill"}})
    workspace = Workspace.open(project.root)
    limit, threads, temp = _settings_of(workspace.con)
    assert (limit, threads, temp) == ("286.1 MiB", 1, str(project.root / "spill"))  # 300e6 bytes / 2**20 = 286.1 MiB


def test_a_url_option_wins_over_the_project_file(make_project):
    from driftline.api import Workspace

    project = make_project(settings={"duckdb": {"memory_limit": "300MB", "threads": 1}})
    workspace = Workspace.open(project.root, connection=f"{project.url}?memory_limit=600MB")
    limit, threads, _ = _settings_of(workspace.con)
    assert (limit, threads) == ("572.2 MiB", 1)  # 600e6 / 2**20; threads still from the project file


def test_a_memory_limit_that_is_not_a_size_is_one_line_at_its_place(make_project):
    from driftline.errors import ConfigError, problems_of
    from driftline.project import load_project

    project = make_project(settings={"duckdb": {"memory_limit": "half"}})
    with pytest.raises(ConfigError) as caught:
        load_project(project.root)
    (problem,) = problems_of(caught.value)
    assert str(problem).startswith(f"{project.root / 'driftline_project.yml'}:4:")
    assert "memory_limit 'half' is not a size: write a number and a unit, e.g. 2GB" in str(problem)
